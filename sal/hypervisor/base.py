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

from sal.hypervisor.state import VmStateRoot
from sal.hypervisor.vm import VmInfo, VmSpec


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
