"""btrfs storage pools: one whole disk per pool, subvolumes with qgroup limits, snapshots, usage.

ARCHITECTURE §6: volumes, VM disks and databases live in subvolumes of a pool, each capped by a
qgroup limit so one workload cannot fill the disk for the others. Everything goes through
btrfs-progs (via sal.command, with timeouts) and parses its plain-text output, because the
btrfs-progs shipped with Debian 12 has no JSON output for these commands.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sal.command import CommandFailed, SalError, run, run_json

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


@dataclass(frozen=True)
class PoolInfo:
    """A btrfs filesystem the kernel can see, and where it is mounted (if anywhere)."""

    label: str | None
    uuid: str
    devices: list[str] = field(default_factory=list)
    mountpoints: list[str] = field(default_factory=list)


_SHOW_LABEL = re.compile(r"^Label:\s+(?:'(?P<label>.*)'|none)\s+uuid:\s+(?P<uuid>\S+)")
_SHOW_DEVICE = re.compile(r"^\s*devid\s+\d+\s.*\spath\s+(?P<path>\S+)")


def find_pools() -> list[PoolInfo]:
    """Every btrfs filesystem on this machine's block devices, with its mountpoints.

    The node agent calls this at boot to mount the pools it made before instead of formatting
    new disks.
    """
    text = run(["btrfs", "filesystem", "show", "--raw"], timeout=TIMEOUT).stdout
    mounts = run_json(
        ["findmnt", "--json", "--types", "btrfs", "--output", "TARGET,SOURCE", "--nofsroot"]
    )
    mounted: dict[str, list[str]] = {}
    for entry in (mounts or {}).get("filesystems", []):
        mounted.setdefault(entry["source"], []).append(entry["target"])
    pools: list[PoolInfo] = []
    for line in text.splitlines():
        if m := _SHOW_LABEL.match(line):
            pools.append(PoolInfo(label=m["label"], uuid=m["uuid"]))
        elif (m := _SHOW_DEVICE.match(line)) and pools:
            pools[-1].devices.append(m["path"])
            pools[-1].mountpoints.extend(mounted.get(m["path"], []))
    return pools


@dataclass(frozen=True)
class Subvolume:
    """A top-level subvolume of a pool; read-only ones are frozen snapshots."""

    name: str
    id: int
    path: Path
    readonly: bool


@dataclass(frozen=True)
class SubvolumeUsage:
    """Bytes a subvolume references (its size as the quota sees it) and holds exclusively."""

    referenced: int
    exclusive: int
    limit: int | None


@dataclass(frozen=True)
class PoolUsage:
    """Whole-pool figures in bytes; free is btrfs's estimate of what can still be written."""

    size: int
    used: int
    free: int


