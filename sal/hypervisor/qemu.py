"""The QEMU driver: one detached QEMU process per VM, driven over QMP on a unix socket.

Everything needed to find a VM again lives in its state directory `<state_root>/<vm_id>/`
(kept through `state.VmStateRoot`, shared with the cloud-hypervisor driver):

- `spec.json`   the VmSpec it was created with (so `start()` works after a node reboot);
- `qemu.pid`    written by QEMU itself (`-pidfile`), removed by QEMU on a clean exit;
- `booted`      present once the VM has been started, so a VM that is not running reads as
                stopped rather than never started;
- `qmp.sock`    the QMP socket (`-qmp unix:...,server,wait=off`);
- `console.log` the serial console (ttyS0); the previous boot's is `console.prev.log`.

Boot is direct kernel boot (no firmware) on q35 with virtio-pci devices and ACPI for the power
button. `microvm` reaches userspace ~10% sooner under TCG, but it has no HPET or ACPI PM timer:
on a loaded host the guest kernel's PIT calibration of the TSC can fail and the boot then hangs
(seen here), so it is opt-in (`machine="microvm"` or `extra={"machine": "microvm"}`), sensible
with KVM where kvmclock is available. KVM is used only when /dev/kvm exists and the CPU has vmx
or svm; otherwise TCG (PLATFORM.md).

Networking is a tap the caller made, or QEMU user networking that is always `restrict=on`: the
guest can open only the connections listed in the NIC's `forwards`, each of which runs
`socat - TCP:127.0.0.1:<port>` per connection. Nothing else leaves the VM.

`extra` keys this driver understands: `machine` ("q35" | "microvm" | "pc") and `netns` (run QEMU
inside that network namespace with `ip netns exec`, where the VM's taps live).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from sal.command import CommandFailed, process_alive, run, wait_gone
from sal.hypervisor.base import Hypervisor
from sal.hypervisor.state import CONSOLE_LOG, VmStateRoot
from sal.hypervisor.vm import HypervisorError, VmInfo, VmSpec, VmState

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_NETNS_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SERIAL_RE = re.compile(r"^[A-Za-z0-9_-]{1,20}$")  # virtio-blk's serial is at most 20 bytes
_MACHINES = {
    "microvm": ("virtio-blk-device", "virtio-net-device", "virtio-9p-device", "virtio-rng-device"),
    "q35": ("virtio-blk-pci", "virtio-net-pci", "virtio-9p-pci", "virtio-rng-pci"),
    "pc": ("virtio-blk-pci", "virtio-net-pci", "virtio-9p-pci", "virtio-rng-pci"),
}
QMP_TIMEOUT = 5.0
START_TIMEOUT = 30.0


def kvm_usable() -> bool:
    """KVM only on real virtualisation support: /dev/kvm plus vmx/svm (PLATFORM.md)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.MULTILINE))


def _qmp_call(sock: Path, commands: list[tuple[str, dict | None]], timeout: float) -> list[Any]:
    """Run QMP commands in one session; synchronous wrapper around qemu.qmp's asyncio client."""
    from qemu.qmp import QMPClient

    async def session() -> list[Any]:
        client = QMPClient("zos")
        await asyncio.wait_for(client.connect(str(sock)), timeout)
        try:
            results = []
            for cmd, args in commands:
                results.append(await asyncio.wait_for(client.execute(cmd, args), timeout))
            return results
        finally:
            await client.disconnect()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(session())
    # Called from inside an event loop (an async agent): run the session on its own thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, session()).result()


