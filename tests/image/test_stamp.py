"""Stamping a built image for a farm: the command line, the UKI's section, the USB disk, iPXE.

These run on a small UKI made from the real systemd stub with stand-in kernel and initrd files:
stamping only moves sections, so it behaves the same as on a 60 MB image, in milliseconds.
"""

import itertools
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from bootimage.ipxe import ipxe_script
from bootimage.stamp import read_cmdline, stamp_uki
from bootimage.usb import make_usb
from contracts.boot_image import farm_cmdline
from image.uki import STUB, build_uki

BASE = "console=ttyS0 panic=-1 quiet zos.version=0.1.0+abc"
TOOLS = ("objcopy", "sgdisk", "mkfs.vfat", "mcopy", "mmd", "mdir")

needs_tools = pytest.mark.skipif(
    not STUB.is_file() or any(shutil.which(tool) is None for tool in TOOLS),
    reason="needs systemd-boot-efi, binutils, gdisk, dosfstools and mtools",
)


def sections(uki: Path) -> list[tuple[str, int, int]]:
    """(name, size, vma) of every section, in the order of the section table."""
    output = subprocess.run(
        ["objdump", "-h", str(uki)], capture_output=True, text=True, check=True
    ).stdout
    rows = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0].isdigit():
            rows.append((fields[1], int(fields[2], 16), int(fields[3], 16)))
    return rows


@pytest.fixture
def small_uki(tmp_path: Path) -> Path:
    (tmp_path / "vmlinuz").write_bytes(b"K" * 300_000)
    (tmp_path / "initrd").write_bytes(b"I" * 700_000)
    out = tmp_path / "zos.efi"
    build_uki(
        vmlinuz=tmp_path / "vmlinuz",
        initrd=tmp_path / "initrd",
        cmdline=BASE,
        osrel="ID=zos\n",
        out=out,
    )
    return out


def test_farm_cmdline_adds_the_farm_settings_to_the_base():
    line = farm_cmdline(BASE, "http://10.0.2.100:8000/", 7, "zet_token-1")
    assert line == BASE + " zos.ledger=http://10.0.2.100:8000 zos.farm=7 zos.enroll=zet_token-1"


def test_farm_cmdline_replaces_settings_already_there():
    once = farm_cmdline(BASE, "http://a:1", 1, "zet_old")
    again = farm_cmdline(once, "https://b", 2, None)
    assert again == BASE + " zos.ledger=https://b zos.farm=2"


@pytest.mark.parametrize(
    ("ledger", "farm", "enroll", "message"),
    [
        ("ftp://x", 1, None, "must start with http"),
        ("http://x", 0, None, "positive integer"),
        ("http://x", True, None, "positive integer"),
        ("http://x", 1, "two words", "without spaces"),
        ("http://x", 1, 'quo"te', "without spaces"),
    ],
)
def test_farm_cmdline_refuses_what_a_kernel_command_line_cannot_carry(
    ledger, farm, enroll, message
):
    with pytest.raises(ValueError, match=message):
        farm_cmdline(BASE, ledger, farm, enroll)


def test_ipxe_script_passes_the_command_line_to_the_kernel():
    script = ipxe_script("http://ledger:8000/", 4, "console=ttyS0 zos.farm=4")
    assert script.startswith("#!ipxe\n")
    assert "kernel http://ledger:8000/boot/4/vmlinuz initrd=initrd console=ttyS0 zos.farm=4" in (
        script
    )
    assert "initrd --name initrd http://ledger:8000/boot/4/initrd" in script
    assert "goto retry" in script  # a failed download is retried, never a dead end


@needs_tools
def test_uki_sections_are_in_address_order_and_do_not_overlap(small_uki: Path):
    table = sections(small_uki)
    names = [name for name, _, _ in table]
    assert names[-4:] == [".osrel", ".cmdline", ".linux", ".initrd"]
    vmas = [vma for _, _, vma in table]
    assert vmas == sorted(vmas)
    for (_, size, vma), (_, _, next_vma) in itertools.pairwise(table):
        assert vma + size <= next_vma


@needs_tools
def test_stamp_replaces_only_the_command_line_even_when_it_grows(small_uki: Path, tmp_path):
    line = farm_cmdline(BASE, "http://10.0.2.100:8000", 12, "zet_" + "x" * 300)
    stamped = tmp_path / "farm" / "zos.efi"
    time.sleep(1.1)  # a later second than the build's: objcopy would write the clock's time
    stamp_uki(small_uki, stamped, line)
    assert read_cmdline(stamped) == line
    assert read_cmdline(small_uki) == BASE  # the build's own image is untouched
    before = {name: (size, vma) for name, size, vma in sections(small_uki)}
    after = {name: (size, vma) for name, size, vma in sections(stamped)}
    assert after[".cmdline"] == (len(line), before[".cmdline"][1])
    assert {k: v for k, v in after.items() if k != ".cmdline"} == {
        k: v for k, v in before.items() if k != ".cmdline"
    }
    restamped = tmp_path / "again.efi"
    stamp_uki(stamped, restamped, BASE)
    assert restamped.read_bytes() == small_uki.read_bytes()


@needs_tools
def test_stamp_refuses_a_command_line_the_kernel_would_cut(small_uki: Path, tmp_path):
    with pytest.raises(ValueError, match="longer than the kernel takes"):
        stamp_uki(small_uki, tmp_path / "x.efi", "a" * 3000)
    assert not (tmp_path / "x.efi").exists()


@needs_tools
def test_usb_image_is_gpt_with_the_uki_as_the_default_efi_loader(small_uki: Path, tmp_path):
    usb = tmp_path / "usb.img"
    make_usb(small_uki, usb)
    table = subprocess.run(
        ["sgdisk", "--print", str(usb)], capture_output=True, text=True, check=True
    ).stdout
    partition = [line.split() for line in table.splitlines() if line.strip().startswith("1 ")]
    assert partition and partition[0][5] == "EF00"
    copy = tmp_path / "copy.efi"
    subprocess.run(
        ["mcopy", "-i", f"{usb}@@1M", "::/EFI/BOOT/BOOTX64.EFI", str(copy)],
        check=True,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    )
    assert copy.read_bytes() == small_uki.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))
