"""The SALs a node has for workloads, found once per process from its settings.

Runners (one per process) and the agent build the same view: the first btrfs pool among the
node's storage paths holds volumes, databases, container roots, the image cache and VM disks;
VM state lives in the data directory. Anything missing is None and the catalog functions then
say what the node lacks instead of failing obscurely.

Layout on the pool: `images/` and `vdisks/` are subvolumes with copy-on-write off (VM disks are
rewritten in place; a reflink copy needs source and copy to agree on it), `vol-<id>`, `db-<id>`
and `ct-<id>` are one subvolume per workload with the workload's quota.
"""

import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from nodeagent.facts import disk_class
from nodeagent.image_fetch import ImageFetcher
from sal.btrfs import Pool
from sal.command import SalError
from sal.herodb import HeroDB
from sal.hypervisor.base import Hypervisor
from sal.hypervisor.cloud_hypervisor import CloudHypervisor
from sal.hypervisor.qemu import QemuHypervisor
from sal.images import ImageCache, is_btrfs

HYPERVISORS = ("qemu", "cloud-hypervisor")
DEFAULT_MACHINE_IMAGE = "zos-machine"


@dataclass
class VmHost:
    """What VM functions need: a hypervisor, the image cache and where VM disks go.

    The pool's `images` and `vdisks` subvolumes are made on first use, so a node that never
    runs a VM has none.
    """

    hypervisor: Hypervisor
    pool: Pool
    netns: str | None = None  # where taps, the mycelium bridge and VM processes live
    machine_image: str = DEFAULT_MACHINE_IMAGE  # kernel + init that boots container machines
    # Fills the image cache from the control plane's hub (runners set it; None: cache only).
    fetcher: ImageFetcher | None = None

    @cached_property
    def images(self) -> ImageCache:
        return ImageCache(_nocow_subvolume(self.pool, "images"))

    @cached_property
    def vdisks(self) -> Path:
        return _nocow_subvolume(self.pool, "vdisks")


@dataclass
class NodeResources:
    """The SALs this node has; None where it lacks one (the functions then say so)."""

    pool: Pool | None
    herodb: HeroDB | None
    workload_bind: str = "127.0.0.1"
    vms: VmHost | None = None
    disk_key: str = "sru"  # the capacity workloads' disk space is reserved from: sru or hru


def node_resources(
    data_dir: Path,
    storage: tuple[Path, ...],
    workload_bind: str,
    *,
    hypervisor: str = "qemu",
    netns: str | None = None,
    machine_image: str = DEFAULT_MACHINE_IMAGE,
) -> NodeResources:
    """Find the node's btrfs pool among its storage paths and set up the SALs on it."""
    pool = next((Pool(path) for path in storage if _is_btrfs(path)), None)
    if pool is None:
        return NodeResources(pool=None, herodb=None, workload_bind=workload_bind)
    return NodeResources(
        pool=pool,
        herodb=HeroDB(data_dir / "herodb"),
        workload_bind=workload_bind,
        vms=_vm_host(pool, data_dir, hypervisor, netns, machine_image),
        disk_key=disk_class(pool.mountpoint),
    )


def hypervisor_available(name: str = "qemu") -> bool:
    binary = "qemu-system-x86_64" if name == "qemu" else "cloud-hypervisor"
    return shutil.which(binary) is not None


def _vm_host(
    pool: Pool, data_dir: Path, hypervisor: str, netns: str | None, machine_image: str
) -> VmHost | None:
    if not hypervisor_available(hypervisor):
        return None
    state = data_dir / "vms"
    driver: Hypervisor = QemuHypervisor(state) if hypervisor == "qemu" else CloudHypervisor(state)
    return VmHost(hypervisor=driver, pool=pool, netns=netns, machine_image=machine_image)


def _nocow_subvolume(pool: Pool, name: str) -> Path:
    """The pool's subvolume `name` with copy-on-write off for new files (both idempotent)."""
    path = pool.path(name)
    try:
        pool.create_subvolume(name)
    except SalError:
        if not path.exists():  # not another runner making it at the same moment
            raise
    return pool.nocow_dir(path)


def _is_btrfs(path: Path) -> bool:
    try:
        return path.is_dir() and is_btrfs(path)
    except SalError:
        return False
