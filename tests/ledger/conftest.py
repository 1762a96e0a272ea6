"""Shared by the boot tests: a tiny real build, the boot directories, reading what was served."""

import os
import shutil
from pathlib import Path

import pytest

from ledger.boot import register_build
from ledger.models import BootImage

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
TOOLS = ("objcopy", "sgdisk", "mkfs.vfat", "mcopy")


def make_build(out: Path, version: str = "0.1.0+test1", *, initrd_size: int = 32 * 1024) -> Path:
    """What `python -m image build` leaves behind, in miniature."""
    from image.manifest import write_manifest
    from image.uki import build_uki

    out.mkdir(parents=True)
    (out / "vmlinuz").write_bytes(os.urandom(32 * 1024))
    (out / "initrd").write_bytes(os.urandom(initrd_size))
    cmdline = f"console=ttyS0,115200 panic=-1 zos.version={version}"
    build_uki(
        vmlinuz=out / "vmlinuz",
        initrd=out / "initrd",
        cmdline=cmdline,
        osrel=f"ID=zos\nVERSION_ID={version}\n",
        out=out / "zos.efi",
    )
    write_manifest(out, {"version": version, "cmdline": cmdline}, ["zos.efi", "vmlinuz", "initrd"])
    return out


@pytest.fixture
def boot_dirs(settings, tmp_path):
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing or not STUB.exists():
        pytest.skip(f"stamping needs {missing or STUB} (scripts/setup.sh installs them)")
    settings.ZOS_BOOT_DIR = tmp_path / "boot"
    settings.ZOS_RELEASE_KEY_FILE = tmp_path / "release.key"
    settings.ZOS_PUBLIC_URL = "http://testserver"
    return tmp_path


@pytest.fixture
def image(boot_dirs) -> BootImage:
    return register_build(make_build(boot_dirs / "build"))


def cmdline_of(uki: bytes, tmp_path: Path) -> str:
    from bootimage.stamp import read_cmdline

    path = tmp_path / "downloaded.efi"
    path.write_bytes(uki)
    return read_cmdline(path)


def body(response) -> bytes:
    return b"".join(response.streaming_content)
