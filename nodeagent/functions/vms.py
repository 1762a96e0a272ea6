"""The catalog's VM functions: `vm_create`, `vm_start`, `vm_stop`, `vm_delete`, `vm_info`,
`vm_list`, bound to the node's hypervisor, image cache, btrfs pool and Mycelium overlay.

A VM is, on the node: a record in the workload registry (owner, spec, reserved cpu/memory/disk,
overlay address, desired state), a disk in the pool's `vdisks` subvolume made from a cached image
by reflink copy, a NoCloud seed beside it (hostname, SSH keys, the overlay address), a tap on the
overlay bridge, and the hypervisor's state directory. A container machine (`kind: "container"`)
has a root tree unpacked from the image's tarball into its own subvolume (`ct-<id>`, with the
disk quota) instead of a disk, booted with the node's machine image and shared into the guest.

Volumes (`volumes: [#{name, mount}]`) are the owner's `volume_create` subvolumes, attached as
virtio-blk disks: one raw file per volume, `disk.raw` in the volume's subvolume, with
copy-on-write off (chattr +C) and formatted ext4 by the node when it is first attached, so a
guest only has to mount it. The seed's cloud-config `mounts` tells the guest where, naming each
disk by its virtio serial. A volume is held by one VM from that VM's create to its delete
(WorkloadRegistry.claim_volume); deleting the VM lets go of it and leaves its data.

Everything is named from the record's node-wide id (`u<owner>-<name>`): a create that died
half-way is finished by the retry, and a delete finds every piece without a lookup. The record's
`desired` state ("running" or "stopped") is what the agent restores after a restart or reboot.
"""

import contextlib
import hashlib
import ipaddress
import logging
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from contracts.catalog import CATALOG
from nodeagent import overlay as overlay_state
from nodeagent.functions.context import JobContext
from nodeagent.functions.registry import (
    DELETING,
    Workload,
    WorkloadError,
    WorkloadRegistry,
    check_name,
)
from nodeagent.functions.resources import VmHost
from nodeagent.functions.table import (
    GIB,
    MIB,
    FunctionTable,
    absent_ok,
    check_spec_fields,
    create_recorded,
    require_pool_space,
    script_error,
    spec_number,
)
from nodeagent.functions.workloads import volume_subvolume
from nodeagent.image_fetch import visible_to
from sal import mycelium, net
from sal.btrfs import Pool
from sal.command import SalError, run
from sal.hypervisor.cidata import NicConfig, SeedConfig, write_seed
from sal.hypervisor.vm import NetAttachment, VmNotFound, VmSpec, VolumeDisk
from sal.images import (
    ENV_NAME,
    Image,
    ImageError,
    remove_rootfs,
    unpack_rootfs,
    write_container_config,
)

log = logging.getLogger(__name__)

VM_CREATE = CATALOG["vm_create"]  # the spec's fields, defaults and limits
MAX_SSH_KEYS = VM_CREATE.field("ssh_keys").max_items
MAX_ENV = VM_CREATE.field("env").max_items
MAX_ENTRYPOINT = VM_CREATE.field("entrypoint").max_items
CONSOLE_TAIL = 4096
STOP_GRACE = 30.0
KINDS = VM_CREATE.field("kind").choices
MAX_VOLUMES = VM_CREATE.field("volumes").max_items
MAX_RUNCMD = VM_CREATE.field("runcmd").max_items
VOLUME_DISK = "disk.raw"
# Where a volume may not be mounted: the guest's own system directories.
SYSTEM_DIRS = frozenset((
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin", "/sys",
    "/tmp", "/usr", "/var",  # noqa: S108 - a path in the guest, not a temporary file here
))  # fmt: skip
_MOUNT_RE = re.compile(r"^(/[A-Za-z0-9._-]+)+$")


def tap_name(local_id: str) -> str:
    """A VM's tap: `zt` + 12 hex digits of its id (interface names are at most 15 bytes)."""
    return "zt" + hashlib.sha256(local_id.encode()).hexdigest()[:12]


def mac_address(local_id: str) -> str:
    """A stable MAC in QEMU's 52:54:00 range, derived from the VM's id."""
    tail = hashlib.sha256(b"mac\0" + local_id.encode()).digest()[:3]
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


