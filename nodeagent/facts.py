"""Capacity and hardware facts read from the machine (ARCHITECTURE §2 step 5).

The ledger schedules on these numbers, so they come from the kernel, not from configuration;
overrides exist for tests and for development machines that should pretend to be something else.
Every read is defensive: a box with an odd /sys still registers, with a fallback value, rather
than an agent that crashes at boot where nobody can see why.
"""

import json
import logging
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PROC = Path("/proc")
SYS = Path("/sys")
DMI = SYS / "class/dmi/id"
EFIVARS = SYS / "firmware/efi/efivars"
SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
IP_TIMEOUT = 5.0
OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")

# Filesystems that live in RAM: counting them as disk would hide the `no_disk` health flag.
MEMORY_FILESYSTEMS = {"tmpfs", "ramfs", "devtmpfs"}
# Values firmware vendors leave in DMI serial fields; they identify nothing.
PLACEHOLDER_SERIALS = {
    "",
    "0",
    "none",
    "default string",
    "not specified",
    "not applicable",
    "system serial number",
    "to be filled by o.e.m.",
    "0123456789",
}
HYPERVISOR_VENDORS = (
    "qemu",
    "kvm",
    "vmware",
    "virtualbox",
    "innotek",
    "xen",
    "bochs",
    "microsoft corporation virtual machine",
    "amazon ec2",
    "google",
)
CAPACITY_KEYS = ("cru", "mru", "sru", "hru")


@dataclass(frozen=True)
class Capacity:
    cru: int  # logical CPUs
    mru: int  # RAM bytes
    sru: int  # SSD bytes
    hru: int  # HDD bytes


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str
    ips: list[str] = field(default_factory=list)  # "addr/prefixlen"


@dataclass(frozen=True)
class NodeFacts:
    capacity: Capacity
    interfaces: list[Interface]
    serial: str
    secure_boot: bool
    virtualized: bool

    def to_dict(self) -> dict:
        """The shape the ledger's register call takes; also what the agent diffs to re-register."""
        return {
            "capacity": {key: getattr(self.capacity, key) for key in CAPACITY_KEYS},
            "interfaces": [
                {"name": i.name, "mac": i.mac, "ips": list(i.ips)} for i in self.interfaces
            ],
            "serial": self.serial,
            "secure_boot": self.secure_boot,
            "virtualized": self.virtualized,
        }


def read_facts(
    *, storage_paths: Sequence[Path] = (), overrides: Mapping[str, Any] | None = None
) -> NodeFacts:
    """Read the machine's facts, then apply `overrides` (validated before anything is read).

    `storage_paths` are the node's mounted pools; with none, sru = hru = 0 and the caller
    reports `no_disk`.
    """
    checked = _check_overrides(overrides or {})
    sru, hru = read_storage(storage_paths)
    facts = NodeFacts(
        capacity=Capacity(cru=read_cpu_count(), mru=read_memory_bytes(), sru=sru, hru=hru),
        interfaces=read_interfaces(),
        serial=read_serial(),
        secure_boot=read_secure_boot(),
        virtualized=read_virtualized(),
    )
    if "capacity" in checked:
        checked["capacity"] = replace(facts.capacity, **checked["capacity"])
    return replace(facts, **checked)