class QemuHypervisor(Hypervisor):
    """QEMU VMs whose state lives in `<state_root>/<vm_id>/`."""

    name = "qemu"

    def __init__(
        self,
        state_root: Path,
        qemu_binary: str = "qemu-system-x86_64",
        *,
        machine: str = "q35",
        accel: str | None = None,
    ) -> None:
        if machine not in _MACHINES:
            raise HypervisorError(f"qemu: unknown machine type {machine!r} (use {_MACHINES})")
        self.state_root = Path(state_root)
        self.state = VmStateRoot(
            self.state_root, driver=self.name, pid_file="qemu.pid", socket="qmp.sock"
        )
        self.qemu_binary = qemu_binary
        self.machine = machine
        self.accel = accel or ("kvm" if kvm_usable() else "tcg")

    # ---- process -----------------------------------------------------------------------------

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        """Wait for the process itself: QEMU removes its pid file while it is still exiting."""
        return wait_gone(lambda: process_alive(pid), timeout)

    def _qmp(self, d: Path, *commands: tuple[str, dict | None]) -> list[Any]:
        from qemu.qmp import QMPError

        try:
            return _qmp_call(d / "qmp.sock", list(commands), QMP_TIMEOUT)
        # qemu.qmp's connect() ends in a bare `assert` when QEMU hangs up during the handshake
        # (a VM exiting as we ask about it): the same as EOF to us.
        except (OSError, EOFError, QMPError, TimeoutError, AssertionError) as exc:
            names = ", ".join(c for c, _ in commands)
            raise HypervisorError(f"qemu: VM {d.name}: QMP {names} failed: {exc!r}") from exc

    # ---- interface ---------------------------------------------------------------------------

    def create(self, spec: VmSpec) -> VmInfo:
        with self.state.locked(spec.vm_id) as d:
            self._validate(spec)
            if self.state.has_spec(d, spec):
                if (d / "booted").exists():
                    return self.info(spec.vm_id)
                return self._start(spec.vm_id)
            self.state.record_spec(d, spec)
            try:
                return self._start(spec.vm_id)
            except HypervisorError:
                self.state.remove(d, best_effort=True)
                raise

    def start(self, vm_id: str) -> VmInfo:
        with self.state.locked(vm_id):
            return self._start(vm_id)

    def _start(self, vm_id: str) -> VmInfo:
        d = self.state.existing(vm_id)
        if self.state.pid(d) is not None:
            return self.info(vm_id)
        spec = self.state.spec(d)
        self._validate(spec)
        (d / "qmp.sock").unlink(missing_ok=True)
        (d / "qemu.pid").unlink(missing_ok=True)
        if (d / CONSOLE_LOG).exists():
            (d / CONSOLE_LOG).replace(d / "console.prev.log")
        argv = self.command_line(spec)
        netns = spec.extra.get("netns")
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        try:
            run(argv, timeout=START_TIMEOUT)
        except CommandFailed as exc:
            raise HypervisorError(f"qemu: VM {vm_id} did not start: {exc}") from exc
        (d / "booted").touch()
        return self.info(vm_id)

    def command_line(self, spec: VmSpec) -> list[str]:
        """The full QEMU argv for a spec (public so benches and debugging can show it)."""
        d = self.state.dir(spec.vm_id)
        machine = spec.extra.get("machine", self.machine)
        blk, net, ninep, rng = _MACHINES[machine]
        accel = ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" else ["-accel", "tcg"]
        argv = [
            self.qemu_binary,
            "-name", f"zos-{spec.vm_id}",
            "-M", machine,
            *accel,
            "-smp", str(spec.cpus),
            "-m", str(spec.memory_mb),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", str(spec.kernel),
            "-append", spec.cmdline,
            "-chardev", f"file,id=console,path={_opt(d / CONSOLE_LOG)}",
            "-serial", "chardev:console",
            "-qmp", f"unix:{_opt(d / 'qmp.sock')},server=on,wait=off",
            "-pidfile", str(d / "qemu.pid"),
            "-daemonize",
            # The host's entropy: without it a fresh guest's first getrandom() (an SSH host
            # key at first boot) waits seconds under TCG for the kernel to gather its own.
            "-device", rng,
        ]  # fmt: skip
        if spec.initrd is not None:
            argv += ["-initrd", str(spec.initrd)]
        for i, disk in enumerate(spec.disks):
            argv += [
                "-drive", f"file={_opt(disk)},if=none,id=disk{i},format=raw",
                "-device", f"{blk},drive=disk{i}",
            ]  # fmt: skip
        if spec.cidata is not None:
            argv += [
                "-drive", f"file={_opt(spec.cidata)},if=none,id=cidata,format=raw,readonly=on",
                "-device", f"{blk},drive=cidata",
            ]  # fmt: skip
        for i, volume in enumerate(spec.volumes):
            argv += [
                "-drive", f"file={_opt(volume.path)},if=none,id=vol{i},format=raw",
                "-device", f"{blk},drive=vol{i},serial={volume.serial}",
            ]  # fmt: skip
        for i, nic in enumerate(spec.nics):
            if nic.tap:
                netdev = f"tap,id=net{i},ifname={nic.tap},script=no,downscript=no"
            else:
                netdev = f"user,id=net{i},restrict=on"
                for guest_ip, guest_port, host_port in nic.forwards:
                    netdev += (
                        f",guestfwd=tcp:{guest_ip}:{guest_port}"
                        f"-cmd:socat - TCP:127.0.0.1:{host_port}"
                    )
            argv += ["-netdev", netdev, "-device", f"{net},netdev=net{i},mac={nic.mac}"]
        if spec.shared_dir is not None:
            argv += [
                "-fsdev", f"local,id=root,path={_opt(spec.shared_dir)},security_model=passthrough",
                "-device", f"{ninep},fsdev=root,mount_tag=root",
            ]  # fmt: skip
        return argv

    def stop(self, vm_id: str, *, grace: float = 30.0) -> VmInfo:
        with self.state.locked(vm_id):
            return self._stop(vm_id, grace)

    def _stop(self, vm_id: str, grace: float) -> VmInfo:
        d = self.state.existing(vm_id)
        pid = self.state.pid(d)
        if pid is None:
            return self.info(vm_id)
        try:
            self._qmp(d, ("system_powerdown", None))
        except HypervisorError:
            if not process_alive(pid):
                return self.info(vm_id)
        if not self._wait_gone(pid, grace):
            self._force_stop(d)
        return self.info(vm_id)

    def _force_stop(self, d: Path) -> None:
        pid = self.state.pid(d)
        if pid is None:
            return
        with contextlib.suppress(HypervisorError):
            self._qmp(d, ("quit", None))
        if self._wait_gone(pid, 5.0):
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if not self._wait_gone(pid, 10.0):
            raise HypervisorError(f"qemu: VM {d.name}: process {pid} survived SIGKILL")

    def delete(self, vm_id: str) -> None:
        if not self.state.dir(vm_id).exists():
            return
        with self.state.locked(vm_id) as d:
            if self.state.pid(d) is not None:
                self._force_stop(d)
            self.state.remove(d)

    def info(self, vm_id: str) -> VmInfo:
        d = self.state.existing(vm_id)
        spec = self.state.spec(d)
        pid = self.state.pid(d)
        if pid is None:
            state = VmState.STOPPED if (d / "booted").exists() else VmState.CREATED
        else:
            state = self._query_state(d, pid)
            if state == VmState.STOPPED:
                pid = None
        return VmInfo(
            vm_id=vm_id,
            state=state,
            pid=pid,
            cpus=spec.cpus,
            memory_mb=spec.memory_mb,
            console_log=d / CONSOLE_LOG,
            driver=self.name,
        )

    def _query_state(self, d: Path, pid: int) -> VmState:
        deadline = time.monotonic() + QMP_TIMEOUT
        while True:
            try:
                (status,) = self._qmp(d, ("query-status", None))
                break
            except HypervisorError:
                if self.state.pid(d) is None:
                    return VmState.STOPPED
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        s = status.get("status")
        if s == "running":
            return VmState.RUNNING
        if s in ("shutdown", "guest-panicked", "internal-error"):
            return VmState.STOPPED
        return VmState.PAUSED

    def adopt(self) -> list[VmInfo]:
        return [i for i in self.list_vms() if i.pid is not None]

    def wait_console(self, vm_id: str, marker: str, *, timeout: float = 60.0) -> str:
        """Wait until `marker` appears on the console; the console text, or HypervisorError
        when the VM stops or time runs out first (helper for callers and tests)."""
        d = self.state.existing(vm_id)
        deadline = time.monotonic() + timeout
        while True:
            text = self.console_log(vm_id, tail_bytes=1 << 20)
            if marker in text:
                return text
            if self.state.pid(d) is None:
                raise HypervisorError(
                    f"qemu: VM {vm_id} stopped before printing {marker!r}; console ends: "
                    f"{text[-800:]}"
                )
            if time.monotonic() >= deadline:
                raise HypervisorError(
                    f"qemu: VM {vm_id} did not print {marker!r} within {timeout:g}s; console "
                    f"ends: {text[-800:]}"
                )
            time.sleep(0.05)

    # ---- validation --------------------------------------------------------------------------

    def _validate(self, spec: VmSpec) -> None:
        bad = f"qemu: VM {spec.vm_id}:"
        self.state.socket(self.state.dir(spec.vm_id))
        if not isinstance(spec.cpus, int) or not 1 <= spec.cpus <= 64:
            raise HypervisorError(f"{bad} cpus must be 1..64, got {spec.cpus!r}")
        if not isinstance(spec.memory_mb, int) or not 64 <= spec.memory_mb <= 1024 * 1024:
            raise HypervisorError(f"{bad} memory_mb must be at least 64, got {spec.memory_mb!r}")
        if not Path(spec.kernel).is_file():
            raise HypervisorError(f"{bad} kernel {spec.kernel} does not exist")
        if spec.initrd is not None and not Path(spec.initrd).is_file():
            raise HypervisorError(f"{bad} initrd {spec.initrd} does not exist")
        for disk in spec.disks:
            if not Path(disk).is_file():
                raise HypervisorError(f"{bad} disk {disk} does not exist")
        _check_volumes(bad, spec)
        if spec.cidata is not None and not Path(spec.cidata).is_file():
            raise HypervisorError(f"{bad} cidata seed {spec.cidata} does not exist")
        if spec.shared_dir is not None and not Path(spec.shared_dir).is_dir():
            raise HypervisorError(f"{bad} shared_dir {spec.shared_dir} is not a directory")
        if "\n" in spec.cmdline:
            raise HypervisorError(f"{bad} the kernel command line must be one line")
        machine = spec.extra.get("machine", self.machine)
        if machine not in _MACHINES:
            raise HypervisorError(f"{bad} unknown machine type {machine!r}")
        netns = spec.extra.get("netns")
        if netns is not None and not (isinstance(netns, str) and _NETNS_RE.match(netns)):
            raise HypervisorError(f"{bad} invalid network namespace name {netns!r}")
        macs = set()
        for nic in spec.nics:
            if not _MAC_RE.match(nic.mac):
                raise HypervisorError(f"{bad} {nic.mac!r} is not a lowercase MAC address")
            if nic.mac in macs:
                raise HypervisorError(f"{bad} MAC {nic.mac} is used twice")
            macs.add(nic.mac)
            if nic.tap is not None:
                if not _IFNAME_RE.match(nic.tap):
                    raise HypervisorError(f"{bad} {nic.tap!r} is not a valid tap name")
                if nic.forwards:
                    raise HypervisorError(f"{bad} forwards apply to user networking, not tap")
            for fwd in nic.forwards:
                _check_forward(bad, fwd)


def _check_volumes(bad: str, spec: VmSpec) -> None:
    serials = set()
    for volume in spec.volumes:
        if not Path(volume.path).is_file():
            raise HypervisorError(f"{bad} volume disk {volume.path} does not exist")
        if not _SERIAL_RE.match(volume.serial) or volume.serial in serials:
            raise HypervisorError(
                f"{bad} volume serial {volume.serial!r} must be unique, 1-20 letters, digits, "
                "'-' or '_'"
            )
        serials.add(volume.serial)


def _check_forward(bad: str, fwd: tuple) -> None:
    try:
        guest_ip, guest_port, host_port = fwd
        ipaddress.IPv4Address(guest_ip)
    except (ValueError, TypeError) as exc:
        raise HypervisorError(f"{bad} forward {fwd!r} is not (guest_ipv4, port, port)") from exc
    for port in (guest_port, host_port):
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise HypervisorError(f"{bad} forward {fwd!r} has an invalid port {port!r}")


def _opt(path: Path) -> str:
    """A path inside a QEMU option value: commas must be doubled."""
    return str(path).replace(",", ",,")