@dataclass(frozen=True)
class VmRequest:
    """A checked `vm_create` spec; `as_spec()` is what the registry compares on a re-run."""

    name: str
    kind: str
    image: str
    cpus: int
    memory_mb: int
    disk_gb: int
    ssh_keys: tuple[str, ...]
    mycelium: bool
    env: tuple[tuple[str, str], ...]
    entrypoint: tuple[str, ...]
    volumes: tuple[tuple[str, str], ...] = ()  # (volume name, mount path)
    runcmd: tuple[str, ...] = ()  # the guest's boot commands (kind "vm")

    def as_spec(self) -> dict:
        spec = {
            "kind": self.kind,
            "image": self.image,
            "cpus": self.cpus,
            "memory_mb": self.memory_mb,
            "disk_gb": self.disk_gb,
            "ssh_keys": list(self.ssh_keys),
            "mycelium": self.mycelium,
            "env": dict(self.env),
            "entrypoint": list(self.entrypoint),
        }
        if self.volumes:  # only then: a VM recorded before volumes existed keeps its spec
            spec["volumes"] = [{"name": n, "mount": m} for n, m in self.volumes]
        if self.runcmd:  # likewise for a VM recorded before runcmd existed
            spec["runcmd"] = list(self.runcmd)
        return spec


def _default(field: str) -> Any:
    """A fresh copy of the catalog's default, so no request can change the shared one."""
    default = VM_CREATE.field(field).default
    return type(default)(default) if isinstance(default, list | dict) else default


def _strings(function: str, what: str, value: Any, limit: int) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > limit:
        raise script_error(function, f"{what} must be an array of at most {limit} strings")
    for item in value:
        if not isinstance(item, str) or not item.strip() or "\n" in item:
            raise script_error(
                function, f"{what} entries must be non-empty one-line strings, not {item!r}"
            )
    return tuple(value)


def _env(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or len(value) > MAX_ENV:
        raise script_error("vm_create", f"env must be a map of at most {MAX_ENV} entries")
    pairs = []
    for key, item in value.items():
        key = str(key)
        if not ENV_NAME.fullmatch(key):
            raise script_error("vm_create", f"env name {key!r} is not a valid variable name")
        if not isinstance(item, str | int | bool) or "\n" in str(item):
            raise script_error(
                "vm_create", f"env {key}: the value must be a one-line string or number"
            )
        pairs.append((key, str(item).lower() if isinstance(item, bool) else str(item)))
    return tuple(sorted(pairs))


def _volumes(value: Any) -> tuple[tuple[str, str], ...]:
    """`volumes: [#{name, mount}]` checked: names as names, mounts as absolute paths outside
    the guest's system directories, neither twice."""
    if not isinstance(value, list) or len(value) > MAX_VOLUMES:
        raise script_error(
            "vm_create",
            f'volumes must be an array of at most {MAX_VOLUMES} maps #{{name: "data", '
            'mount: "/data"}',
        )
    pairs: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"name", "mount"}:
            raise script_error(
                "vm_create",
                f'each volume is a map with exactly name and mount, e.g. #{{name: "data", '
                f'mount: "/data"}}, not {item!r}',
            )
        name = check_name("volume", item["name"])
        mount = item["mount"]
        if (
            not isinstance(mount, str)
            or not _MOUNT_RE.match(mount)
            or any(part in (".", "..") for part in mount.split("/"))
        ):
            raise script_error(
                "vm_create",
                f"volume {name!r}: mount must be an absolute path of letters, digits, '.', '_' "
                f"and '-' (e.g. /data), not {mount!r}",
            )
        if mount in SYSTEM_DIRS:
            raise script_error(
                "vm_create", f"volume {name!r}: {mount} is a system directory of the guest"
            )
        for other, other_mount in pairs:
            if name == other:
                raise script_error("vm_create", f"volume {name!r} is listed twice")
            if mount == other_mount:
                raise script_error(
                    "vm_create", f"volumes {other!r} and {name!r} both mount at {mount}"
                )
        pairs.append((name, mount))
    return tuple(pairs)