def read_cpu_count() -> int:
    """Logical CPUs this process may run on: the same number `nproc` prints."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    cpuinfo = _read_text(PROC / "cpuinfo")
    count = sum(1 for line in cpuinfo.splitlines() if line.split(":")[0].strip() == "processor")
    return count or os.cpu_count() or 1


def read_memory_bytes() -> int:
    for line in _read_text(PROC / "meminfo").splitlines():
        name, _, value = line.partition(":")
        if name == "MemTotal":
            fields = value.split()
            if fields and fields[0].isdigit():
                return int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0


def read_storage(paths: Sequence[Path]) -> tuple[int, int]:
    """Return (ssd_bytes, hdd_bytes) of the filesystems holding `paths`, each counted once.

    Filesystems are told apart by their backing block device, so two btrfs subvolumes of one
    pool (which have different st_dev) are still one pool.
    """
    mounts = _read_mountinfo()
    seen: set[tuple[str, int]] = set()
    ssd = hdd = 0
    for path in paths:
        try:
            st_dev = os.stat(path).st_dev
            vfs = os.statvfs(path)
        except OSError as exc:
            log.warning("storage path %s is not readable, not counted: %s", path, exc)
            continue
        mount = _mount_of(Path(path), mounts)
        if mount and mount.fstype in MEMORY_FILESYSTEMS:
            log.debug("storage path %s is on %s (memory), not counted", path, mount.fstype)
            continue
        device = _block_device(mount) if mount else None
        key = ("block", device) if device is not None else ("dev", st_dev)
        if key in seen:
            continue
        seen.add(key)
        size = vfs.f_blocks * vfs.f_frsize
        if device is not None and _is_rotational(device):
            hdd += size
        else:
            ssd += size
    return ssd, hdd


def disk_class(path: Path) -> str:
    """The capacity key a pool's space counts under: "hru" on a rotational disk, else "sru"."""
    return "hru" if read_storage([path])[1] else "sru"


@dataclass(frozen=True)
class _Mount:
    point: Path
    device: int  # st_dev of the mounted filesystem's superblock
    fstype: str
    source: str


def _read_mountinfo() -> list[_Mount]:
    mounts = []
    for line in _read_text(PROC / "self/mountinfo").splitlines():
        left, sep, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        if not sep or len(fields) < 5 or len(after) < 2:
            continue
        major, _, minor = fields[2].partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        mounts.append(
            _Mount(
                point=Path(_unescape(fields[4])),
                device=os.makedev(int(major), int(minor)),
                fstype=after[0],
                source=_unescape(after[1]),
            )
        )
    return mounts


def _unescape(text: str) -> str:
    r"""mountinfo writes space, tab, newline and backslash as octal escapes (\040 ...)."""
    return OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), text)


def _mount_of(path: Path, mounts: list[_Mount]) -> _Mount | None:
    """The mount holding `path`: the longest mount point above it, the last one when stacked."""
    try:
        resolved = path.resolve()
    except OSError:
        return None
    best = None
    for mount in mounts:
        if resolved.is_relative_to(mount.point) and (
            best is None or len(mount.point.parts) >= len(best.point.parts)
        ):
            best = mount
    return best


def _block_device(mount: _Mount) -> int | None:
    """The block device under a mount, or None for filesystems without one (overlay, nfs)."""
    if _sys_block(mount.device).exists():
        return mount.device
    # btrfs reports an anonymous device (0:N); its source names the real disk.
    if mount.source.startswith("/dev/"):
        try:
            rdev = os.stat(mount.source).st_rdev
        except OSError:
            return None
        if rdev and _sys_block(rdev).exists():
            return rdev
    return None


def _sys_block(device: int) -> Path:
    return SYS / "dev/block" / f"{os.major(device)}:{os.minor(device)}"


def _is_rotational(device: int) -> bool:
    """A partition has no queue of its own: its parent directory in sysfs is the whole disk."""
    try:
        node = _sys_block(device).resolve()
    except OSError:
        return False
    if (node / "partition").exists():
        node = node.parent
    return _read_text(node / "queue/rotational").strip() == "1"


def read_interfaces() -> list[Interface]:
    """Physical interfaces from `ip -json addr`; without iproute2, names and MACs from sysfs.

    Only links backed by a device count: the taps, bridges and veths workloads create come and go,
    and reporting them would re-register the node at every VM start.
    """
    try:
        done = subprocess.run(
            ["ip", "-json", "addr", "show"],
            capture_output=True,
            check=True,
            text=True,
            timeout=IP_TIMEOUT,
        )
        links = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        log.debug("`ip -json addr show` failed (%s): reading /sys/class/net", exc)
        return _interfaces_from_sysfs()
    interfaces = []
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict) or "ifname" not in link:
            continue
        if not _is_physical(link["ifname"]):
            continue
        ips = [
            f"{addr['local']}/{addr['prefixlen']}"
            for addr in link.get("addr_info", [])
            if addr.get("scope") in ("global", "link") and "local" in addr and "prefixlen" in addr
        ]
        interfaces.append(Interface(name=link["ifname"], mac=link.get("address", ""), ips=ips))
    return interfaces


