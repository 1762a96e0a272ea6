"""The kernel and the subset of its modules the node needs.

Debian's kernel package holds ~4000 modules (~400 MB); the image carries the drivers a server
boots with (virtio, SATA/NVMe/SCSI, USB storage, common NICs), what the agent uses (btrfs,
bridge, tun, veth, kvm, vhost) and the ACPI power button, plus everything those depend on.
`modules.dep` is generated for the image with `depmod`, so `modprobe` and the modalias
cold-plug in /init work.
"""

import lzma
import re
import shutil
from pathlib import Path

from bootimage.tools import BuildError, run

# Directories and files under lib/modules/<version>/kernel/ whose modules all go in.
MODULE_ROOTS = (
    "arch/x86/kvm",
    "arch/x86/crypto/crc32c-intel.ko",  # btrfs's checksum, a soft dependency modules.dep omits
    "crypto/crc32c_generic.ko",
    "crypto/xxhash_generic.ko",
    "crypto/blake2b_generic.ko",
    "drivers/acpi/button.ko",
    "drivers/ata/ahci.ko",
    "drivers/ata/ata_piix.ko",
    "drivers/ata/ata_generic.ko",
    "drivers/block/loop.ko",
    "drivers/block/nbd.ko",
    "drivers/block/virtio_blk.ko",
    "drivers/input/evdev.ko",
    "drivers/net/ethernet/intel/e1000",
    "drivers/net/ethernet/intel/e1000e",
    "drivers/net/ethernet/intel/igb",
    "drivers/net/ethernet/intel/igc",
    "drivers/net/ethernet/intel/ixgbe",
    "drivers/net/ethernet/intel/i40e",
    "drivers/net/ethernet/realtek",
    "drivers/net/macvlan.ko",
    "drivers/net/macvtap.ko",
    "drivers/net/tap.ko",
    "drivers/net/tun.ko",
    "drivers/net/veth.ko",
    "drivers/net/virtio_net.ko",
    "drivers/net/vxlan",
    "drivers/nvme/host/nvme.ko",
    "drivers/scsi/sd_mod.ko",
    "drivers/scsi/sr_mod.ko",
    "drivers/scsi/virtio_scsi.ko",
    "drivers/usb/host",
    "drivers/usb/storage/usb-storage.ko",
    "drivers/usb/storage/uas.ko",
    "drivers/vhost",
    "drivers/virtio",
    "fs/btrfs",
    "net/8021q",
    "net/bridge",
)
# Index files depmod reads to know what is built in and in what order modules were linked.
MODULE_INDEXES = ("modules.builtin", "modules.builtin.modinfo", "modules.order")
_DEP_LINE = re.compile(r"^([^:]+):(.*)$")


def find_version(staging: Path) -> str:
    versions = sorted(p.name for p in (staging / "lib/modules").iterdir() if p.is_dir())
    if len(versions) != 1:
        raise BuildError(f"expected one kernel in the kernel package, found {versions}")
    return versions[0]


def _module_closure(kernel_dir: Path, roots: tuple[str, ...]) -> set[str]:
    """Every module under `roots` and what they depend on, as paths relative to kernel_dir."""
    deps: dict[str, list[str]] = {}
    for line in (kernel_dir / "modules.dep").read_text().splitlines():
        if match := _DEP_LINE.match(line):
            deps[match.group(1)] = match.group(2).split()
    wanted = [
        module
        for module in deps
        if any(module == f"kernel/{root}" or module.startswith(f"kernel/{root}/") for root in roots)
    ]
    missing = [
        root
        for root in roots
        if not any(m == f"kernel/{root}" or m.startswith(f"kernel/{root}/") for m in wanted)
    ]
    if missing:
        raise BuildError(f"the kernel package has no modules at {', '.join(missing)}")
    closure: set[str] = set()
    while wanted:
        module = wanted.pop()
        if module not in closure:
            closure.add(module)
            wanted.extend(deps.get(module, []))
    return closure


def install_kernel(
    staging: Path, root: Path, roots: tuple[str, ...] = MODULE_ROOTS
) -> tuple[str, Path]:
    """Copy the modules under `roots` (and their dependencies) from the unpacked kernel package
    in `staging` into `root`, run depmod there; return (version, vmlinuz)."""
    version = find_version(staging)
    source = staging / "lib/modules" / version
    if not (source / "modules.dep").is_file():
        run(["depmod", "-b", staging, version], what="indexing the kernel's modules")
    target = root / "usr/lib/modules" / version
    for module in sorted(_module_closure(source, roots)):
        (target / module).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / module, target / module)
    for index in MODULE_INDEXES:
        if (source / index).exists():
            shutil.copy2(source / index, target / index)
    run(["depmod", "-b", root, version], what="indexing the image's modules")
    vmlinuz = staging / "boot" / f"vmlinuz-{version}"
    if not vmlinuz.is_file():
        raise BuildError(f"the kernel package has no {vmlinuz.relative_to(staging)}")
    return version, vmlinuz


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The uncompressed kernel inside a bzImage whose payload is xz-compressed (Debian's).

    QEMU boots an ELF `vmlinux` through its PVH entry point, skipping the real-mode setup and
    the in-guest decompression: under TCG that halves the time to userspace (PLATFORM.md).
    """
    start = bzimage.find(b"\xfd7zXZ\x00")
    if start < 0:
        raise BuildError("no xz stream in the kernel image (not an xz-compressed bzImage?)")
    data = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(bzimage[start:])
    if not data.startswith(b"\x7fELF"):
        raise BuildError("the xz payload of the kernel image is not an ELF vmlinux")
    return data
