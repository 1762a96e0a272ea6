"""What a VM is, to every part of the hypervisor layer: its spec, its state, its errors.

Kept apart from the driver interface (base.py) so the state directory code (state.py), which
both drivers share and the interface refers to, depends on these values without depending on
the interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sal.command import SalError


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
