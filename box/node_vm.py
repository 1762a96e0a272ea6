"""The local node booted from the built node image under QEMU, instead of the agent on the host.

`scripts/up --node-image` runs `python -m box.node_vm run ...` as the box's `node` component: the
node is then exactly what a farmer's server runs (the image's /init, its pool made from a blank
disk, its own redis-server, QEMU and image fetcher), with no shell, reached only through the
control plane. How it boots and why:

- **Direct kernel boot** of the build's `vmlinuz` and `initrd` (the network-boot artefacts,
  docs/boot.md) with the farm's command line: `zos.farm`, `zos.enroll` (the farm's token, so the
  node is approved at once) and `zos.ledger`. No firmware: OVMF adds ~6 s under TCG and nothing
  this node needs.
- **One persistent blank disk** (`<state>/pool.img`, sparse): the node makes it its btrfs pool at
  first boot and keeps its identity, image cache and VM disks there, so the next start resumes
  the same node.
- **Network: QEMU user mode with `restrict=on`** (PLATFORM.md): the guest reaches nothing but the
  control plane, forwarded from `10.0.2.100:8000` to the loopback port (`guestfwd`, one socat per
  connection). Nodes only connect out, so nothing is forwarded in (no `hostfwd`).
- **CPU**: QEMU's default model. Under TCG that is `qemu64`, which has AMD SVM (emulated by
  TCG): the node loads `kvm_amd` and runs its own VMs under KVM inside the emulation, about as
  fast as a guest gets here (docs/images.md has the figures). With KVM on the host, `-cpu host`.
- **Console on stdout** (the box's `var/log/node.log`); QMP on `<state>/qmp.sock`.
- **Stopping**: SIGTERM presses the ACPI power button (the image's /init stops the agent and
  unmounts its pools), and QEMU is killed if the node is not off within `POWEROFF_GRACE`, which
  is below the box's own grace (box/supervisor.py). QEMU runs in its own session, so the box's
  SIGTERM to this process's group reaches only this process, and it dies with this process
  (PR_SET_PDEATHSIG) whatever happens: nothing is left behind.

`python -m box.node_vm wait --url URL --farm ID` waits until the farm has an online node and
prints its id (what scripts/up prints in the deploy command).
"""

import argparse
import contextlib
import ctypes
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from box.grid import GridSettings
from box.supervisor import Component
from sal.hypervisor.qemu import kvm_usable

GUEST_LEDGER = "10.0.2.100:8000"  # where the node finds the control plane (the guestfwd)
POWEROFF_GRACE = 12.0
PR_SET_PDEATHSIG = 1
DEFAULT_CPUS = 2
DEFAULT_MEMORY_MIB = 2048  # the node's own ~600 MiB (initramfs root, agent, runners) + its VMs
DEFAULT_DISK_GIB = 16
NEEDED = ("vmlinuz", "initrd", "manifest.json")


class NodeVmError(Exception):
    """The node VM cannot be started as asked; the message says what to do."""


@dataclass(frozen=True)
class NodeVm:
    """One node VM: which build, where its disk and sockets live, how it reaches the ledger."""

    image_dir: Path  # `python -m image build --out DIR`: vmlinuz, initrd, manifest.json
    state_dir: Path  # pool.img and qmp.sock
    ledger_port: int
    farm: int
    enroll_token: str | None = None
    cpus: int = DEFAULT_CPUS
    memory_mib: int = DEFAULT_MEMORY_MIB
    disk_gib: int = DEFAULT_DISK_GIB

    @property
    def disk(self) -> Path:
        return self.state_dir / "pool.img"

    @property
    def qmp_path(self) -> Path:
        return self.state_dir / "qmp.sock"

    def cmdline(self) -> str:
        """The build's own command line plus the farm's settings (what a per-farm image says)."""
        try:
            base = json.loads((self.image_dir / "manifest.json").read_text())["cmdline"]
        except (OSError, ValueError, KeyError) as exc:
            raise NodeVmError(f"{self.image_dir}/manifest.json is unreadable ({exc})") from None
        farm = [f"zos.farm={self.farm}", f"zos.ledger=http://{GUEST_LEDGER}"]
        if self.enroll_token:
            farm.append(f"zos.enroll={self.enroll_token}")
        return " ".join([base, *farm])

    def check(self) -> None:
        missing = [name for name in NEEDED if not (self.image_dir / name).is_file()]
        if missing:
            raise NodeVmError(
                f"{self.image_dir} has no {', '.join(missing)}: build the node image first "
                f"(`sudo .venv/bin/python -m image build --out {self.image_dir}`)"
            )
        if not 1 <= self.cpus <= 64:
            raise NodeVmError(f"cpus must be between 1 and 64, got {self.cpus}")
        if self.memory_mib < 1024:
            raise NodeVmError(f"memory must be at least 1024 MiB, got {self.memory_mib}")
        if self.disk_gib < 1:
            raise NodeVmError(f"the pool disk must be at least 1 GiB, got {self.disk_gib}")

    def prepare_disk(self) -> None:
        """A sparse blank disk the first time; afterwards the node's pool as it left it."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.disk.exists():
            with open(self.disk, "wb") as disk:
                disk.truncate(self.disk_gib << 30)

    def argv(self) -> list[str]:
        accel = ["-accel", "kvm", "-cpu", "host"] if kvm_usable() else ["-accel", "tcg"]
        forward = f"guestfwd=tcp:{GUEST_LEDGER}-cmd:socat - TCP:127.0.0.1:{self.ledger_port}"
        return [
            "qemu-system-x86_64",
            "-machine",
            "q35",
            *accel,
            "-smp",
            str(self.cpus),
            "-m",
            str(self.memory_mib),
            "-display",
            "none",
            "-no-user-config",
            "-nodefaults",
            "-no-reboot",
            "-serial",
            "stdio",
            "-qmp",
            f"unix:{self.qmp_path},server=on,wait=off",
            "-kernel",
            str(self.image_dir / "vmlinuz"),
            "-initrd",
            str(self.image_dir / "initrd"),
            "-append",
            self.cmdline(),
            "-drive",
            f"if=none,id=pool,format=raw,file={self.disk}",
            "-device",
            "virtio-blk-pci,drive=pool,serial=zos-pool",
            "-netdev",
            f"user,id=net0,restrict=on,{forward}",
            "-device",
            "virtio-net-pci,netdev=net0,romfile=",
            "-device",
            "virtio-rng-pci",
        ]


def component(settings: GridSettings, image_dir: Path) -> Component:
    """The box's `node` component as a node VM: its console is the node log, its pool disk and
    QMP socket under `<var>/node-vm`."""
    return Component(
        "node",
        [
            settings.python,
            "-m",
            "box.node_vm",
            "run",
            "--image",
            str(Path(image_dir).resolve()),
            "--state",
            str(Path(settings.var_dir).resolve() / "node-vm"),
            "--port",
            str(settings.port),
            "--farm",
            str(settings.farm),
            "--enroll",
            settings.enroll_token,
        ],
        settings.var_dir / "log" / "node.log",
    )


def _die_with_parent() -> None:
    """In QEMU's child between fork and exec: SIGKILL it when this process dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def power_button(qmp_path: Path) -> bool:
    """Press the ACPI power button over QMP; False if QEMU no longer answers."""
    from qemu.qmp.legacy import QEMUMonitorProtocol

    monitor = QEMUMonitorProtocol(str(qmp_path))
    try:
        monitor.connect()
        monitor.cmd("system_powerdown")
        return True
    except (OSError, EOFError, AssertionError):
        return False
    finally:
        with contextlib.suppress(Exception):
            monitor.close()