class Pool:
    """A mounted btrfs pool; subvolumes are addressed by name directly under the mountpoint."""

    def __init__(self, mountpoint: str | os.PathLike[str]) -> None:
        self.mountpoint = Path(mountpoint)

    def __repr__(self) -> str:
        return f"Pool({str(self.mountpoint)!r})"

    def _btrfs(self, *args: str, timeout: float = TIMEOUT) -> str:
        return run(["btrfs", *args], timeout=timeout).stdout

    def enable_quota(self) -> None:
        """Turn qgroup accounting on (idempotent); limits and per-subvolume usage need it.

        Waits for the initial rescan so usage figures are right from the first call.
        """
        self._btrfs("quota", "enable", str(self.mountpoint))
        self._btrfs("quota", "rescan", "-W", str(self.mountpoint), timeout=300)

    # -- subvolumes -----------------------------------------------------------------------

    def path(self, name: str) -> Path:
        """Where the subvolume `name` lives (validated, so it cannot point outside the pool)."""
        return self.mountpoint / validate_name(name)

    def exists(self, name: str) -> bool:
        """True when `name` is a subvolume of this pool."""
        return _is_subvolume(self.path(name))

    def _require(self, name: str) -> Path:
        target = self.path(name)
        if not _is_subvolume(target):
            raise SalError(f"no subvolume {name!r} in pool {self.mountpoint}")
        return target

    def create_subvolume(self, name: str, *, limit: int | None = None) -> Path:
        """Create subvolume `name` (a no-op when it exists) and cap it at `limit` bytes if given.

        Idempotent so a job retried after a crash converges instead of failing.
        """
        target = self.path(name)
        if target.exists() and not _is_subvolume(target):
            raise SalError(f"cannot create subvolume {name!r}: {target} exists and is not one")
        if not target.exists():
            self._btrfs("subvolume", "create", str(target))
        if limit is not None:
            self.set_limit(name, limit)
        return target

    def set_limit(self, name: str, limit: int | None) -> None:
        """Cap the bytes the subvolume may reference; None removes the cap."""
        target = self._require(name)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise SalError(f"limit for {name!r} must be a whole number of bytes, got {limit!r}")
        if limit is not None and limit <= 0:
            raise SalError(f"limit for {name!r} must be positive, got {limit}")
        self._btrfs("qgroup", "limit", "none" if limit is None else str(limit), str(target))

    def get_limit(self, name: str) -> int | None:
        """The subvolume's byte cap, or None when it has none."""
        return self.usage(name).limit

    def delete_subvolume(self, name: str) -> None:
        """Delete the subvolume and its qgroup; a no-op when it does not exist.

        `--commit-each` makes the deletion durable at once; without it a later
        `btrfs subvolume sync` can wait ~30 s for the cleaner (PLATFORM.md).
        """
        target = self.path(name)
        if not target.exists():
            return
        if not _is_subvolume(target):
            raise SalError(f"cannot delete {name!r}: {target} is not a subvolume")
        subvol_id = self._root_id(target)
        self._btrfs("subvolume", "delete", "--commit-each", str(target))
        self._destroy_qgroup(subvol_id)

    def _destroy_qgroup(self, subvol_id: int) -> None:
        """Remove the deleted subvolume's qgroup unless the kernel already has (6.x does)."""
        argv = ["btrfs", "qgroup", "destroy", f"0/{subvol_id}", str(self.mountpoint)]
        for attempt in range(2):
            done = run(argv, check=False, timeout=TIMEOUT)
            if done.returncode == 0 or "No such file" in done.stderr:
                return
            if attempt == 0:  # still being cleaned up: wait for the cleaner, then retry
                self._btrfs("subvolume", "sync", str(self.mountpoint), str(subvol_id))
        raise CommandFailed(argv, f"exited with status {done.returncode}", done.stderr)

    def snapshot(self, source: str, name: str, *, readonly: bool = False) -> Path:
        """Snapshot subvolume `source` as a new subvolume `name` (copy-on-write, instant)."""
        src = self._require(source)
        target = self.path(name)
        if target.exists():
            raise SalError(f"cannot snapshot {source!r} as {name!r}: {target} already exists")
        args = ["subvolume", "snapshot", *(["-r"] if readonly else []), str(src), str(target)]
        self._btrfs(*args)
        return target

    def list_subvolumes(self) -> list[Subvolume]:
        """The pool's top-level subvolumes, by name."""
        readonly = {sid for sid, _ in self._list("-r")}
        return sorted(
            (
                Subvolume(name=path, id=sid, path=self.mountpoint / path, readonly=sid in readonly)
                for sid, path in self._list()
                if "/" not in path
            ),
            key=lambda s: s.name,
        )

    def _list(self, *flags: str) -> list[tuple[int, str]]:
        out = self._btrfs("subvolume", "list", *flags, str(self.mountpoint))
        found = []
        for line in out.splitlines():
            m = _LIST_LINE.match(line)
            if m:
                found.append((int(m["id"]), m["path"]))
        return found

    def _root_id(self, target: Path) -> int:
        return int(self._btrfs("inspect-internal", "rootid", str(target)).strip())

    # -- usage ----------------------------------------------------------------------------

    def usage(self, name: str) -> SubvolumeUsage:
        """Referenced and exclusive bytes of one subvolume, and its limit."""
        subvol_id = self._root_id(self._require(name))
        try:
            return self._qgroups()[subvol_id]
        except KeyError:
            raise SalError(
                f"subvolume {name!r} has no qgroup in {self.mountpoint} (are quotas enabled?)"
            ) from None

    def usages(self) -> dict[str, SubvolumeUsage]:
        """Usage of every top-level subvolume, by name."""
        qgroups = self._qgroups()
        return {s.name: qgroups[s.id] for s in self.list_subvolumes() if s.id in qgroups}

    def _qgroups(self) -> dict[int, SubvolumeUsage]:
        """Parse `btrfs qgroup show --raw -re`: level-0 qgroups by subvolume id."""
        out = self._btrfs("qgroup", "show", "--raw", "-re", "--sync", str(self.mountpoint))
        found: dict[int, SubvolumeUsage] = {}
        for line in out.splitlines():
            m = _QGROUP_LINE.match(line)
            if m:
                limit = None if m["max_rfer"] == "none" else int(m["max_rfer"])
                found[int(m["id"])] = SubvolumeUsage(int(m["rfer"]), int(m["excl"]), limit)
        return found

    def pool_usage(self) -> PoolUsage:
        """Size, used and estimated free bytes of the whole pool (`btrfs filesystem usage -b`)."""
        out = self._btrfs("filesystem", "usage", "-b", str(self.mountpoint))
        figures: dict[str, int] = {}
        for line in out.splitlines():
            m = _USAGE_LINE.match(line)
            if m:
                figures.setdefault(m["key"], int(m["value"]))
        try:
            return PoolUsage(
                size=figures["Device size"], used=figures["Used"], free=figures["Free (estimated)"]
            )
        except KeyError as missing:
            raise SalError(
                f"`btrfs filesystem usage -b {self.mountpoint}` did not report {missing}"
            ) from None

    # -- files ----------------------------------------------------------------------------

    def nocow_dir(self, path: str | os.PathLike[str]) -> Path:
        """Make a directory (relative to the pool, or inside it) whose new files skip copy-on-write.

        VM disk images are rewritten in place all the time; copy-on-write would fragment them.
        `chattr +C` only affects files created after it, so it is set on the (empty) directory.
        """
        target = Path(path)
        if not target.is_absolute():
            for part in target.parts:
                validate_name(part, "directory")
            target = self.mountpoint / target
        if not target.resolve().is_relative_to(self.mountpoint.resolve()):
            raise SalError(f"{target} is not inside pool {self.mountpoint}")
        target.mkdir(parents=True, exist_ok=True)
        run(["chattr", "+C", str(target)], timeout=TIMEOUT)
        return target


