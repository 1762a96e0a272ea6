"""The USB disk image: GPT with one EFI system partition holding the UKI as the default loader.

Made without mounting anything (no loop devices, no root needed): sgdisk writes the partition
table, `mkfs.vfat --offset` formats the partition inside the file, mtools copies the UKI in.
Any UEFI machine boots `EFI/BOOT/BOOTX64.EFI` from such a disk without a boot entry.
"""

import os
import shutil
from pathlib import Path

from bootimage.tools import BuildError, run

MIB = 1 << 20
PARTITION_START_MIB = 1
SLACK_MIB = 8
MIN_ESP_MIB = 40  # FAT32 needs 65525 clusters: 33 MiB with 512-byte clusters


def esp_size_mib(uki_size: int) -> int:
    return max(MIN_ESP_MIB, -(-uki_size // MIB) + SLACK_MIB)


def make_usb(uki: Path, dst: Path) -> None:
    """Write a bootable disk image holding `uki`; `dst` appears atomically when complete."""
    make_esp_disk({"EFI/BOOT/BOOTX64.EFI": Path(uki)}, dst)


def make_esp_disk(files: dict[str, Path], dst: Path) -> None:
    """A GPT disk image whose EFI system partition holds `files` ({path on the ESP: source})."""
    dst = Path(dst)
    missing = [t for t in ("sgdisk", "mkfs.vfat", "mmd", "mcopy") if shutil.which(t) is None]
    if missing:
        raise BuildError(
            f"making {dst.name} needs {', '.join(missing)}: apt-get install gdisk dosfstools mtools"
        )
    esp_mib = esp_size_mib(sum(Path(source).stat().st_size for source in files.values()))
    # GPT: 1 MiB before the partition, and the backup table in the last 1 MiB.
    total = (PARTITION_START_MIB + esp_mib + 1) * MIB
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as disk:
            disk.truncate(total)
        run(
            [
                "sgdisk",
                "--clear",
                f"--new=1:{PARTITION_START_MIB * 2048}:+{esp_mib}M",
                "--typecode=1:ef00",
                "--change-name=1:ZOS",
                tmp,
            ],
            what=f"partitioning {dst.name}",
        )
        run(
            [
                "mkfs.vfat",
                "-F",
                "32",
                "-n",
                "ZOS",
                "--offset",
                str(PARTITION_START_MIB * 2048),
                tmp,
                str(esp_mib * 1024),
            ],
            what=f"formatting the EFI partition of {dst.name}",
        )
        image = f"{tmp}@@{PARTITION_START_MIB}M"
        env = {"MTOOLS_SKIP_CHECK": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        directories = sorted(
            {str(parent) for name in files for parent in Path(name).parents if str(parent) != "."}
        )
        if directories:
            run(
                ["mmd", "-i", image, *(f"::/{d}" for d in directories)], what="making dirs", env=env
            )
        for name, source in files.items():
            run(["mcopy", "-i", image, source, f"::/{name}"], what=f"copying {name}", env=env)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
