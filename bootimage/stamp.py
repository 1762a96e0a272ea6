"""Per-farm images from one build, in seconds: only the kernel command line changes.

A farm's nodes boot with the command line `contracts.boot_image.farm_cmdline` makes
(nodeagent/config.py reads it from /proc/cmdline). Stamping rewrites the UKI's `.cmdline`
section with objcopy and rebuilds the small USB image around it; the root filesystem is never
rebuilt. The ledger calls these functions to serve `/boot/<farm>/...`, so this module and those
it imports never touch Django.
"""

import os
import struct
import sys
import tempfile
from array import array
from pathlib import Path

from bootimage.tools import BuildError, run

# Where our UKIs keep the command line: image/uki.py lays the sections out around these.
CMDLINE_VMA = 0x30000
LINUX_VMA = 0x2000000
CMDLINE_LIMIT = LINUX_VMA - CMDLINE_VMA
KERNEL_CMDLINE_MAX = 2047  # x86 COMMAND_LINE_SIZE is 2048 with the NUL


def read_cmdline(uki: Path) -> str:
    """The command line baked into a UKI (what `stamp_uki` wrote)."""
    with tempfile.TemporaryDirectory(prefix="zos-cmdline-") as tmp:
        out = Path(tmp) / "cmdline"
        run(
            ["objcopy", "-O", "binary", "--only-section=.cmdline", uki, out],
            what=f"reading the command line of {uki}",
        )
        return out.read_bytes().rstrip(b"\0\n").decode()


def stamp_uki(src: Path, dst: Path, cmdline: str) -> None:
    """Write `src` to `dst` with `.cmdline` replaced; `dst` appears atomically when complete."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise BuildError(f"no UKI at {src}: run `python -m image build` first")
    if "\n" in cmdline or "\0" in cmdline:
        raise ValueError("a kernel command line is one line without NUL bytes")
    if len(cmdline.encode()) > min(CMDLINE_LIMIT, KERNEL_CMDLINE_MAX):
        raise ValueError(
            f"a command line of {len(cmdline.encode())} bytes is longer than the kernel takes "
            f"({KERNEL_CMDLINE_MAX})"
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, text_path = tempfile.mkstemp(prefix=".cmdline-", dir=dst.parent)
    with os.fdopen(fd, "w") as text:
        text.write(cmdline)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        run(
            # --update-section cannot grow a PE section: replace it (objcopy keeps VMA order).
            [
                "objcopy",
                "--remove-section=.cmdline",
                f"--add-section=.cmdline={text_path}",
                f"--change-section-vma=.cmdline={CMDLINE_VMA:#x}",
                src,
                tmp,
            ],
            what=f"stamping the command line into {dst.name}",
        )
        keep_pe_timestamp(src, tmp)
        tmp.replace(dst)
    finally:
        os.unlink(text_path)
        tmp.unlink(missing_ok=True)


def keep_pe_timestamp(src: Path, dst: Path) -> None:
    """Give `dst` the PE header timestamp of `src`, with its checksum made again.

    objcopy writes the current time into the header, so the same stamp made a second later
    differed from the first (and re-stamping a build's own line gave another file than the
    build): a stamped image must differ from its build in its command line only.
    """
    source = src.read_bytes()
    data = bytearray(dst.read_bytes())
    header = struct.unpack_from("<I", data, 0x3C)[0]
    timestamp, checksum = header + 8, header + 24 + 64  # COFF header, then optional header
    data[timestamp : timestamp + 4] = source[timestamp : timestamp + 4]
    struct.pack_into("<I", data, checksum, _pe_checksum(data, checksum))
    dst.write_bytes(data)


def _pe_checksum(data: bytearray, field: int) -> int:
    """The PE image checksum (as objcopy computes it): 16-bit words summed with end-around
    carry, the checksum field counted as zero, plus the file's length."""
    words = array("H")
    words.frombytes(
        bytes(data[:field]) + bytes(4) + bytes(data[field + 4 :]) + bytes(len(data) % 2)
    )
    if sys.byteorder == "big":
        words.byteswap()
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (total + len(data)) & 0xFFFFFFFF
