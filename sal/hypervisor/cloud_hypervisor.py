"""The cloud-hypervisor driver: one VMM process per VM, driven over its REST API.

Each VM gets its own `cloud-hypervisor --api-socket path=<state>/api.sock` process, started in
its own session so it outlives an agent restart. The VM is then defined and booted through the
API (specs/cloud-hypervisor.yaml): `vm.create` with a VmConfig built from the VmSpec, `vm.boot`;
`vm.info` answers for the state; stopping presses the ACPI power button (`vm.power-button`) and
waits, then falls back to `vm.shutdown` and `vmm.shutdown`, and finally SIGKILL. When the guest
powers itself off, cloud-hypervisor exits, so a stopped VM is one whose VMM process is gone.

State directory per VM (`<state_root>/<vm id>/`, kept through `state.VmStateRoot` like the qemu
driver's, which also locks each VM while it changes), everything `adopt()` needs:
    spec.json    the VmSpec it was created with (what `start` boots again after a stop)
    vmm.pid      pid of the VMM process
    api.sock     the API socket
    console.log  the guest's serial console (serial mode File)
    vmm.log      the VMM's own stdout/stderr

The real binary is not installable here; the tests run this driver against a fake VMM that
validates every request against the published spec (tests/sal/fake_cloud_hypervisor.py).
"""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from sal.command import child_setup, process_alive, wait_gone
from sal.hypervisor.base import Hypervisor
from sal.hypervisor.state import CONSOLE_LOG, VmStateRoot
from sal.hypervisor.vm import HypervisorError, VmInfo, VmSpec, VmState
from sal.unix_http import ApiError, ApiUnavailable, HttpApi

_STATES = {
    "Created": VmState.CREATED,
    "Running": VmState.RUNNING,
    "Paused": VmState.PAUSED,
    "BreakPoint": VmState.PAUSED,
    "Shutdown": VmState.STOPPED,
}


def vm_config(spec: VmSpec, console_log: Path) -> dict[str, Any]:
    """The `VmConfig` body of `PUT /vm.create` for a spec: direct kernel boot, raw disks (the
    cidata seed read-only, volumes with their serials), one virtio-net per tap, serial console
    to a file."""
    if spec.shared_dir is not None:
        raise HypervisorError(
            f"VM {spec.vm_id}: shared_dir needs a virtiofsd per VM, which this driver does not "
            "run; use the qemu driver for container machines"
        )
    payload: dict[str, Any] = {"kernel": str(spec.kernel), "cmdline": spec.cmdline}
    if spec.initrd is not None:
        payload["initramfs"] = str(spec.initrd)
    config: dict[str, Any] = {
        "cpus": {"boot_vcpus": spec.cpus, "max_vcpus": spec.cpus},
        "memory": {"size": spec.memory_mb * 2**20},
        "payload": payload,
        "serial": {"mode": "File", "file": str(console_log)},
        "console": {"mode": "Off"},
        "rng": {"src": "/dev/urandom"},
    }
    disks = [{"path": str(path)} for path in spec.disks]
    if spec.cidata is not None:
        disks.append({"path": str(spec.cidata), "readonly": True})
    disks += [{"path": str(v.path), "serial": v.serial} for v in spec.volumes]
    if disks:
        config["disks"] = disks
    net = []
    for nic in spec.nics:
        if nic.tap is None:
            raise HypervisorError(
                f"VM {spec.vm_id}: cloud-hypervisor has no user-mode networking; NIC {nic.mac} "
                "needs a tap device"
            )
        net.append({"tap": nic.tap, "mac": nic.mac})
    if net:
        config["net"] = net
    return config


