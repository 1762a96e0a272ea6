"""A stand-in for the `cloud-hypervisor` binary: same command line, same API, no VM.

Run as `python -m tests.sal.fake_cloud_hypervisor --api-socket path=/x/api.sock` (the tests wrap
it in an executable with `spec_stub.make_fake_binary`). It serves the API on the unix socket
through the strict spec stub, so every request the driver sends is checked against
specs/cloud-hypervisor.yaml, and it keeps the VM state machine the real VMM keeps:

    (no VM) --vm.create--> Created --vm.boot--> Running --vm.shutdown--> Shutdown --vm.boot--> ...
                                      Running <--vm.resume-- Paused <--vm.pause-- Running

Out-of-order calls are refused the way the API documents: 404 when there is no VM, 405 when the
VM is not in a state that allows the call, and 500 (the VMM's generic API error) for a second
vm.create or booting a running VM. vm.boot fails like the real one when the kernel, initramfs or
a disk file does not exist; it writes a few lines to the serial file when the serial mode is File.

The guest's reaction to the ACPI power button is set by the environment variable
ZOS_FAKE_CH_GUEST: `acpi` (default) powers the guest off shortly after vm.power-button, and then
the VMM exits, as cloud-hypervisor does when its guest shuts down; `ignore` models a guest that
does not handle the button, so only vm.shutdown stops it. vmm.shutdown makes the process exit.
The fake never creates taps; it leaves the socket file behind when it exits.
"""

import argparse
import os
import sys
import threading
import time
from pathlib import Path

from tests.sal.spec_stub import Reply, StubRequest, load_spec_stub, log_path_from_env

VERSION = "v48.0-fake"
GUEST_ENV = "ZOS_FAKE_CH_GUEST"


class FakeVmm:
    def __init__(self) -> None:
        self.stub = load_spec_stub("cloud-hypervisor.yaml", log_path=log_path_from_env())
        self.config: dict | None = None
        self.state: str | None = None  # Created, Running, Shutdown, Paused
        self.guest = os.environ.get(GUEST_ENV, "acpi")
        on = self.stub.on
        on("GET", "/vmm.ping")(self.ping)
        on("PUT", "/vmm.shutdown")(self.vmm_shutdown)
        on("PUT", "/vm.create")(self.create)
        on("PUT", "/vm.boot")(self.boot)
        on("GET", "/vm.info")(self.info)
        on("PUT", "/vm.shutdown")(self.shutdown)
        on("PUT", "/vm.power-button")(self.power_button)
        on("PUT", "/vm.pause")(self.pause)
        on("PUT", "/vm.resume")(self.resume)
        on("PUT", "/vm.delete")(self.delete)

    def exit_soon(self, delay: float = 0.05) -> None:
        """Exit after the current reply has been written, like the VMM leaving its loop."""
        threading.Timer(delay, os._exit, args=(0,)).start()

    def ping(self, req: StubRequest) -> Reply:
        return Reply(200, {"version": VERSION, "build_version": VERSION, "pid": os.getpid()})

    def vmm_shutdown(self, req: StubRequest) -> Reply:
        self.state = "Shutdown" if self.config else None
        self.exit_soon()
        return Reply(204)

    def create(self, req: StubRequest) -> Reply:
        if self.config is not None:
            return Reply(500, "VmCreate: VM is already created", "text/plain")
        self.config = req.body
        self.state = "Created"
        return Reply(204)

    def boot(self, req: StubRequest) -> Reply:
        if self.config is None:
            return Reply(404, "VmBoot: VM is not created", "text/plain")
        if self.state in ("Running", "Paused"):
            return Reply(500, "VmBoot: VM is already running", "text/plain")
        payload = self.config["payload"]
        files = [payload.get("kernel"), payload.get("initramfs")]
        files += [d.get("path") for d in self.config.get("disks", [])]
        for path in filter(None, files):
            if not Path(path).is_file():
                return Reply(500, f"VmBoot: cannot open {path}: No such file", "text/plain")
        serial = self.config.get("serial", {})
        if serial.get("mode") == "File":
            with open(serial["file"], "a") as console:
                console.write(f"fake cloud-hypervisor {VERSION}: booting {payload['kernel']}\n")
                console.write(f"Kernel command line: {payload.get('cmdline', '')}\n")
        self.state = "Running"
        return Reply(204)

    def info(self, req: StubRequest) -> Reply:
        if self.config is None:
            return Reply(404, "VmInfo: VM is not created", "text/plain")
        body = {"config": self.config, "state": self.state}
        if self.state in ("Running", "Paused"):
            body["memory_actual_size"] = self.config.get("memory", {}).get("size", 0)
        return Reply(200, body)

    def shutdown(self, req: StubRequest) -> Reply:
        if self.config is None:
            return Reply(404, "VmShutdown: VM is not created", "text/plain")
        if self.state not in ("Running", "Paused"):
            return Reply(405, "VmShutdown: VM is not running", "text/plain")
        self.state = "Shutdown"
        return Reply(204)

    def power_button(self, req: StubRequest) -> Reply:
        if self.config is None:
            return Reply(404, "VmPowerButton: VM is not created", "text/plain")
        if self.state != "Running":
            return Reply(405, "VmPowerButton: VM is not booted", "text/plain")
        if self.guest == "acpi":
            threading.Thread(target=self._guest_powers_off, daemon=True).start()
        return Reply(204)

    def _guest_powers_off(self) -> None:
        time.sleep(0.2)
        with self.stub.lock:
            self.state = "Shutdown"
        os._exit(0)

    def pause(self, req: StubRequest) -> Reply:
        if self.config is None:
            return Reply(404, "VmPause: VM is not created", "text/plain")
        if self.state != "Running":
            return Reply(405, "VmPause: VM is not running", "text/plain")
        self.state = "Paused"
        return Reply(204)

    def resume(self, req: StubRequest) -> Reply:
        if self.config is None:
            return Reply(404, "VmResume: VM is not created", "text/plain")
        if self.state != "Paused":
            return Reply(405, "VmResume: VM is not paused", "text/plain")
        self.state = "Running"
        return Reply(204)

    def delete(self, req: StubRequest) -> Reply:
        self.config = None
        self.state = None
        return Reply(204)


def socket_from_arg(value: str) -> Path:
    """`--api-socket` takes `path=<file>` (or, for older releases, a bare path); `fd=` too,
    which the fake does not support."""
    if value.startswith("fd="):
        raise SystemExit("fake cloud-hypervisor: --api-socket fd= is not supported")
    return Path(value.removeprefix("path="))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cloud-hypervisor")
    parser.add_argument("--api-socket", required=True)
    args = parser.parse_args(argv)
    socket_path = socket_from_arg(args.api_socket)
    if socket_path.exists():
        sys.exit(f"Error: API socket {socket_path} already exists (Address in use)")
    vmm = FakeVmm()
    vmm.stub.serve_unix(socket_path)
    threading.Event().wait()


if __name__ == "__main__":
    main()
