"""Boot images and the per-farm artefacts the bootstrap service serves (ARCHITECTURE §2 steps 1-2).

A BootImage is one build of the node image, stored once in ZOS_BOOT_DIR/<version>/ with the
sha256 of every file checked against its manifest. A farm's artefacts are that build with the
farm's command line (`zos.ledger`, `zos.farm`, `zos.release_key`, and `zos.enroll` in the
approving variant only — who gets which is ledger/boot_links.py) stamped in by
`bootimage.stamp`; they are made on first request and kept in

    ZOS_BOOT_DIR/.farms/<farm>/<variant>/<version>-<sha256(cmdline)[:16]>/<name>  (+ .sha256)

with <variant> `enroll` (carries the token) or `pending` (does not), so a changed command line
(new token, new URL) or image gives new files, an unchanged one is served from disk, and each
variant keeps its own ZOS_BOOT_STAMPED_KEEP copies: at most twice that per farm. Each file is
made once even under concurrent requests: a per-directory file lock, and the file appears by
atomic rename only when complete (its .sha256 is written first).
"""

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import transaction

from contracts.boot_image import BOOT_IMAGE_FILES
from ledger.errors import LedgerError
from ledger.models import BootImage, Farm, FarmBootToken, version_validator
from ledger.services import create_enrollment_token

log = logging.getLogger(__name__)

# What a build must contain to be served: the UKI, and kernel + initrd for network boot.
REQUIRED_FILES = BOOT_IMAGE_FILES
OPTIONAL_FILES = ("usb.img", "boot.ipxe")
STAMPED = ("zos.efi", "usb.img", "boot.ipxe")  # differ per farm
SHARED = ("vmlinuz", "initrd")  # the same bytes for every farm
ARTEFACTS = STAMPED + SHARED
# The two variants of a farm's stamped files, each its own cache folder.
ENROLL, PENDING = "enroll", "pending"
VARIANTS = (ENROLL, PENDING)
CHUNK = 1 << 20
NO_IMAGE_HINT = (
    "build one on this server with `python manage.py build_image` (as root), or build it "
    "elsewhere with `python -m image build` and upload it to POST /api/v1/boot-images"
)


@dataclass(frozen=True)
class Artefact:
    """A file ready to stream: where it is on disk and its hash (the ETag)."""

    name: str
    path: Path
    sha256: str
    size: int


def file_sha256(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _check_manifest(manifest: object) -> dict[str, dict]:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise LedgerError("invalid_manifest", "the manifest must be an object with a 'files' map")
    files = manifest["files"]
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        raise LedgerError("invalid_manifest", f"the manifest lists no {', '.join(missing)}")
    for name, info in files.items():
        if name not in REQUIRED_FILES + OPTIONAL_FILES:
            raise LedgerError("invalid_manifest", f"unexpected file {name!r} in the manifest")
        sha = info.get("sha256") if isinstance(info, dict) else None
        if not isinstance(sha, str) or len(sha) != 64:
            raise LedgerError("invalid_manifest", f"the manifest has no sha256 for {name}")
    if not isinstance(manifest.get("cmdline", ""), str):
        raise LedgerError("invalid_manifest", "the manifest's cmdline must be a string")
    return files


def register_boot_image(
    *,
    version: str,
    manifest: dict,
    files: Mapping[str, BinaryIO],
    uploaded_by=None,
    make_current: bool = True,
) -> BootImage:
    """Store a build: every file is copied while hashed and must match the manifest's sha256.

    Nothing is kept when any file is missing or differs; the image directory appears whole.
    """
    try:
        version_validator(version)
    except Exception as exc:
        raise LedgerError("invalid", f"version {version!r}: {exc}") from None
    expected = _check_manifest(manifest)
    if manifest.get("version", version) != version:
        raise LedgerError(
            "invalid_manifest", f"the manifest is for version {manifest['version']}, not {version}"
        )
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        raise LedgerError("missing_files", f"upload lacks {', '.join(missing)}")
    if BootImage.objects.filter(version=version).exists():
        raise LedgerError("version_exists", f"boot image {version} exists", http_status=409)
    root = Path(settings.ZOS_BOOT_DIR)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".upload-{version}-", dir=root))
    try:
        stored = {}
        for name, stream in files.items():
            if name not in expected:
                raise LedgerError("invalid_manifest", f"{name} was sent but is not in the manifest")
            digest = hashlib.sha256()
            size = 0
            with open(staging / name, "wb") as out:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if digest.hexdigest() != expected[name]["sha256"]:
                raise LedgerError(
                    "checksum_mismatch",
                    f"{name}: sha256 {digest.hexdigest()} differs from the manifest's "
                    f"{expected[name]['sha256']}",
                )
            stored[name] = {"sha256": digest.hexdigest(), "size": size}
        manifest = {**manifest, "version": version, "files": stored}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        # One upload of a version at a time: the directory and its row appear together.
        with _locked(root / f".{version}.lock"):
            if BootImage.objects.filter(version=version).exists():
                raise LedgerError("version_exists", f"boot image {version} exists", http_status=409)
            target = root / version
            if target.exists():  # left over from an upload whose row was never written
                shutil.rmtree(target)
            staging.rename(target)
            with transaction.atomic():
                image = BootImage.objects.create(
                    version=version, manifest=manifest, uploaded_by=uploaded_by
                )
                if make_current:
                    actor = f"user:{uploaded_by}" if uploaded_by else "system"
                    make_current_image(image, actor=actor)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return image


