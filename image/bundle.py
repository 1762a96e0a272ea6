"""Agent release bundles: the node-side packages as one reproducible tar.gz (§2 step 7).

Built here, without Django, so `python -m image release` on an operator's machine and
`manage.py publish_release` on the ledger make the same bytes from the same tree; the ledger
reads the version back out of an uploaded bundle with `bundle_version` before it signs it.
"""

import gzip
import io
import re
import tarfile
from pathlib import Path

from image.rootfs import AGENT_PACKAGES

# A release carries exactly what the image's agent layer carries.
BUNDLE_PACKAGES = AGENT_PACKAGES
VERSION_FILE = "nodeagent/__init__.py"
VERSION_LINE = re.compile(r'^__version__ = "(.*)"$', re.MULTILINE)
# The version rule for boot images and releases: a path component on disk and in URLs.
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


class BundleError(ValueError):
    """The tree or the bundle is not what a release must be; the message says what is wrong."""


def check_version(version: str) -> str:
    if not VERSION.fullmatch(version):
        raise BundleError(
            f"version {version!r}: a version is letters, digits and . _ + - (not first), up to 64"
        )
    return version


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