class VmFunctions(FunctionTable):
    """VMs and container machines."""

    FUNCTIONS = ("vm_create", "vm_start", "vm_stop", "vm_delete", "vm_info", "vm_list")

    def _host(self, function: str) -> VmHost:
        if self.resources.pool is None:
            raise script_error(function, "this node has no btrfs storage pool for VM disks")
        if self.resources.vms is None:
            raise script_error(function, "this node has no hypervisor (qemu is not installed)")
        return self.resources.vms

    # --- spec ---------------------------------------------------------------------------------

    def _request(self, host: VmHost, ctx: JobContext, spec: Any) -> tuple[VmRequest, Image]:
        check_spec_fields(VM_CREATE, spec)
        name = check_name("vm", spec.get("name"))
        kind = spec.get("kind", _default("kind"))
        if kind not in KINDS:
            raise script_error("vm_create", f'kind must be "vm" or "container", not {kind!r}')
        image = self._image(host, ctx, spec.get("image"), kind)
        default_disk = max(1, image.min_disk_gb)
        entrypoint = _strings(
            "vm_create",
            "entrypoint",
            spec.get("entrypoint", list(image.entrypoint)),
            MAX_ENTRYPOINT,
        )
        if kind == "container" and not entrypoint:
            raise script_error(
                "vm_create",
                f"container image {image.name!r} has no default entrypoint: give one, "
                'e.g. entrypoint: ["/bin/sh", "-c", "..."]',
            )
        if kind == "vm" and "entrypoint" in spec:
            raise script_error("vm_create", 'entrypoint applies to kind: "container" only')
        if kind == "container" and "runcmd" in spec:
            raise script_error(
                "vm_create", 'runcmd applies to kind: "vm" only (a container runs its entrypoint)'
            )
        mycelium_wanted = spec.get("mycelium", _default("mycelium"))
        if type(mycelium_wanted) is not bool:
            raise script_error("vm_create", "mycelium must be true or false")
        request = VmRequest(
            name=name,
            kind=kind,
            image=spec["image"],
            cpus=spec_number(VM_CREATE, spec, "cpus"),
            memory_mb=spec_number(VM_CREATE, spec, "memory_mb"),
            disk_gb=spec_number(VM_CREATE, spec, "disk_gb", default=default_disk),
            ssh_keys=_strings(
                "vm_create", "ssh_keys", spec.get("ssh_keys", _default("ssh_keys")), MAX_SSH_KEYS
            ),
            mycelium=mycelium_wanted,
            env=_env(spec.get("env", _default("env"))),
            entrypoint=entrypoint if kind == "container" else (),
            volumes=_volumes(spec.get("volumes", [])),
            runcmd=_strings("vm_create", "runcmd", spec.get("runcmd", []), MAX_RUNCMD),
        )
        for volume, _ in request.volumes:
            self._attachable(ctx, volume)
        if kind == "vm" and request.disk_gb < default_disk:
            raise script_error(
                "vm_create",
                f"image {image.name!r} needs disk_gb of at least {default_disk}, "
                f"not {request.disk_gb}",
            )
        return request, image

    def _attachable(self, ctx: JobContext, name: str) -> Workload:
        """The owner's volume `name`, if a VM may attach it (whether another VM holds it is
        settled by the claim in `_attach`)."""
        record = self.registry.require(ctx.owner, "volume", name)
        if record.state != "ready":
            raise WorkloadError(f"volume {name!r} is still being created; try again shortly")
        if "snapshot_of" in record.spec:
            raise WorkloadError(
                f"volume {name!r} is a read-only snapshot of {record.spec['snapshot_of']!r} and "
                "cannot be attached"
            )
        return record

    def _attach(
        self, ctx: JobContext, record: Workload, request: VmRequest
    ) -> tuple[VolumeDisk, ...]:
        """Claim the request's volumes for this VM and make their disks where missing."""
        pool = self.resources.pool
        assert pool is not None
        disks = []
        for i, (name, _) in enumerate(request.volumes):
            volume = self._attachable(ctx, name)
            holder = self.registry.claim_volume(volume, record.name)
            if holder == DELETING:
                raise WorkloadError(f"volume {name!r} is being deleted")
            if holder != record.name:
                raise WorkloadError(
                    f"volume {name!r} is attached to vm {holder!r}: a volume is attached to one "
                    f"machine at a time; delete vm {holder!r} first (its volumes stay)"
                )
            disk = volume_disk(pool, volume)
            disks.append(VolumeDisk(path=disk, serial=f"zos-vol{i}"))
        return tuple(disks)

    def _image(self, host: VmHost, ctx: JobContext, name: Any, kind: str) -> Image:
        if not isinstance(name, str) or not name:
            raise script_error("vm_create", "image must name an image in the node's cache")
        try:
            if host.fetcher is not None:  # the cache, else the hub (nodeagent/image_fetch.py)
                image = host.fetcher.ensure(ctx.owner, name, check=ctx.check)
            else:
                image = host.images.get(name)
        except ImageError as exc:
            if host.fetcher is not None and host.fetcher.hub is not None:
                raise script_error("vm_create", str(exc)) from None
            fitting = [
                i.name
                for i in host.images.list()
                if i.is_container == (kind != "vm") and visible_to(ctx.owner, i.name)
            ]
            raise script_error(
                "vm_create",
                f"this node has no {kind} image {name!r}; it has: "
                + (", ".join(fitting) or "none"),
            ) from None
        if image.is_container != (kind == "container"):
            raise script_error(
                "vm_create",
                f"image {name!r} is a {'container' if image.is_container else 'VM'} image: "
                f'use kind: "{"container" if image.is_container else "vm"}"',
            )
        return image

    # --- functions ----------------------------------------------------------------------------

    def vm_create(self, ctx: JobContext, spec: Any) -> dict:
        host = self._host("vm_create")
        request, image = self._request(host, ctx, spec)
        overlay = self._overlay() if request.mycelium else None
        workload = Workload(
            owner=ctx.owner,
            kind="vm",
            name=request.name,
            spec=request.as_spec(),
            reserved={
                "cru": request.cpus,
                "mru": request.memory_mb * MIB,
                self.resources.disk_key: request.disk_gb * GIB,
            },
        )

        def make(record: Workload) -> tuple[dict, dict]:
            if self.resources.pool is not None:  # its disk goes there
                require_pool_space(self.resources.pool, request.disk_gb * GIB)
            try:
                volumes = self._attach(ctx, record, request)
                return self._make(host, record, request, image, overlay, volumes), {}
            except Exception:
                self._destroy(host, record)
                raise

        create_recorded(self.registry, workload, make)
        return self._view(host, self.registry.require(ctx.owner, "vm", request.name))

    def _overlay(self) -> overlay_state.Overlay:
        found = overlay_state.current(self.registry.redis)
        if found is None:
            raise WorkloadError(
                "this node runs no Mycelium overlay, so a VM cannot get an overlay address; "
                "create it with mycelium: false (no network) or on a node with Mycelium"
            )
        return found

    def _make(
        self,
        host: VmHost,
        record: Workload,
        request: VmRequest,
        image: Image,
        overlay: overlay_state.Overlay | None,
        volumes: tuple[VolumeDisk, ...],
    ) -> dict:
        local_id = record.local_id
        nics: tuple[NetAttachment, ...] = ()
        nic_configs: tuple[NicConfig, ...] = ()
        address = None
        if overlay is not None:
            address = self._address(overlay, record)
            mac = mac_address(local_id)
            wire_vm(host, local_id, overlay)
            nics = (NetAttachment(mac=mac, tap=tap_name(local_id)),)
            nic_configs = (
                NicConfig(mac=mac, addresses=(f"{address}/64",), gateway6=str(overlay.gateway)),
            )
        env = dict(request.env)
        seed = write_seed(
            SeedConfig(
                instance_id=local_id,
                hostname=request.name,
                ssh_keys=request.ssh_keys,
                nics=nic_configs,
                mounts=tuple(
                    (disk.serial, mount)
                    for disk, (_, mount) in zip(volumes, request.volumes, strict=True)
                ),
                runcmd=request.runcmd,
                extra_files={"env": "".join(f"{k}={v}\n" for k, v in env.items())} if env else {},
            ),
            host.vdisks / f"{local_id}.cidata",
        )
        extra = {"netns": host.netns} if host.netns else {}
        if request.kind == "vm":
            disk = host.vdisks / f"{local_id}.raw"
            if not disk.exists():
                host.images.vdisk_from(image, disk, request.disk_gb)
            assert image.kernel is not None  # a VM image has one (checked in _image)
            spec = VmSpec(
                vm_id=local_id,
                cpus=request.cpus,
                memory_mb=request.memory_mb,
                kernel=image.kernel,
                initrd=image.initrd,
                cmdline=f"console=ttyS0 panic=-1 {image.cmdline}".strip(),
                disks=(disk,),
                cidata=seed,
                nics=nics,
                volumes=volumes,
                extra=extra,
            )
        else:
            spec = self._container_spec(host, record, request, image, seed, nics, extra)
            spec = replace(spec, volumes=volumes)
        info = host.hypervisor.create(spec)
        log.info("VM %s is %s (pid %s)", local_id, info.state, info.pid)
        return {
            "kind": request.kind,
            "image": request.image,
            "image_key": image.name,  # the cache entry it uses: kept from eviction while it exists
            "mycelium_ip": str(address) if address else "",
            "desired": "running",
        }

    def _container_spec(
        self,
        host: VmHost,
        record: Workload,
        request: VmRequest,
        image: Image,
        seed: Path,
        nics: tuple[NetAttachment, ...],
        extra: dict,
    ) -> VmSpec:
        pool = self.resources.pool
        assert pool is not None and image.rootfs is not None
        try:
            machine = host.images.get(host.machine_image)
        except ImageError:
            raise WorkloadError(
                f"this node has no machine image {host.machine_image!r} to boot containers with"
            ) from None
        if machine.kernel is None:
            raise WorkloadError(f"machine image {host.machine_image!r} has no kernel")
        root_name = _container_root(record)
        root = pool.path(root_name)
        if not root.exists():
            unpack_rootfs(image.rootfs, root)
        pool.set_limit(root_name, request.disk_gb * GIB)
        # The image's env (its OCI config's) under the script's: the script's `env` wins.
        env = {**dict(image.env), **dict(request.env)}
        write_container_config(root, list(request.entrypoint), env, image.workdir)
        return VmSpec(
            vm_id=record.local_id,
            cpus=request.cpus,
            memory_mb=request.memory_mb,
            kernel=machine.kernel,
            initrd=machine.initrd,
            cmdline=f"console=ttyS0 panic=-1 {machine.cmdline}".strip(),
            cidata=seed,
            nics=nics,
            shared_dir=root,
            extra=extra,
        )

    def _address(self, overlay: overlay_state.Overlay, record: Workload) -> ipaddress.IPv6Address:
        """The VM's overlay address: deterministic per VM, never one another VM holds."""
        taken = {
            ipaddress.IPv6Address(other.details["mycelium_ip"])
            for other in self.registry.all(kind="vm")
            if other.key != record.key and other.details.get("mycelium_ip")
        }
        return mycelium.vm_address(
            overlay.subnet, record.local_id, node_address=overlay.address, taken=taken
        )

    def _destroy(self, host: VmHost, record: Workload) -> None:
        """Remove every piece of the VM that exists; safe to call on a half-made one."""
        local_id = record.local_id
        host.hypervisor.delete(local_id)
        net.delete_link(tap_name(local_id), host.netns)
        (host.vdisks / f"{local_id}.cidata").unlink(missing_ok=True)
        (host.vdisks / f"{local_id}.raw").unlink(missing_ok=True)
        if self.resources.pool is not None:
            remove_rootfs(self.resources.pool.path(_container_root(record)))
        # Only once the VM's process is gone may another VM open its volumes' disks.
        volumes = [v["name"] for v in record.spec.get("volumes", [])]
        self.registry.unclaim_volumes(record.owner, volumes, record.name)

    def vm_start(self, ctx: JobContext, name: Any) -> dict:
        host = self._host("vm_start")
        record = self._ready(ctx, name)
        start_vm(host, self.registry, record)
        return self._view(host, record)

    def vm_stop(self, ctx: JobContext, name: Any) -> dict:
        host = self._host("vm_stop")
        record = self._ready(ctx, name)
        record.details["desired"] = "stopped"
        self.registry.save(record)
        grace = min(STOP_GRACE, max(1.0, ctx.deadline - time.monotonic() - 5.0))
        host.hypervisor.stop(record.local_id, grace=grace)
        return self._view(host, record)

    def vm_delete(self, ctx: JobContext, name: Any) -> bool:
        host = self._host("vm_delete")
        record = absent_ok(ctx, self.registry, "vm", name, "vm_delete")
        if record is None:
            return True
        if record.spec.get("volumes"):
            # A forced stop is a power cut to the volumes, which outlive the VM: the power
            # button first, so the guest unmounts them (a guest that ignores it is forced).
            grace = min(STOP_GRACE, max(1.0, ctx.deadline - time.monotonic() - 10.0))
            with contextlib.suppress(SalError):
                host.hypervisor.stop(record.local_id, grace=grace)
        self._destroy(host, record)
        self.registry.release(record)
        return True

    def vm_info(self, ctx: JobContext, name: Any) -> dict:
        host = self._host("vm_info")
        return self._view(host, self._ready(ctx, name))

    def vm_list(self, ctx: JobContext) -> list:
        host = self._host("vm_list")
        return [
            self._view(host, record, console=False)
            for record in self.registry.all(owner=ctx.owner, kind="vm")
        ]

    def _ready(self, ctx: JobContext, name: Any) -> Workload:
        record = self.registry.require(ctx.owner, "vm", name)
        if record.state != "ready":
            raise WorkloadError(f"vm {record.name!r} is still being created; try again shortly")
        return record

    def _view(self, host: VmHost, record: Workload, *, console: bool = True) -> dict:
        """What the owner sees: the record and the hypervisor's live state, plus the console."""
        view = {**record.spec, **record.public()}
        try:
            view["state"] = str(host.hypervisor.info(record.local_id).state)
        except VmNotFound:
            view["state"] = "missing" if record.state == "ready" else record.state
        if console:
            try:
                view["console"] = host.hypervisor.console_log(
                    record.local_id, tail_bytes=CONSOLE_TAIL
                )
            except VmNotFound:
                view["console"] = ""
        return view


