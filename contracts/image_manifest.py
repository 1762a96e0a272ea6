"""The workload image manifest (ARCHITECTURE §4, `application/vnd.zos.image.v1+json`).

One statement, three readers: `zos image push` builds and signs it from an image directory, the
hub checks it before it publishes, and a node checks it again before it fetches a single byte.
All three take the rules from here, so what the hub accepts is exactly what a node installs.

A part is an immutable blob named by its sha256; `ROLE_FILES` says which file of an image
directory (sal/images.py) each role is, on the publisher's disk and in the node's cache alike.
"""

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contracts.payload_types import IMAGE_TYPE
from signing.dsse import canonical_json, sign_envelope

if TYPE_CHECKING:  # the key type only: contracts load nothing beyond signing at run time
    from nacl.signing import SigningKey

# Hub names carry no dot: a node caches a private image as `<name>.u<owner>`, which no public
# image name can then collide with.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KINDS = ("vm", "container")
ROLE_FILES = {"kernel": "kernel", "initrd": "initrd", "disk": "disk.raw", "rootfs": "rootfs.tar"}
ROLES_BY_KIND = {"vm": {"kernel", "initrd", "disk"}, "container": {"rootfs"}}
REQUIRED_ROLE = {"vm": "kernel", "container": "rootfs"}
MAX_PART_BYTES = 256 * 2**30
MAX_CMDLINE = 4096
MAX_MIN_DISK_GB = 10_000
MAX_ENTRYPOINT = 64
MAX_ENV = 64
MAX_MANIFEST_BYTES = 64 * 1024


class ManifestError(ValueError):
    """The manifest breaks a rule; the message names the field and what it must be."""


@dataclass(frozen=True)
class Part:
    role: str
    sha256: str
    size: int

    @property
    def file(self) -> str:
        return ROLE_FILES[self.role]


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    kind: str
    parts: tuple[Part, ...]
    cmdline: str = ""
    min_disk_gb: int = 0
    entrypoint: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = ""

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    def as_dict(self) -> dict:
        """The wire form; optional fields only when set, so equal manifests sign equal bytes."""
        data: dict = {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "parts": [{"role": p.role, "sha256": p.sha256, "size": p.size} for p in self.parts],
        }
        if self.cmdline:
            data["cmdline"] = self.cmdline
        if self.min_disk_gb:
            data["min_disk_gb"] = self.min_disk_gb
        if self.entrypoint:
            data["entrypoint"] = list(self.entrypoint)
        if self.env:
            data["env"] = dict(self.env)
        if self.workdir:
            data["workdir"] = self.workdir
        return data

    def image_json(self) -> dict:
        """What sal/images.py reads from an installed image's `image.json`."""
        meta: dict = {"cmdline": self.cmdline, "min_disk_gb": self.min_disk_gb}
        if self.entrypoint:
            meta["entrypoint"] = list(self.entrypoint)
        if self.env:
            meta["env"] = dict(self.env)
        if self.workdir:
            meta["workdir"] = self.workdir
        return meta


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ManifestError(
            f"image name {name!r} is invalid: use 1-48 of a-z 0-9 _ - starting with a letter or "
            "digit (no dots)"
        )
    return name


def _text(data: dict, key: str, limit: int) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or len(value) > limit or "\n" in value:
        raise ManifestError(f"{key} must be a one-line string of at most {limit} characters")
    return value


def _part(index: int, item: object, kind: str) -> Part:
    if not isinstance(item, dict) or set(item) != {"role", "sha256", "size"}:
        raise ManifestError(f"parts[{index}] must be exactly {{role, sha256, size}}")
    role, sha, size = item["role"], item["sha256"], item["size"]
    if role not in ROLES_BY_KIND[kind]:
        allowed = ", ".join(sorted(ROLES_BY_KIND[kind]))
        raise ManifestError(f"parts[{index}].role {role!r}: a {kind} image has parts {allowed}")
    if not isinstance(sha, str) or not SHA256_RE.match(sha):
        raise ManifestError(f"parts[{index}].sha256 must be 64 lowercase hex characters")
    if type(size) is not int or not 0 <= size <= MAX_PART_BYTES:
        raise ManifestError(f"parts[{index}].size must be a whole number of bytes, 0 or more")
    return Part(role=role, sha256=sha, size=size)


def manifest_from_dict(data: object) -> Manifest:
    """Check every rule and return the manifest, or raise ManifestError naming the field."""
    if not isinstance(data, dict):
        raise ManifestError("the manifest must be a JSON object")
    known = {
        "name",
        "version",
        "kind",
        "parts",
        "cmdline",
        "min_disk_gb",
        "entrypoint",
        "env",
        "workdir",
    }
    unknown = set(data) - known
    if unknown:
        raise ManifestError(f"unknown manifest fields: {', '.join(sorted(unknown))}")
    name = check_name(data.get("name"))
    version = data.get("version")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ManifestError(
            f"version {version!r} is invalid: 1-64 of A-Z a-z 0-9 . _ + - starting with a letter "
            "or digit"
        )
    kind = data.get("kind")
    if kind not in KINDS:
        raise ManifestError(f'kind must be "vm" or "container", not {kind!r}')
    raw_parts = data.get("parts")
    if not isinstance(raw_parts, list) or not raw_parts:
        raise ManifestError("parts must be a non-empty list")
    parts = tuple(_part(i, item, kind) for i, item in enumerate(raw_parts))
    roles = [p.role for p in parts]
    if len(set(roles)) != len(roles):
        raise ManifestError("each part role may appear once")
    if REQUIRED_ROLE[kind] not in roles:
        raise ManifestError(f"a {kind} image needs a {REQUIRED_ROLE[kind]} part")
    min_disk_gb = data.get("min_disk_gb", 0)
    if type(min_disk_gb) is not int or not 0 <= min_disk_gb <= MAX_MIN_DISK_GB:
        raise ManifestError(f"min_disk_gb must be a whole number from 0 to {MAX_MIN_DISK_GB}")
    entrypoint = data.get("entrypoint", [])
    if (
        not isinstance(entrypoint, list)
        or len(entrypoint) > MAX_ENTRYPOINT
        or not all(isinstance(a, str) and a and "\n" not in a for a in entrypoint)
    ):
        raise ManifestError(
            f"entrypoint must be a list of at most {MAX_ENTRYPOINT} non-empty one-line strings"
        )
    env = data.get("env", {})
    if not isinstance(env, dict) or len(env) > MAX_ENV:
        raise ManifestError(f"env must be a map of at most {MAX_ENV} entries")
    for key, value in env.items():
        if not ENV_NAME_RE.match(key) or not isinstance(value, str) or "\n" in value:
            raise ManifestError(f"env {key!r}: names are variable names, values one-line strings")
    return Manifest(
        name=name,
        version=version,
        kind=kind,
        parts=parts,
        cmdline=_text(data, "cmdline", MAX_CMDLINE),
        min_disk_gb=min_disk_gb,
        entrypoint=tuple(entrypoint),
        env=tuple(sorted(env.items())),
        workdir=_text(data, "workdir", 4096),
    )


def parse_manifest(payload: bytes) -> Manifest:
    """The manifest in verified payload bytes (parse exactly what was signed)."""
    if len(payload) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"the manifest is not JSON: {exc}") from None
    return manifest_from_dict(data)


def sign_manifest(signing_key: "SigningKey", manifest: Manifest) -> dict:
    """The DSSE envelope `zos image push` publishes: canonical JSON, signed by the publisher."""
    return sign_envelope(signing_key, IMAGE_TYPE, canonical_json(manifest.as_dict()))
