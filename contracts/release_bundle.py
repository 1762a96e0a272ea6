"""Agent release bundles: the node-side packages as one reproducible tar.gz (§2 step 7).

The format is the contract between three parties: `python -m image release` on an operator's
machine and `manage.py publish_release` on the ledger make the same bytes from the same tree
(`build_bundle`); the ledger reads the version back out of an uploaded bundle before it signs
it (`bundle_version`); the node's updater unpacks exactly `BUNDLE_PACKAGES`. The image's agent
layer carries the same packages, so a node runs the same code whether booted or updated.
"""

import gzip
import io
import re
import tarfile
from pathlib import Path

from contracts.versions import check_version

# The node-side packages: what a release bundle and the image's agent layer carry.
BUNDLE_PACKAGES = ("nodeagent", "contracts", "signing", "rhai", "sal")
VERSION_FILE = "nodeagent/__init__.py"
VERSION_LINE = re.compile(r'^__version__ = "(.*)"$', re.MULTILINE)


class BundleError(ValueError):
    """The tree or the bundle is not what a release must be; the message says what is wrong."""


def _skip(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}


def _stamped(path: Path, version: str) -> bytes:
    text, count = VERSION_LINE.subn(f'__version__ = "{version}"', path.read_text(encoding="utf-8"))
    if count != 1:
        raise BundleError(f"no __version__ line in {path}")
    return text.encode()


def build_bundle(source: Path, version: str) -> bytes:
    """A reproducible tar.gz of the node-side packages in `source`, stamped with `version`.

    `nodeagent/__init__.py` gets `__version__ = "<version>"`, so the agent reports what it is.
    Sorted names, zero mtimes and owners, no bytecode: the same tree gives the same bytes.
    """
    check_version(version)
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for package in BUNDLE_PACKAGES:
            root = source / package
            if not (root / "__init__.py").is_file():
                raise BundleError(f"{root} is not a Python package")
            for path in sorted(root.rglob("*")):
                if _skip(path) or not (path.is_file() or path.is_dir()) or path.is_symlink():
                    continue
                name = str(path.relative_to(source))
                info = tarfile.TarInfo(name)
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if path.is_dir():
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    continue
                data = _stamped(path, version) if name == VERSION_FILE else path.read_bytes()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tree_version(source: Path) -> str:
    """The `__version__` the agent in the tree `source` says it is ("" when it says none)."""
    match = VERSION_LINE.search((source / VERSION_FILE).read_text(encoding="utf-8"))
    return match.group(1) if match else ""


def bundle_version(path: Path) -> str:
    """The `__version__` inside a bundle, read without unpacking it ("" when it has none)."""
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            member = tar.extractfile(VERSION_FILE)
            text = member.read().decode() if member else ""
    except (tarfile.TarError, KeyError, OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"not a tar.gz with {VERSION_FILE}: {exc}") from None
    match = VERSION_LINE.search(text)
    return match.group(1) if match else ""