def volume_disk(pool: Pool, volume: Workload) -> Path:
    """The volume's disk file, made at its first attachment: sparse, copy-on-write off (a disk
    rewritten in place would fragment under copy-on-write, and a snapshot still shares its
    extents), ext4 made by the node on the plain file (no loop device), a 64th smaller than
    the volume's quota so the file system's own blocks and btrfs metadata stay under it. Made
    under a temporary name, so a half-made disk is never taken for a formatted one."""
    directory = pool.nocow_dir(pool.path(volume_subvolume(volume)))
    disk = directory / VOLUME_DISK
    if disk.exists():
        return disk
    size = int(volume.spec["size_gb"]) * GIB
    tmp = directory / f"{VOLUME_DISK}.tmp"
    tmp.unlink(missing_ok=True)
    with open(tmp, "wb") as f:
        f.truncate(size - size // 64)
    run(["mkfs.ext4", "-q", "-F", "-L", "zos-volume", str(tmp)], timeout=120)
    tmp.replace(disk)
    return disk


def _container_root(record: Workload) -> str:
    return f"ct-{record.local_id}"


def wire_vm(host: VmHost, local_id: str, overlay: overlay_state.Overlay) -> None:
    """The VM's tap, made if missing and put on the overlay bridge (both idempotent)."""
    tap = tap_name(local_id)
    net.create_tap(tap, netns=host.netns)
    mycelium.attach_vm_tap(tap, overlay.bridge, netns=host.netns)


def start_vm(host: VmHost, registry: WorkloadRegistry, record: Workload) -> None:
    """Start a recorded VM (its tap re-made first: a reboot loses taps) and remember that it
    should run."""
    if record.details.get("mycelium_ip"):
        found = overlay_state.current(registry.redis)
        if found is None:
            raise WorkloadError(
                f"vm {record.name!r} has an overlay address but the node runs no Mycelium now"
            )
        wire_vm(host, record.local_id, found)
    host.hypervisor.start(record.local_id)
    if record.details.get("desired") != "running":
        record.details["desired"] = "running"
        registry.save(record)


def restart_vms(host: VmHost, registry: WorkloadRegistry) -> list[str]:
    """After an agent restart or a reboot: adopt the VMs still running, start the ones whose
    desired state is running but are not. Returns the ids started; errors are logged per VM so
    one broken VM does not keep the others down."""
    host.hypervisor.adopt()
    started = []
    for record in registry.all(kind="vm"):
        if record.state != "ready" or record.details.get("desired") != "running":
            continue
        try:
            if str(host.hypervisor.info(record.local_id).state) == "running":
                continue
            start_vm(host, registry, record)
            started.append(record.local_id)
        except (SalError, WorkloadError) as exc:
            log.error("cannot restart VM %s: %s", record.local_id, exc)
    return started
