"""Boot a built image under QEMU the way a real machine would: UEFI firmware, a disk, a NIC.

Used by the boot proof (tests/image) and the benchmark. The guest's network is QEMU user mode
with `restrict=on`: it reaches nothing on or beyond the host except the ports forwarded to it
(`guestfwd` to a loopback port, one socat per connection), as PLATFORM.md requires. The serial
console goes to a file that tests read.
"""

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from qemu.qmp.legacy import QEMUMonitorProtocol

from sal.hypervisor.qemu import kvm_usable

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
IPXE_EFI = Path("/usr/lib/ipxe/ipxe.efi")
GUEST_LEDGER = "10.0.2.100:8000"  # where the guest finds the forwarded ledger port


class BootFailed(AssertionError):
    """The guest did not reach a state in time; carries the end of its console."""


@dataclass
class Guest:
    """One QEMU machine: q35 + OVMF, `boot_disk` first, then `disks`, one NIC."""

    workdir: Path
    boot_disk: Path
    ledger_port: int
    disks: list[Path] = field(default_factory=list)
    cpus: int = 2
    memory_mib: int = 2048
    # Extra user-mode network options, e.g. "bootfile=URL": the DHCP boot file for network boot.
    net_options: str = ""
    process: subprocess.Popen | None = None
    boots: int = 0

    @property
    def console_path(self) -> Path:
        return self.workdir / f"console{self.boots}.log"

    @property
    def qmp_path(self) -> Path:
        return self.workdir / "qmp.sock"

    def _argv(self) -> list[str]:
        vars_copy = self.workdir / "OVMF_VARS.fd"
        if not vars_copy.exists():
            shutil.copyfile(OVMF_VARS, vars_copy)
        accel = "kvm" if kvm_usable() else "tcg"
        forward = f"guestfwd=tcp:{GUEST_LEDGER}-cmd:socat - TCP:127.0.0.1:{self.ledger_port}"
        argv = [
            "qemu-system-x86_64",
            "-machine",
            f"q35,accel={accel}",
            "-smp",
            str(self.cpus),
            "-m",
            str(self.memory_mib),
            "-display",
            "none",
            "-no-user-config",
            "-nodefaults",
            "-serial",
            f"file:{self.console_path}",
            "-qmp",
            f"unix:{self.qmp_path},server=on,wait=off",
            "-drive",
            f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive",
            f"if=pflash,format=raw,file={vars_copy}",
            "-drive",
            f"if=none,id=boot,format=raw,file={self.boot_disk}",
            "-device",
            "virtio-blk-pci,drive=boot,bootindex=0",
            "-netdev",
            ",".join(filter(None, ["user,id=net0,restrict=on", forward, self.net_options])),
            "-device",
            "virtio-net-pci,netdev=net0,romfile=",
        ]
        for index, disk in enumerate(self.disks):
            argv += [
                "-drive",
                f"if=none,id=disk{index},format=raw,file={disk}",
                "-device",
                f"virtio-blk-pci,drive=disk{index},serial=zos-disk{index}",
            ]
        return argv

    def start(self) -> None:
        self.boots += 1
        self.qmp_path.unlink(missing_ok=True)
        self.console_path.write_bytes(b"")
        self.process = subprocess.Popen(
            self._argv(),
            stdin=subprocess.DEVNULL,
            stdout=open(self.workdir / f"qemu{self.boots}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )

    def console(self) -> str:
        try:
            return self.console_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.console().splitlines()[-lines:])

    def wait_for(self, pattern: str, *, timeout: float) -> re.Match:
        """Wait until the console of this boot matches `pattern` (a regex)."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            if match := regex.search(self.console()):
                return match
            if self.process and self.process.poll() is not None:
                raise BootFailed(
                    f"QEMU exited ({self.process.returncode}) before the console showed "
                    f"{pattern!r}; console:\n{self.tail()}"
                )
            time.sleep(0.25)
        raise BootFailed(f"no {pattern!r} on the console after {timeout}s; console:\n{self.tail()}")

    def qmp(self, command: str, **arguments) -> dict:
        monitor = QEMUMonitorProtocol(str(self.qmp_path))
        monitor.connect()
        try:
            return monitor.cmd(command, **arguments)
        finally:
            monitor.close()

    def powerdown(self, *, timeout: float) -> int:
        """Press the ACPI power button and wait for QEMU to exit; return its exit code."""
        self.qmp("system_powerdown")
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BootFailed(
                f"the guest did not power off within {timeout}s of the power button; "
                f"console:\n{self.tail()}"
            ) from None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def blank_disk(path: Path, size_mib: int) -> Path:
    with open(path, "wb") as disk:
        disk.truncate(size_mib << 20)
    return path