def run(vm: NodeVm, *, grace: float = POWEROFF_GRACE) -> int:
    """Boot the node and wait; on SIGTERM/SIGINT power it off. Returns QEMU's exit code."""
    vm.check()
    vm.prepare_disk()
    vm.qmp_path.unlink(missing_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    print(f"[box] booting the node image {vm.image_dir} (pool {vm.disk})", flush=True)
    qemu = subprocess.Popen(
        vm.argv(),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    while qemu.poll() is None and not stop.wait(0.2):
        pass
    if qemu.poll() is None:
        print("[box] stopping: pressing the node's power button", flush=True)
        if power_button(vm.qmp_path):
            with contextlib.suppress(subprocess.TimeoutExpired):
                qemu.wait(timeout=grace)
        if qemu.poll() is None:
            print(f"[box] the node was not off after {grace:g} s: stopping QEMU", flush=True)
            qemu.terminate()
            qemu.wait()
    return qemu.returncode


def wait_online(url: str, farm: int, *, timeout: float) -> int:
    """The id of the farm's first online node, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            listing = requests.get(f"{url}/api/v1/nodes?farm={farm}", timeout=5).json()
        except (requests.RequestException, ValueError):
            listing = []
        nodes = listing["results"] if isinstance(listing, dict) else listing
        online = [n["id"] for n in nodes if n.get("status") == "online"]
        if online:
            return online[0]
        time.sleep(1)
    raise NodeVmError(f"no node of farm {farm} came online within {timeout:g} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m box.node_vm", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    boot = commands.add_parser("run", help="boot the node image and run it until SIGTERM")
    boot.add_argument("--image", type=Path, required=True, help="the node image build directory")
    boot.add_argument("--state", type=Path, required=True, help="directory for its pool disk")
    boot.add_argument("--port", type=int, required=True, help="the control plane's local port")
    boot.add_argument("--farm", type=int, required=True, help="the node's farm")
    boot.add_argument("--enroll", help="the farm's enrollment token (approves the node)")
    boot.add_argument("--cpus", type=int, default=DEFAULT_CPUS)
    boot.add_argument("--memory-mib", type=int, default=DEFAULT_MEMORY_MIB)
    boot.add_argument("--disk-gib", type=int, default=DEFAULT_DISK_GIB, help="first boot only")
    wait = commands.add_parser("wait", help="print the id of the farm's node once it is online")
    wait.add_argument("--url", required=True)
    wait.add_argument("--farm", type=int, required=True)
    wait.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    try:
        if args.command == "wait":
            print(wait_online(args.url, args.farm, timeout=args.timeout))
            return 0
        vm = NodeVm(
            image_dir=args.image.resolve(),
            state_dir=args.state.resolve(),
            ledger_port=args.port,
            farm=args.farm,
            enroll_token=args.enroll,
            cpus=args.cpus,
            memory_mib=args.memory_mib,
            disk_gib=args.disk_gib,
        )
        return run(vm)
    except NodeVmError as exc:
        print(f"box.node_vm: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
