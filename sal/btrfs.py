"""btrfs storage pools: one whole disk per pool, subvolumes with qgroup limits, snapshots, usage.

ARCHITECTURE §6: volumes, VM disks and databases live in subvolumes of a pool, each capped by a
qgroup limit so one workload cannot fill the disk for the others. Everything goes through
btrfs-progs (via sal.command, with timeouts) and parses its plain-text output, because the
btrfs-progs shipped with Debian 12 has no JSON output for these commands.
"""

from __future__ import annotations

import os
from pathlib import Path

from sal.command import CommandFailed, SalError, run

# Metadata operations take milliseconds; a commit on a busy disk can take seconds.
TIMEOUT = 60.0


def validate_name(name: str, what: str = "subvolume") -> str:
    """Refuse names that would escape the pool or hide from listings."""
    if not isinstance(name, str) or not name:
        raise SalError(f"{what} name must be a non-empty string, got {name!r}")
    if "/" in name or "\0" in name:
        raise SalError(f"{what} name {name!r} must not contain '/'")
    if name.startswith("."):
        raise SalError(f"{what} name {name!r} must not start with '.' (hidden names and '..')")
    if len(name.encode()) > 255:
        raise SalError(f"{what} name {name!r} is longer than 255 bytes")
    return name


def make_pool(device: str, label: str) -> None:
    """Create a btrfs filesystem on a whole, empty disk.

    Refuses a device that already holds a filesystem or a partition table: formatting a disk
    that is in use would destroy a farmer's data, so wiping it must be a deliberate act.
    """
    validate_name(label, "pool label")
    found = _signatures(device)
    if found:
        raise SalError(
            f"refusing to make a pool on {device}: it already holds {found}. "
            f"If its data is no longer needed, wipe it with `wipefs --all {device}` and retry."
        )
    run(["mkfs.btrfs", "-q", "-L", label, device], timeout=TIMEOUT)


def _signatures(device: str) -> str:
    """Describe what a low-level probe finds on the device ('' when it is blank)."""
    if not Path(device).exists():
        raise SalError(f"no such device: {device}")
    probe = run(["blkid", "-p", "-o", "export", device], check=False, timeout=TIMEOUT)
    if probe.returncode == 2:  # blkid: nothing recognised
        return ""
    if probe.returncode != 0:
        raise CommandFailed(
            ["blkid", "-p", "-o", "export", device],
            f"exited with status {probe.returncode}",
            probe.stderr,
        )
    fields = dict(line.split("=", 1) for line in probe.stdout.splitlines() if "=" in line)
    if "PTTYPE" in fields:
        return f"a {fields['PTTYPE']} partition table"
    if "TYPE" in fields:
        label = f" labelled {fields['LABEL']!r}" if fields.get("LABEL") else ""
        return f"a {fields['TYPE']} filesystem{label}"
    return "a signature blkid recognises"


def mount_pool(device: str, mountpoint: str | os.PathLike[str]) -> Pool:
    """Mount a pool and turn quotas on, since every subvolume ZOS makes is quota-limited."""
    target = Path(mountpoint)
    target.mkdir(parents=True, exist_ok=True)
    if not _is_mountpoint(target):
        run(["mount", "-t", "btrfs", device, str(target)], timeout=TIMEOUT)
    pool = Pool(target)
    pool.enable_quota()
    return pool


def unmount_pool(mountpoint: str | os.PathLike[str]) -> None:
    """Unmount a pool; a no-op when nothing is mounted there."""
    target = Path(mountpoint)
    if _is_mountpoint(target):
        run(["umount", str(target)], timeout=TIMEOUT)


def _is_mountpoint(path: Path) -> bool:
    return run(["mountpoint", "-q", str(path)], check=False).returncode == 0


class Pool:
    """A mounted btrfs pool; subvolumes are addressed by name directly under the mountpoint."""

    def __init__(self, mountpoint: str | os.PathLike[str]) -> None:
        self.mountpoint = Path(mountpoint)

    def __repr__(self) -> str:
        return f"Pool({str(self.mountpoint)!r})"

    def _btrfs(self, *args: str) -> str:
        return run(["btrfs", *args], timeout=TIMEOUT).stdout

    def enable_quota(self) -> None:
        """Turn qgroup accounting on (idempotent); limits and per-subvolume usage need it."""
        self._btrfs("quota", "enable", str(self.mountpoint))
