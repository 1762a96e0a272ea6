"""Agent releases: bundles of the node-side code, signed by the ledger's release key (§2 step 7).

The release key is an ed25519 seed in ZOS_RELEASE_KEY_FILE (mode 0400, never in the database),
made on first use; its public half is served at /api/v1/releases/key and stamped into boot images
as `zos.release_key=`. What is signed is a DSSE envelope over `{"version", "sha256", "size"}` of
the bundle, so a node verifies exact bytes before it trusts the hash, then the bundle by the hash.
"""

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from nacl.signing import SigningKey

from contracts.payload_types import RELEASE_TYPE
from contracts.release_bundle import BundleError, bundle_version
from ledger.errors import LedgerError
from ledger.models import AgentRelease, Farm, version_validator
from signing.dsse import sign_envelope
from signing.key_files import load_or_create_seed
from signing.keys import public_key_hex

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
        try:
            inside = bundle_version(tmp)
        except BundleError as exc:
            raise LedgerError("invalid_bundle", str(exc)) from None
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


def select_farms(ids: list[int] | None):
    """The farms `ids` names (None: every farm); an unknown id is an error, never skipped."""
    farms = Farm.objects.all()
    if ids is None:
        return farms
    unknown = sorted(set(ids) - set(farms.filter(pk__in=ids).values_list("pk", flat=True)))
    if unknown:
        raise LedgerError(
            "unknown_farm", f"no farm {', '.join(map(str, unknown))}", http_status=404
        )
    return farms.filter(pk__in=ids)


def set_desired_version(*, farms, version: str) -> int:
    """Point farms at a published release (the uptime reply tells their nodes)."""
    if version and not AgentRelease.objects.filter(version=version).exists():
        raise LedgerError("unknown_release", f"no agent release {version}", http_status=404)
    return farms.update(desired_agent_version=version)