class CloudHypervisor(Hypervisor):
    """Driver for cloud-hypervisor. `binary` is the VMM executable (name on PATH or a path)."""

    name = "cloud-hypervisor"

    def __init__(
        self,
        state_root: Path,
        binary: str = "cloud-hypervisor",
        *,
        api_timeout: float = 10.0,
        start_timeout: float = 15.0,
    ) -> None:
        self.state_root = Path(state_root)
        self.state = VmStateRoot(
            self.state_root, driver=self.name, pid_file="vmm.pid", socket="api.sock"
        )
        self.binary = binary
        self.api_timeout = api_timeout
        self.start_timeout = start_timeout
        self._children: dict[int, subprocess.Popen] = {}

    # -- state directory ------------------------------------------------------------------------

    def _api(self, vm_dir: Path, timeout: float | None = None) -> HttpApi:
        return HttpApi(
            socket_path=str(vm_dir / "api.sock"),
            prefix="/api/v1",
            timeout=self.api_timeout if timeout is None else timeout,
        )

    # -- the VMM process ------------------------------------------------------------------------

    def _running(self, pid: int) -> bool:
        """The process exists and has not exited (a zombie has); our own children are reaped."""
        child = self._children.get(pid)
        if child is not None:
            if child.poll() is None:
                return True
            del self._children[pid]
            return False
        return process_alive(pid)

    def _pid(self, vm_dir: Path) -> int | None:
        """The VMM's pid if that process runs and is the VMM of this directory."""
        return self.state.pid(vm_dir, running=self._running, children=self._children)

    def _spawn(self, vm_dir: Path) -> int:
        socket_path = self.state.socket(vm_dir)
        socket_path.unlink(missing_ok=True)
        argv = [self.binary, "--api-socket", f"path={socket_path}"]
        with open(vm_dir / "vmm.log", "ab") as log:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # survives the agent; adopt() finds it again
                    close_fds=True,
                    preexec_fn=child_setup(),  # lifts a runner's memory limit (see child_setup)
                )
            except OSError as exc:
                raise HypervisorError(
                    f"cannot start {self.binary}: {exc.strerror} (is cloud-hypervisor installed?)"
                ) from exc
        self._children[proc.pid] = proc
        (vm_dir / "vmm.pid").write_text(str(proc.pid))
        deadline = time.monotonic() + self.start_timeout
        while True:
            if proc.poll() is not None:
                raise HypervisorError(
                    f"{self.binary} exited with status {proc.returncode} before its API came "
                    f"up: {self._vmm_log_tail(vm_dir)}"
                )
            with contextlib.suppress(ApiUnavailable):
                if self._api(vm_dir, timeout=1.0).request("GET", "/vmm.ping").status == 200:
                    return proc.pid
            if time.monotonic() > deadline:
                self._kill(proc.pid)
                raise HypervisorError(
                    f"{self.binary} API on {socket_path} did not answer within "
                    f"{self.start_timeout:g}s: {self._vmm_log_tail(vm_dir)}"
                )
            time.sleep(0.05)

    def _vmm_log_tail(self, vm_dir: Path) -> str:
        try:
            return (vm_dir / "vmm.log").read_text(errors="replace")[-1000:].strip() or "(no output)"
        except FileNotFoundError:
            return "(no output)"

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        return wait_gone(lambda: self._running(pid), timeout)

    def _kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._wait_gone(pid, 5.0)

    def _forget_process(self, vm_dir: Path) -> None:
        (vm_dir / "vmm.pid").unlink(missing_ok=True)
        (vm_dir / "api.sock").unlink(missing_ok=True)

    # -- API calls ------------------------------------------------------------------------------

    def _call(self, vm_dir: Path, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._api(vm_dir).call(method, path, **kwargs)
        except (ApiError, ApiUnavailable) as exc:
            raise HypervisorError(f"VM {vm_dir.name}: {exc}") from exc

    def _boot(self, vm_dir: Path, spec: VmSpec) -> None:
        self._call(vm_dir, "PUT", "/vm.create", json_body=vm_config(spec, vm_dir / CONSOLE_LOG))
        self._call(vm_dir, "PUT", "/vm.boot")

    def _launch(self, vm_dir: Path, spec: VmSpec) -> None:
        """A fresh VMM with the VM defined and booted; on failure nothing is left running."""
        pid = self._spawn(vm_dir)
        try:
            self._boot(vm_dir, spec)
        except HypervisorError:
            self._kill(pid)
            self._forget_process(vm_dir)
            raise

    def _vmm_state(self, vm_dir: Path) -> str | None:
        """The VMM's `VmState` for the VM, None when the VMM has no VM defined."""
        try:
            resp = self._api(vm_dir).request("GET", "/vm.info")
        except ApiUnavailable as exc:
            raise HypervisorError(
                f"VM {vm_dir.name}: VMM process is alive but its API does not answer: {exc}"
            ) from exc
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise HypervisorError(f"VM {vm_dir.name}: vm.info answered {resp.status}: {resp.text}")
        return resp.json()["state"]

    def _info(self, vm_dir: Path) -> VmInfo:
        spec = self.state.spec(vm_dir)
        pid = self._pid(vm_dir)
        state = VmState.STOPPED
        if pid is not None:
            vmm_state = self._vmm_state(vm_dir)
            state = VmState.STOPPED if vmm_state is None else _STATES[vmm_state]
        return VmInfo(
            vm_id=spec.vm_id,
            state=state,
            pid=pid,
            cpus=spec.cpus,
            memory_mb=spec.memory_mb,
            console_log=vm_dir / CONSOLE_LOG,
            driver=self.name,
        )

    # -- the Hypervisor interface ---------------------------------------------------------------

    def create(self, spec: VmSpec) -> VmInfo:
        with self.state.locked(spec.vm_id) as vm_dir:
            if self.state.has_spec(vm_dir, spec):
                return self._info(vm_dir)
            vm_config(spec, vm_dir / CONSOLE_LOG)  # refuse what we cannot run before any effect
            self.state.record_spec(vm_dir, spec)
            try:
                self._launch(vm_dir, spec)
            except HypervisorError:
                self.state.remove(vm_dir, best_effort=True)
                raise
            return self._info(vm_dir)

    def start(self, vm_id: str) -> VmInfo:
        with self.state.locked(vm_id):
            return self._start(self.state.existing(vm_id))

    def _start(self, vm_dir: Path) -> VmInfo:
        info = self._info(vm_dir)
        if info.state == VmState.RUNNING:
            return info
        if info.pid is None:
            self._forget_process(vm_dir)
            self._launch(vm_dir, self.state.spec(vm_dir))
        elif info.state == VmState.PAUSED:
            self._call(vm_dir, "PUT", "/vm.resume")
        elif self._vmm_state(vm_dir) is None:
            self._boot(vm_dir, self.state.spec(vm_dir))
        else:
            self._call(vm_dir, "PUT", "/vm.boot")
        return self._info(vm_dir)

    def stop(self, vm_id: str, *, grace: float = 30.0) -> VmInfo:
        with self.state.locked(vm_id):
            return self._stop(self.state.existing(vm_id), grace)

    def _stop(self, vm_dir: Path, grace: float) -> VmInfo:
        pid = self._pid(vm_dir)
        if pid is not None:
            if self._vmm_state(vm_dir) == "Running":
                # 405 means the guest is no longer running: fine, we wanted it off
                self._call(vm_dir, "PUT", "/vm.power-button", ok=(204, 405))
                self._wait_gone(pid, grace)
            self._shutdown_vmm(vm_dir)
        self._forget_process(vm_dir)
        return self._info(vm_dir)

    def _shutdown_vmm(self, vm_dir: Path, *, delete_vm: bool = False) -> None:
        """Force the VM off and end the VMM: vm.shutdown, (vm.delete), vmm.shutdown, SIGKILL."""
        pid = self._pid(vm_dir)
        if pid is None:
            return
        with contextlib.suppress(HypervisorError, ApiUnavailable):
            if self._vmm_state(vm_dir) in ("Running", "Paused"):
                self._call(vm_dir, "PUT", "/vm.shutdown", ok=(204, 404, 405))
            if delete_vm:
                self._call(vm_dir, "PUT", "/vm.delete", ok=(204,))
            self._call(vm_dir, "PUT", "/vmm.shutdown", ok=(204,))
        if not self._wait_gone(pid, 5.0):
            self._kill(pid)

    def delete(self, vm_id: str) -> None:
        if not self.state.dir(vm_id).exists():
            return
        with self.state.locked(vm_id) as vm_dir:
            self._shutdown_vmm(vm_dir, delete_vm=True)
            self.state.remove(vm_dir)

    def info(self, vm_id: str) -> VmInfo:
        return self._info(self.state.existing(vm_id))

    def adopt(self) -> list[VmInfo]:
        """VMs whose VMM is still alive (checked by pid, command line and a ping); the pid and
        socket files of VMs whose VMM died are cleared, so `start` boots them afresh."""
        found = []
        for info in self.list_vms():
            vm_dir = self.state_root / info.vm_id
            if info.pid is None:
                self._forget_process(vm_dir)
                continue
            self._call(vm_dir, "GET", "/vmm.ping", ok=(200,))
            found.append(info)
        return found
