"""The hypervisor interface both drivers (qemu, cloud-hypervisor) implement.

The node binds catalog functions (`vm_create`, `vm_stop`, ...) to this interface only, so a node
runs whichever hypervisor it has without the scripts noticing. A driver owns one state
directory per VM (`<state_root>/<vm id>/`) holding everything needed to find the VM again after
the agent restarts (pid file, API or QMP socket, console log, the spec it was created with);
`adopt()` rebuilds the driver's view from those directories alone. Both drivers keep that
directory through one `state.VmStateRoot`, so what needs only the directory (listing VMs,
reading the console) is implemented here once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from sal.command import SalError

if TYPE_CHECKING:
    from sal.hypervisor.state import VmStateRoot


class VmState(StrEnum):
    CREATED = "created"  # defined, never started or powered off
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"  # its process ended (shut down, crashed or killed)


class HypervisorError(SalError):
    """A VM operation failed; the message says which VM, what was attempted and why."""


class VmNotFound(HypervisorError):
    """No VM with that id on this node (for this driver)."""


@dataclass(frozen=True)
class NetAttachment:
    """One NIC. `tap` names an existing tap device; without it, QEMU user networking with
    `restrict=on` is used and `forwards` lists the only allowed guest→host connections as
    (guest_ip, guest_port, host_port) tuples on the host's loopback."""

    mac: str
    tap: str | None = None
    forwards: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class VolumeDisk:
    """A raw disk file attached read-write as a virtio-blk disk the guest finds by `serial`
    (at most 20 bytes, virtio-blk's limit; the guest reads it from /sys/block/vdX/serial, or
    udev links it as /dev/disk/by-id/virtio-<serial>)."""

    path: Path
    serial: str


@dataclass(frozen=True)
class VmSpec:
    """What to run. `vm_id` is the node-wide unique id (the binding derives it from owner and
    name); disks are paths to existing raw files, the first one is the root disk."""

    vm_id: str
    cpus: int
    memory_mb: int
    kernel: Path
    initrd: Path | None = None
    cmdline: str = "console=ttyS0 panic=-1"
    disks: tuple[Path, ...] = ()
    cidata: Path | None = None  # NoCloud seed disk (vfat labelled CIDATA)
    nics: tuple[NetAttachment, ...] = ()
    shared_dir: Path | None = None  # container machines: the root tree, shared as tag "root"
    volumes: tuple[VolumeDisk, ...] = ()  # data disks after the seed, each with its serial
    extra: dict = field(default_factory=dict)  # driver-specific, recorded in the state dir


@dataclass
class VmInfo:
    vm_id: str
    state: VmState
    pid: int | None
    cpus: int
    memory_mb: int
    console_log: Path
    driver: str


class Hypervisor(ABC):
    """A driver. Every method is synchronous and bounded in time; errors are HypervisorError."""

    name: str
    state: VmStateRoot

    @abstractmethod
    def create(self, spec: VmSpec) -> VmInfo:
        """Define the VM and start it. Same spec again → the existing VM; different → error."""

    @abstractmethod
    def start(self, vm_id: str) -> VmInfo:
        """Start a stopped VM from its recorded spec; a running VM is left alone."""

    @abstractmethod
    def stop(self, vm_id: str, *, grace: float = 30.0) -> VmInfo:
        """ACPI power-off, then force after `grace` seconds; a stopped VM is left alone."""

    @abstractmethod
    def delete(self, vm_id: str) -> None:
        """Stop (forcefully if needed) and remove its state directory; unknown id is a no-op."""

    @abstractmethod
    def info(self, vm_id: str) -> VmInfo:
        """Current state, asked of the VMM (not a cached guess). Unknown id → VmNotFound."""

    def list_vms(self) -> list[VmInfo]:
        """Every VM with a state directory, running or not."""
        return [self.info(vm_id) for vm_id in self.state.vm_ids()]

    def console_log(self, vm_id: str, *, tail_bytes: int = 64 * 1024) -> str:
        """The end of the VM's serial console output."""
        return self.state.console_tail(self.state.existing(vm_id), tail_bytes)

    @abstractmethod
    def adopt(self) -> list[VmInfo]:
        """After an agent restart: find the VMs still running from their state directories."""
