"""`zos image push`: an image directory becomes a signed manifest and content-addressed parts.

The directory is the one sal/images.py describes and `python -m image vm-image` builds: `kernel`,
optional `initrd` and `disk.raw`, and `image.json` (`cmdline`, `min_disk_gb`) for a VM; or
`rootfs.tar` and `image.json` (`entrypoint`, `env`, `workdir`) for a container. Each part is
hashed locally, then the hub is asked whether this account uploaded those bytes already (HEAD),
and only the missing ones are streamed, with a progress line on stderr. An interrupted push is
simply run again: the hub keeps nothing half-uploaded and skips what arrived whole. The manifest
is signed last, with the same key and the same DSSE encoding `zos deploy` uses.
"""

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from client.api import Api
from client.errors import CliError
from contracts.image_manifest import ROLE_FILES, Manifest, ManifestError, Part, manifest_from_dict

CHUNK = 1 << 20
SETTINGS = ("cmdline", "min_disk_gb", "entrypoint", "env", "workdir")
# What the image builders (`python -m image vm-image`, `oci-import`) record in image.json about
# the build itself, beside the settings: for people and for the builder's own cache check, not
# part of the image, so a built directory is pushed as it is.
BUILD_RECORD = frozenset(
    {
        "name",
        "kind",
        "source",
        "build_key",
        "inputs_key",
        "built_at",
        "kernel_version",
        "kernel_package",
        "packages",
        "ready_marker",
        "rootfs_bytes",
        "disk_bytes",
    }
)
PROGRESS_EVERY = 0.25  # seconds between progress line updates


@dataclass(frozen=True)
class LocalImage:
    manifest: Manifest
    files: dict[str, Path]  # role → file


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_image_dir(directory: str, *, name: str, version: str) -> LocalImage:
    """The image in `directory` as a manifest, or a CliError saying what the directory lacks."""
    root = Path(directory)
    if not root.is_dir():
        raise CliError(f"{directory} is not a directory", hint="pass an image directory")
    meta_path = root / "image.json"
    meta: dict = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise CliError(f"{meta_path} is not valid JSON: {exc}", hint="fix image.json") from None
        if not isinstance(meta, dict):
            raise CliError(f"{meta_path} must hold a JSON object", hint="fix image.json")
    files = {role: root / f for role, f in ROLE_FILES.items() if (root / f).is_file()}
    if "kernel" in files and "rootfs" in files:
        raise CliError(
            f"{directory} holds both a kernel and rootfs.tar",
            hint="a VM image has a kernel, a container image a rootfs.tar; not both",
        )
    if "kernel" not in files and "rootfs" not in files:
        raise CliError(
            f"{directory} has neither a kernel nor rootfs.tar",
            hint="an image directory holds kernel [initrd] [disk.raw] image.json, or rootfs.tar "
            "image.json (see docs/images.md)",
        )
    kind = "vm" if "kernel" in files else "container"
    if meta.get("kind", kind) != kind:
        raise CliError(
            f"{meta_path} says kind {meta['kind']!r} but the directory holds a "
            f"{'kernel' if kind == 'vm' else 'rootfs.tar'}",
            hint="rebuild the image directory",
        )
    meta = {k: v for k, v in meta.items() if k not in BUILD_RECORD}
    unknown = set(meta) - set(SETTINGS)
    if unknown:
        raise CliError(
            f"{meta_path}: unknown fields {', '.join(sorted(unknown))}",
            hint="image.json takes cmdline, min_disk_gb, entrypoint, env and workdir",
        )
    if kind == "container":  # a stray kernel-less initrd or disk has no meaning here
        files = {"rootfs": files["rootfs"]}
    parts = [
        {"role": role, "sha256": _hash(path), "size": path.stat().st_size}
        for role, path in files.items()
    ]
    try:
        manifest = manifest_from_dict(
            {"name": name, "version": version, "kind": kind, "parts": parts, **meta}
        )
    except ManifestError as exc:
        raise CliError(str(exc), hint="fix --name/--version or image.json") from None
    return LocalImage(manifest=manifest, files=files)


class ProgressReader:
    """A file sent as a request body: `requests` reads it in chunks and takes its length from
    `len()`, so the upload streams with a Content-Length; each chunk moves the progress line."""

    def __init__(self, handle: BinaryIO, size: int, label: str, err: TextIO) -> None:
        self.handle = handle
        self.size = size
        self.label = label
        self.err = err
        self.sent = 0
        self.started = time.monotonic()
        self._shown = 0.0

    def __len__(self) -> int:
        return self.size

    def read(self, amount: int = -1) -> bytes:
        # At least a MiB whatever the HTTP library asks for (8-16 KiB): a send per MiB, not per
        # few KiB, and the library sends whatever it is given.
        chunk = self.handle.read(max(CHUNK, amount or 0))
        self.sent += len(chunk)
        now = time.monotonic()
        if now - self._shown >= PROGRESS_EVERY or self.sent >= self.size:
            self._shown = now
            self.show()
        return chunk

    def show(self) -> None:
        done = self.sent / self.size if self.size else 1.0
        bar = "#" * int(done * 30)
        rate = self.sent / max(time.monotonic() - self.started, 1e-6) / 2**20
        self.err.write(
            f"\r  {self.label:<7} [{bar:<30}] {done:4.0%} {self.sent / 2**20:8.1f} of "
            f"{self.size / 2**20:.1f} MiB  {rate:6.1f} MiB/s"
        )
        self.err.flush()


def upload_missing(api: Api, image: LocalImage, err: TextIO) -> tuple[int, int]:
    """Upload the parts the hub lacks for this account; return (parts sent, bytes sent)."""
    sent = sent_bytes = 0
    for part in image.manifest.parts:
        if api.has_blob(part.sha256):
            err.write(f"  {part.role:<7} already on the hub ({part.sha256[:12]})\n")
            continue
        _upload(api, part, image.files[part.role], err)
        sent += 1
        sent_bytes += part.size
    return sent, sent_bytes


def _upload(api: Api, part: Part, path: Path, err: TextIO) -> None:
    with open(path, "rb") as handle:
        reader = ProgressReader(handle, part.size, part.role, err)
        if part.size == 0:
            reader.show()
        try:
            api.upload_blob(part.sha256, reader)
        finally:
            err.write("\n")