def register_build(build_dir: Path, *, make_current: bool = True) -> BootImage:
    """Register what `python -m image build` left in `build_dir` (manifest.json and files)."""
    try:
        manifest = json.loads((build_dir / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise LedgerError(
            "invalid_manifest", f"no readable manifest.json in {build_dir}: {exc}"
        ) from None
    names = [n for n in manifest.get("files", {}) if n in REQUIRED_FILES + OPTIONAL_FILES]
    manifest = {**manifest, "files": {n: manifest["files"][n] for n in names}}
    with _open_files(build_dir, names) as files:
        return register_boot_image(
            version=str(manifest.get("version", "")),
            manifest=manifest,
            files=files,
            make_current=make_current,
        )


@contextmanager
def _open_files(directory: Path, names: list[str]) -> Iterator[dict[str, BinaryIO]]:
    handles: dict[str, BinaryIO] = {}
    try:
        for name in names:
            handles[name] = open(directory / name, "rb")  # noqa: SIM115  (closed below)
        yield handles
    finally:
        for handle in handles.values():
            handle.close()


def make_current_image(image: BootImage, *, actor: str = "system") -> BootImage:
    with transaction.atomic():
        BootImage.objects.filter(is_current=True).exclude(pk=image.pk).update(is_current=False)
        if not image.is_current:
            image.is_current = True
            image.save(update_fields=["is_current"])
    log.info("boot image %s made current by %s", image.version, actor)
    return image


def image_for(farm: Farm) -> BootImage:
    """The farm's pinned image, else the current one; a clear error when there is none."""
    image = farm.boot_image or BootImage.objects.filter(is_current=True).first()
    if image is None:
        raise LedgerError(
            "no_boot_image",
            f"there is no boot image to serve yet: {NO_IMAGE_HINT}",
            http_status=404,
        )
    return image


def farm_boot_secret(farm: Farm) -> str | None:
    """The enrollment token of the farm's images: kept while valid, else replaced by a new one."""
    if not farm.boot_enroll:
        return None
    current = FarmBootToken.objects.select_related("token").filter(farm=farm).first()
    if current and not current.token.is_expired and current.token.uses_left > 0:
        return current.secret
    with transaction.atomic():
        Farm.objects.select_for_update().get(pk=farm.pk)
        current = FarmBootToken.objects.select_related("token").filter(farm=farm).first()
        if current and not current.token.is_expired and current.token.uses_left > 0:
            return current.secret
        if current:
            current.delete()
        token, secret = create_enrollment_token(
            farm=farm,
            uses=settings.ZOS_BOOT_TOKEN_USES,
            ttl=timedelta(days=settings.ZOS_BOOT_TOKEN_DAYS),
            label="boot images",
        )
        FarmBootToken.objects.create(farm=farm, token=token, secret=secret)
    return secret


def farm_cmdline(image: BootImage, farm: Farm, ledger_url: str, *, approving: bool) -> str:
    """The image's command line with this farm's settings and the pinned release key, and the
    farm's boot token when `approving` (and the farm bakes one in at all)."""
    from contracts.boot_image import farm_cmdline as stamp_cmdline
    from ledger.releases import release_public_key_hex

    base = f"{image.manifest.get('cmdline', '')} zos.release_key={release_public_key_hex()}"
    token = farm_boot_secret(farm) if approving else None
    return stamp_cmdline(base.strip(), ledger_url, farm.pk, token)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _stored(path: Path) -> Artefact | None:
    """A finished artefact: the file exists only once its hash file was written."""
    if not path.exists():
        return None
    sha = path.with_name(path.name + ".sha256").read_text().strip()
    return Artefact(path.name, path, sha, path.stat().st_size)


def _publish(tmp: Path, final: Path) -> Artefact:
    with open(tmp, "rb") as stream:
        sha = file_sha256(stream)
    sha_tmp = final.with_name(f".{final.name}.sha256.tmp")
    sha_tmp.write_text(sha + "\n")
    sha_tmp.replace(final.with_name(final.name + ".sha256"))
    tmp.replace(final)
    return Artefact(final.name, final, sha, final.stat().st_size)


def _evict_old_copies(current: Path) -> None:
    """Keep the newest ZOS_BOOT_STAMPED_KEEP stamped copies of a farm's variant (the current one
    always), and nothing but the variant folders in the farm's folder.

    Every new command line (token renewed, URL or image changed) makes a new copy of zos.efi and
    usb.img; without a bound they pile up. Copies stamped before the variants existed
    (`.farms/<farm>/<version>-<hash>`) are removed here too. A download already streaming an
    evicted file keeps its open handle.
    """
    farm_dir = current.parent.parent
    for leftover in farm_dir.iterdir():
        if leftover.name not in VARIANTS:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
    copies = sorted(
        (p for p in current.parent.iterdir() if p.is_dir() and p != current),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in copies[max(settings.ZOS_BOOT_STAMPED_KEEP - 1, 0) :]:
        shutil.rmtree(old, ignore_errors=True)
        old.with_name(old.name + ".lock").unlink(missing_ok=True)
        log.info("evicted stamped boot files %s", old)


class FarmArtefacts:
    """The artefacts of one farm for one image and command line, made on demand, then cached.

    `approving` asks for the variant carrying the farm's boot token; the caller has checked the
    asker may have it (ledger/boot_links.py). `self.approving` says whether the files really
    carry one (a farm with `boot_enroll` off never does).
    """

    def __init__(
        self, image: BootImage, farm: Farm, ledger_url: str, *, approving: bool = False
    ) -> None:
        self.image = image
        self.farm = farm
        self.ledger_url = ledger_url.rstrip("/")
        self.cmdline = farm_cmdline(image, farm, self.ledger_url, approving=approving)
        self.approving = approving and farm.boot_enroll
        cmd_hash = hashlib.sha256(self.cmdline.encode()).hexdigest()[:16]
        variant = ENROLL if self.approving else PENDING
        self.directory = (
            Path(settings.ZOS_BOOT_DIR)
            / ".farms"
            / str(farm.pk)
            / variant
            / f"{image.version}-{cmd_hash}"
        )

    def get(self, name: str) -> Artefact:
        if name in SHARED:
            info = self.image.files.get(name)
            path = self.image.directory / name
            if info is None or not path.exists():
                raise LedgerError(
                    "no_boot_image",
                    f"boot image {self.image.version} has no {name}: {NO_IMAGE_HINT}",
                    http_status=404,
                )
            return Artefact(name, path, info["sha256"], path.stat().st_size)
        if name not in STAMPED:
            raise LedgerError("not_found", f"no boot artefact {name!r}", http_status=404)
        if found := _stored(self.directory / name):
            return found
        with _locked(self.directory.with_name(self.directory.name + ".lock")):
            self.directory.mkdir(parents=True, exist_ok=True)
            artefact = self._made(name)
        _evict_old_copies(self.directory)
        return artefact

    def _made(self, name: str) -> Artefact:
        """With the lock held: the stored artefact, made now if no request made it before."""
        from bootimage.ipxe import ipxe_script
        from bootimage.stamp import stamp_uki
        from bootimage.tools import BuildError
        from bootimage.usb import make_usb

        final = self.directory / name
        if found := _stored(final):
            return found
        tmp = final.with_name(f".{name}.{os.getpid()}.tmp")
        started = time.monotonic()
        try:
            if name == "zos.efi":
                stamp_uki(self.image.directory / "zos.efi", tmp, self.cmdline)
            elif name == "usb.img":
                make_usb(self._made("zos.efi").path, tmp)
            else:
                tmp.write_text(ipxe_script(self.ledger_url, self.farm.pk, self.cmdline))
            artefact = _publish(tmp, final)
        except BuildError as exc:
            raise LedgerError(
                "stamp_failed",
                f"making {name} for farm {self.farm.pk} failed: {exc}",
                http_status=500,
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
        log.info(
            "stamped %s for farm %s (image %s) in %.1fs",
            name,
            self.farm.pk,
            self.image.version,
            time.monotonic() - started,
        )
        return artefact