def _is_physical(name: str) -> bool:
    return (SYS / "class/net" / name / "device").exists()


def _interfaces_from_sysfs() -> list[Interface]:
    net = SYS / "class/net"
    try:
        names = sorted(entry.name for entry in net.iterdir())
    except OSError:
        return []
    return [
        Interface(name=name, mac=_read_text(net / name / "address").strip(), ips=[])
        for name in names
        if _is_physical(name)
    ]


def read_serial() -> str:
    for name in ("product_serial", "board_serial", "product_uuid"):
        value = _read_text(DMI / name).strip()
        if value.lower() not in PLACEHOLDER_SERIALS:
            return value
    return ""


def read_secure_boot() -> bool:
    """The EFI variable is 4 attribute bytes then the value; absent on BIOS machines."""
    try:
        data = (EFIVARS / SECURE_BOOT_VAR).read_bytes()
    except OSError:
        return False
    return len(data) > 4 and data[-1] == 1


def read_virtualized() -> bool:
    for line in _read_text(PROC / "cpuinfo").splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags" and "hypervisor" in value.split():
            return True
    vendor = " ".join(
        _read_text(DMI / name).strip() for name in ("sys_vendor", "product_name")
    ).lower()
    return any(needle in vendor for needle in HYPERVISOR_VENDORS)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _check_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return the overrides as NodeFacts fields, or raise ValueError naming the bad key."""
    if not isinstance(overrides, Mapping):
        raise ValueError(f"facts overrides must be a JSON object, got {type(overrides).__name__}")
    checked: dict[str, Any] = {}
    for key, value in overrides.items():
        if key == "capacity":
            checked[key] = _check_capacity(value)
        elif key == "interfaces":
            checked[key] = _check_interfaces(value)
        elif key == "serial":
            if not isinstance(value, str):
                raise ValueError(f"facts override 'serial' must be a string, got {value!r}")
            checked[key] = value
        elif key in ("secure_boot", "virtualized"):
            if not isinstance(value, bool):
                raise ValueError(f"facts override {key!r} must be true or false, got {value!r}")
            checked[key] = value
        else:
            known = "capacity, interfaces, serial, secure_boot, virtualized"
            raise ValueError(f"unknown facts override {key!r}: expected one of {known}")
    return checked


def _check_capacity(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ValueError(f"facts override 'capacity' must be an object, got {value!r}")
    for key, amount in value.items():
        if key not in CAPACITY_KEYS:
            raise ValueError(
                f"unknown facts override 'capacity.{key}': expected {', '.join(CAPACITY_KEYS)}"
            )
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(
                f"facts override 'capacity.{key}' must be a non-negative integer, got {amount!r}"
            )
    return dict(value)


def _check_interfaces(value: Any) -> list[Interface]:
    if not isinstance(value, list):
        raise ValueError(f"facts override 'interfaces' must be a list, got {value!r}")
    interfaces = []
    for index, item in enumerate(value):
        where = f"interfaces[{index}]"
        if not isinstance(item, Mapping) or set(item) - {"name", "mac", "ips"}:
            raise ValueError(f"facts override {where!r} must be an object of name, mac, ips")
        name, mac, ips = item.get("name"), item.get("mac", ""), item.get("ips", [])
        if not isinstance(name, str) or not name:
            raise ValueError(f"facts override '{where}.name' must be a non-empty string")
        if not isinstance(mac, str):
            raise ValueError(f"facts override '{where}.mac' must be a string, got {mac!r}")
        if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
            raise ValueError(f"facts override '{where}.ips' must be a list of strings")
        interfaces.append(Interface(name=name, mac=mac, ips=list(ips)))
    return interfaces
