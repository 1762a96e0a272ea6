"""Where the box's local node runs workloads: a btrfs pool on a file, and a namespace of its own.

A node booted from the ZOS image turns its empty disks into a btrfs pool and keeps its VMs'
taps and bridge away from the host's network. The box does the same without touching the host:

- the pool is a sparse file, `var/node-pool.img` (`--pool-gb`, made on first start and kept),
  attached to a loop device and mounted at `var/pool` with quotas on (sal.btrfs);
- the node's VM taps, its overlay bridge and its QEMU processes live in a network namespace
  named after the var directory (`zos-<8 hex>`), so two boxes on one machine never share one.
  Without a mycelium binary (none is packaged for Debian) the node runs a node-local VM
  network on that bridge (`--mycelium local`): VMs get an address, reachable from the
  namespace (`ip netns exec zos-… ssh root@ADDRESS`) and from each other.

Both are made before the node starts and taken apart after everything stopped (`release`): the
VMs and databases the node left running (they outlive an agent restart on purpose, so the box
stops them itself), the namespace, the mount and the loop device. The pool file stays, so the
next start finds the same volumes, disks and images. A start that finds leftovers of a box that
was killed (a mount, an attached loop device, the namespace) takes them over.

A machine without root, loop devices or btrfs tools gets a node without a pool (scripts that
only log and read `node_info()` still run) and the reason, instead of a failed start.
"""

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sal import btrfs, net
from sal.command import SalError, run

GIB = 2**30
POOL_FILE = "node-pool.img"
POOL_DIR = "pool"
POOL_LABEL = "zos-box"
DEFAULT_POOL_GB = 20
MIN_POOL_GB = 2  # btrfs needs room for its metadata and one small VM disk
STOP_GRACE = 10.0  # QEMU and redis-server exit at once on SIGTERM; this is for a loaded machine
POLL = 0.1
# What the node starts that outlives the agent on purpose (VMs, databases, the overlay daemon).
WORKLOAD_PROGRAMS = ("qemu-system-", "redis-server", "cloud-hypervisor", "mycelium")
STORAGE_TOOLS = ("losetup", "mkfs.btrfs", "btrfs", "blkid", "mount", "umount", "mountpoint")


def namespace_for(var_dir: Path) -> str:
    """The node's namespace: one per var directory, short enough for any tool."""
    digest = hashlib.sha256(str(var_dir.resolve()).encode()).hexdigest()
    return f"zos-{digest[:8]}"


