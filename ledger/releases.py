"""Agent releases: bundles of the node-side code, signed by the ledger's release key (§2 step 7).

The release key is an ed25519 seed in ZOS_RELEASE_KEY_FILE (mode 0400, never in the database),
made on first use; its public half is served at /api/v1/releases/key and stamped into boot images
as `zos.release_key=`. What is signed is a DSSE envelope over `{"version", "sha256", "size"}` of
the bundle, so a node verifies exact bytes before it trusts the hash, then the bundle by the hash.
"""

import functools
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from nacl.signing import SigningKey

from ledger.models import AgentRelease, version_validator
from ledger.services import LedgerError
from signing.dsse import sign_envelope
from signing.key_files import load_or_create_seed
from signing.keys import public_key_hex

RELEASE_TYPE = "application/vnd.zos.release.v1+json"
BUNDLE_PACKAGES = ("nodeagent", "signing", "rhai", "sal")
VERSION_LINE = re.compile(r'^__version__ = ".*"$', re.MULTILINE)
CHUNK = 1 << 20
MAX_BUNDLE_BYTES = 64 << 20


@functools.cache
def _key_at(path: str) -> SigningKey:
    return load_or_create_seed(
        Path(path), if_lost="a new key would be refused by every node that pinned the old one"
    )


def release_signing_key() -> SigningKey:
    return _key_at(str(settings.ZOS_RELEASE_KEY_FILE))


def release_public_key_hex() -> str:
    return public_key_hex(release_signing_key())


def _skip(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}


def build_bundle(source: Path, version: str) -> bytes:
    """A reproducible tar.gz of the node-side packages in `source`, stamped with `version`.

    `nodeagent/__init__.py` gets `__version__ = "<version>"`, so the agent reports what it is.
    """
    version_validator(version)
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for package in BUNDLE_PACKAGES:
            root = source / package
            if not (root / "__init__.py").is_file():
                raise LedgerError("invalid_bundle", f"{root} is not a Python package")
            for path in sorted(root.rglob("*")):
                if _skip(path) or not (path.is_file() or path.is_dir()) or path.is_symlink():
                    continue
                name = str(path.relative_to(source))
                data = path.read_bytes() if path.is_file() else None
                if name == "nodeagent/__init__.py":
                    text, count = VERSION_LINE.subn(f'__version__ = "{version}"', data.decode())
                    if count != 1:
                        raise LedgerError("invalid_bundle", f"no __version__ line in {path}")
                    data = text.encode()
                info = tarfile.TarInfo(name)
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if data is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                else:
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def bundle_version(path: Path) -> str:
    """The `__version__` inside a bundle, read without unpacking it."""
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            member = tar.extractfile("nodeagent/__init__.py")
            text = member.read().decode() if member else ""
    except (tarfile.TarError, KeyError, OSError, UnicodeDecodeError) as exc:
        raise LedgerError(
            "invalid_bundle", f"not a tar.gz with nodeagent/__init__.py: {exc}"
        ) from None
    match = re.search(r'^__version__ = "(.*)"$', text, re.MULTILINE)
    return match.group(1) if match else ""


def publish_release(*, version: str, bundle: BinaryIO, actor: str = "system") -> AgentRelease:
    """Store, hash and sign a bundle; its nodeagent must say it is `version`."""
    try:
        version_validator(version)
    except Exception as exc:
        raise LedgerError("invalid", f"version {version!r}: {exc}") from None
    if AgentRelease.objects.filter(version=version).exists():
        raise LedgerError("version_exists", f"agent release {version} exists", http_status=409)
    directory = Path(settings.ZOS_RELEASE_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{version}-", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            while chunk := bundle.read(CHUNK):
                size += len(chunk)
                if size > MAX_BUNDLE_BYTES:
                    raise LedgerError(
                        "body_too_large", f"a bundle may be at most {MAX_BUNDLE_BYTES} bytes"
                    )
                digest.update(chunk)
                out.write(chunk)
        inside = bundle_version(tmp)
        if inside != version:
            raise LedgerError(
                "invalid_bundle",
                f"the bundle's nodeagent says version {inside!r}, not {version!r}",
            )
        statement = {"version": version, "sha256": digest.hexdigest(), "size": size}
        envelope = sign_envelope(
            release_signing_key(), RELEASE_TYPE, json.dumps(statement, sort_keys=True).encode()
        )
        with transaction.atomic():
            release = AgentRelease.objects.create(
                version=version,
                sha256=statement["sha256"],
                size=size,
                envelope=envelope,
                published_by=actor,
            )
            tmp.replace(release.bundle_path)
    finally:
        tmp.unlink(missing_ok=True)
    return release


def set_desired_version(*, farms, version: str) -> int:
    """Point farms at a published release (the uptime reply tells their nodes)."""
    if version and not AgentRelease.objects.filter(version=version).exists():
        raise LedgerError("unknown_release", f"no agent release {version}", http_status=404)
    return farms.update(desired_agent_version=version)
