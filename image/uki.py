"""The unified kernel image: systemd's EFI stub with the kernel, initrd and command line inside.

One EFI binary boots the node from any UEFI machine: firmware runs the stub, the stub starts the
kernel from `.linux` with the initrd from `.initrd` and the command line from `.cmdline`. That
last section is what `bootimage.stamp` rewrites per farm.
"""

from pathlib import Path

from bootimage.stamp import CMDLINE_LIMIT, CMDLINE_VMA, LINUX_VMA
from bootimage.tools import BuildError, run

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
OSREL_VMA = 0x20000
ALIGN = 0x1000000  # 16 MiB between the big sections keeps them clear of each other


def _align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def section_vmas(linux_size: int) -> dict[str, int]:
    """Where each section goes: fixed for the small ones, after the kernel for the initrd.

    The stub's own sections end below 0x20000. The initrd is placed after the kernel however big
    the kernel is, so a large initrd never overlaps it (the initrd is the last section).
    """
    return {
        ".osrel": OSREL_VMA,
        ".cmdline": CMDLINE_VMA,
        ".linux": LINUX_VMA,
        ".initrd": _align_up(LINUX_VMA + linux_size, ALIGN),
    }


def build_uki(
    *, vmlinuz: Path, initrd: Path, cmdline: str, osrel: str, out: Path, stub: Path = STUB
) -> None:
    if not stub.is_file():
        raise BuildError(f"{stub} is missing: apt-get install systemd-boot-efi")
    if len(cmdline.encode()) >= CMDLINE_LIMIT:
        raise BuildError("the kernel command line is too long for the UKI's .cmdline section")
    work = out.parent
    cmdline_file = work / ".cmdline.txt"
    osrel_file = work / ".osrel.txt"
    cmdline_file.write_text(cmdline)
    osrel_file.write_text(osrel)
    files = {".osrel": osrel_file, ".cmdline": cmdline_file, ".linux": vmlinuz, ".initrd": initrd}
    args: list[str | Path] = ["objcopy"]
    for name, vma in section_vmas(vmlinuz.stat().st_size).items():
        args += [
            f"--add-section={name}={files[name]}",
            f"--change-section-vma={name}={vma:#x}",
        ]
    tmp = out.with_name(out.name + ".tmp")
    try:
        run([*args, stub, tmp], what="assembling the UKI")
        tmp.replace(out)
    finally:
        cmdline_file.unlink(missing_ok=True)
        osrel_file.unlink(missing_ok=True)