def default_pool_gb(var_dir: Path) -> int:
    """DEFAULT_POOL_GB, or half of what the var directory's file system has free if that is less:
    the file is sparse, but a pool that promises more than the disk holds fails late and badly."""
    var_dir.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(var_dir).free // GIB
    return max(MIN_POOL_GB, min(DEFAULT_POOL_GB, free_gb // 2))


def storage_missing() -> str | None:
    """Why this machine cannot give the node a pool, or None when it can."""
    if os.geteuid() != 0:
        return "not running as root (loop devices and mounts need root)"
    if not Path("/dev/loop-control").exists():
        return "this machine has no loop devices (/dev/loop-control is missing)"
    for tool in STORAGE_TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup.sh installs btrfs-progs, util-linux)"
    return None


def network_missing() -> str | None:
    """Why this machine cannot give the node a namespace of its own, or None when it can."""
    if os.geteuid() != 0:
        return "not running as root (network namespaces need root)"
    if shutil.which("ip") is None:
        return "ip is not installed (scripts/setup.sh installs iproute2)"
    return None


def attached_loop(image: Path) -> str | None:
    """The loop device this file is attached to, if any (a box killed before its cleanup)."""
    found = run(["losetup", "-j", str(image)], check=False).stdout.strip()
    return found.split(":", 1)[0] if found else None


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_at(path: Path) -> list[str]:
    """The file system types mounted at `path` in this mount namespace, bottom first."""
    target = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if _unescape(fields[4]) == target:
            found.append(fields[fields.index("-") + 1])
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_using(path: Path) -> list[int]:
    """Workload processes whose command line names a file under `path`: the node's daemonized
    QEMUs (`-pidfile <data>/vms/...`) and databases (`redis-server <data>/herodb/...`), which
    left the agent's process group when they daemonized. Only those programs: a person's
    `less var/node/...` in another terminal is not the box's to stop."""
    needle = str(path.resolve()) + "/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = _cmdline(int(entry))
        program = Path(argv.split(" ", 1)[0]).name
        if needle in argv and program.startswith(WORKLOAD_PROGRAMS):
            found.append(int(entry))
    return found


def netns_pids(name: str) -> list[int]:
    if not net.netns_exists(name):
        return []
    found = run(["ip", "netns", "pids", name], check=False).stdout.split()
    return [int(pid) for pid in found if pid.isdigit()]


def stop_processes(pids: Iterable[int], grace: float = STOP_GRACE) -> list[int]:
    """SIGTERM, wait up to `grace`, SIGKILL what is left; returns the pids that had to be killed."""
    pids = [pid for pid in pids if _alive(pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(POLL)
    killed = [pid for pid in pids if _alive(pid)]
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while any(_alive(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(POLL)
    return killed


@dataclass
class NodeHost:
    """The local node's pool and namespace: `prepare()` makes them, `release()` takes them apart.

    `pool` and `netns` are None when the machine could not give them; `notes` says why, in words
    for the person who ran scripts/up.
    """

    var_dir: Path
    pool_gb: int
    say: Callable[[str], None] = print
    pool: Path | None = None
    device: str | None = None
    netns: str | None = None
    notes: list[str] = field(default_factory=list)
    flushing: subprocess.Popen | None = None

    @property
    def image(self) -> Path:
        return self.var_dir / POOL_FILE

    @property
    def mountpoint(self) -> Path:
        return self.var_dir / POOL_DIR

    @property
    def data_dir(self) -> Path:
        return self.var_dir / "node"

    def agent_args(self) -> list[str]:
        """What `python -m nodeagent run` is told about them."""
        args = []
        if self.pool is not None:
            args += ["--storage", str(self.pool)]
        if self.netns is not None:
            args += ["--workload-netns", self.netns]
            if shutil.which("mycelium") is None:
                # No overlay daemon to be had: VMs get addresses on a node-local network on
                # the bridge in the namespace (nodeagent/overlay.py), reachable from there.
                args += ["--mycelium", "local"]
        return args

    def prepare(self) -> "NodeHost":
        self.var_dir = self.var_dir.resolve()
        self._prepare_pool()
        self._prepare_netns()
        return self

    def _prepare_pool(self) -> None:
        reason = storage_missing()
        if reason:
            self.notes.append(
                f"the local node has no workload pool: {reason}. Scripts that only log and read "
                "node_info() (examples/hello.rhai) run; VMs, volumes and databases need a pool."
            )
            return
        try:
            self._attach_and_mount()
        except (SalError, OSError) as exc:
            self.notes.append(
                f"the local node has no workload pool: making it in {self.image} failed: {exc}"
            )
            self._unmount_and_detach()
            self.pool = None

    def _attach_and_mount(self) -> None:
        fresh = not self.image.exists()
        grow = not fresh and self.image.stat().st_size < self.pool_gb * GIB
        if fresh:
            self.say(f"making the node's {self.pool_gb} GiB btrfs pool in {self.image} (sparse)")
        elif grow:
            self.say(f"growing the node's pool in {self.image} to {self.pool_gb} GiB")
        if fresh or grow:
            with self.image.open("ab") as handle:
                handle.truncate(self.pool_gb * GIB)
        self.device = attached_loop(self.image)
        if self.device is None:
            self.device = run(["losetup", "--find", "--show", str(self.image)]).stdout.strip()
        elif grow:  # attached by a box that was killed: tell the device its file grew
            run(["losetup", "--set-capacity", self.device])
        if fresh:
            btrfs.make_pool(self.device, POOL_LABEL)
        self._share_mountpoint()
        if mounts_at(self.mountpoint)[-1:] != ["btrfs"]:  # else a killed box's, taken over
            run(["mount", "-t", "btrfs", self.device, str(self.mountpoint)])
        pool = btrfs.Pool(self.mountpoint)
        pool.enable_quota()
        self.pool = pool.mountpoint
        if grow:
            run(["btrfs", "filesystem", "resize", "max", str(self.pool)])
        size_gb = self.image.stat().st_size / GIB
        self.say(f"node pool: {self.image} ({size_gb:g} GiB) on {self.device} at {self.pool}")

    def _share_mountpoint(self) -> None:
        """Mount the pool on a shared bind mount of its own directory, not straight on var/.

        Every `ip netns exec` (QEMU's, this box's or anyone's on the machine) copies the mount
        table into a mount namespace of its own. Where the root mount is private (no systemd;
        CI machines), a copy of the pool mount there would keep the file system, and with it
        the loop device, alive after the box unmounted it. Under a shared parent the copies are
        its slaves (ip makes them so), and the box's unmount reaches them too.
        """
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if not mounts_at(self.mountpoint):
            run(["mount", "--bind", str(self.mountpoint), str(self.mountpoint)])
        run(["mount", "--make-shared", str(self.mountpoint)])

    def _prepare_netns(self) -> None:
        reason = network_missing()
        if reason:
            self.notes.append(f"the local node's VMs share the host's network namespace: {reason}")
            return
        name = namespace_for(self.var_dir)
        try:
            net.create_netns(name)
        except SalError as exc:
            self.notes.append(f"the local node's VMs share the host's network namespace: {exc}")
            return
        self.netns = name
        self.say(f"node network namespace: {name} (VM taps, bridge and QEMU live there)")

    def start_flush(self) -> None:
        """Start writing the pool's dirty pages (the VMs' disk writes) out, in the background.

        Called as the box begins to stop: the write-out then runs while the components take
        their grace to stop, instead of all of it inside `release`'s umount, which on a loaded
        disk took minutes. What is written after this (the VMs run until `release`) umount
        still writes itself."""
        if self.pool is None or self.flushing is not None:
            return
        self.flushing = subprocess.Popen(
            ["sync", "-f", str(self.pool)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def release(self) -> None:
        """Stop the node's leftover workloads and take the namespace, mount and loop device
        apart. Call it after the agent stopped. Safe to call twice. Says what it waited for
        and how long."""
        began = time.monotonic()
        leftovers = set(processes_using(self.data_dir))
        if self.netns is not None:
            leftovers.update(netns_pids(self.netns))
        if self.pool is not None:
            leftovers.update(processes_using(self.pool))
        if leftovers:
            self.say(f"stopping {len(leftovers)} workload process(es) the node left running")
            killed = stop_processes(leftovers)
            if killed:
                self.say(f"killed {len(killed)} that did not stop on SIGTERM")
        stopped = time.monotonic()
        if self.netns is not None:
            try:
                net.delete_netns(self.netns)
            except SalError as exc:
                self.say(f"could not delete network namespace {self.netns}: {exc}")
            self.netns = None
        self._wait_for_flush()
        if storage_missing() is None:  # else nothing was mounted or attached: nothing to undo
            self._unmount_and_detach()
        self.pool = None
        done = time.monotonic()
        self.say(
            f"node host released in {done - began:.1f} s (workloads {stopped - began:.1f} s, "
            f"namespace, pool and loop device {done - stopped:.1f} s)"
        )

    def _wait_for_flush(self) -> None:
        """The early write-out holds the pool open: umount must wait for it (it would write the
        same pages itself, so this costs nothing extra)."""
        if self.flushing is None:
            return
        if self.flushing.poll() is None:
            self.say("waiting for the pool's writes to reach its file")
        self.flushing.wait()
        self.flushing = None

    def _unmount_and_detach(self) -> None:
        """Unmount the pool and the bind mount under it, then detach the loop device."""
        mounted = len(mounts_at(self.mountpoint))
        if mounted:
            self.say(f"unmounting {self.mountpoint} (writes out what the node's VMs left)")
        for _ in range(mounted):
            try:
                run(["umount", str(self.mountpoint)])
            except SalError as exc:
                # Something outside the box holds it (a shell cd'ed into it): detach it lazily,
                # so nothing stays mounted; the kernel lets go of it when that process does.
                self.say(f"unmounting {self.mountpoint} failed ({exc}); detaching it lazily")
                run(["umount", "--lazy", str(self.mountpoint)], check=False)
        device = attached_loop(self.image) if self.image.exists() else None
        if device is not None:
            # btrfs lets go of the device a moment after umount returns; a detach meanwhile
            # only marks it to go when free (autoclear). Wait for that, so nothing is left
            # attached once the box has exited.
            run(["losetup", "--detach", device], check=False)
            deadline = time.monotonic() + STOP_GRACE
            while attached_loop(self.image) is not None and time.monotonic() < deadline:
                time.sleep(POLL)
            if attached_loop(self.image) is not None:
                self.say(f"{device} is still attached to {self.image}: something holds it open")
        self.device = None