_LIST_LINE = re.compile(r"^ID\s+(?P<id>\d+)\s.*\spath\s+(?P<path>.+)$")
_QGROUP_LINE = re.compile(
    r"^0/(?P<id>\d+)\s+(?P<rfer>\d+)\s+(?P<excl>\d+)\s+(?P<max_rfer>\d+|none)\s+(\d+|none)"
)
_USAGE_LINE = re.compile(r"^\s+(?P<key>[A-Za-z][A-Za-z ()]*?):\s+(?P<value>\d+)")


def _is_subvolume(path: Path) -> bool:
    """btrfs gives every subvolume root inode number 256; that is how btrfs-progs checks too."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    return st.st_ino == 256 and path.is_dir()


def reflink_copy(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, timeout: float = 120.0
) -> None:
    """Copy a file by sharing its extents (instant, no extra space until either side changes).

    VM disks are made this way from cached images. Refuses to overwrite `dst`, and explains
    when the filesystem cannot share the extents instead of falling back to a slow full copy.
    """
    source, target = Path(src), Path(dst)
    if not source.is_file():
        raise SalError(f"cannot reflink {source}: no such file")
    if target.exists():
        raise SalError(f"cannot reflink {source} to {target}: {target} already exists")
    try:
        run(["cp", "--reflink=always", str(source), str(target)], timeout=timeout)
    except CommandFailed as exc:
        target.unlink(missing_ok=True)
        if "cross-device" in exc.output:
            why = "they are on different filesystems; reflinks work only within one btrfs pool"
        elif "Invalid argument" in exc.output:
            why = (
                "btrfs cannot share extents between a copy-on-write file and a nodatacow "
                "(chattr +C) one; keep source and copy both in nocow directories or both not"
            )
        elif "not supported" in exc.output:
            why = "the filesystem cannot reflink (it must be btrfs or another reflink-capable one)"
        else:
            why = exc.output or exc.reason
        raise SalError(f"cannot reflink {source} to {target}: {why}") from exc
