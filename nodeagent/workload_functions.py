"""The catalog's workload functions (volumes, databases) bound to the node's SALs.

Each function validates what the script passed, reserves capacity in the workload registry
(which also scopes the name to the job's owner), asks the SAL to do the work, and records what
the SAL reported. A failure after the reservation gives the capacity back, so a failed create
leaves nothing behind. Errors raise RhaiError with a message for the script author; they never
mention another owner's workloads.
"""

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeagent.bindings import JobContext, SalFactory
from nodeagent.workloads import Workload, WorkloadError, WorkloadRegistry, check_name
from rhai.errors import RhaiError
from sal.btrfs import Pool
from sal.command import SalError, run
from sal.herodb import HeroDB

log = logging.getLogger(__name__)

GIB = 2**30
MIB = 2**20
MAX_VOLUME_GB = 16 * 1024
MAX_DB_MEMORY_MB = 64 * 1024
MAX_DB_DISK_GB = 1024


@dataclass
class NodeResources:
    """The SALs this node has; None where it lacks one (the functions then say so)."""

    pool: Pool | None
    herodb: HeroDB | None
    workload_bind: str = "127.0.0.1"


def node_resources(data_dir: Path, storage: tuple[Path, ...], workload_bind: str) -> NodeResources:
    """Find the node's btrfs pool among its storage paths and set up the SALs on it."""
    pool = next((Pool(path) for path in storage if _is_btrfs(path)), None)
    herodb = HeroDB(data_dir / "herodb") if pool is not None else None
    return NodeResources(pool=pool, herodb=herodb, workload_bind=workload_bind)


def _is_btrfs(path: Path) -> bool:
    try:
        return run(["stat", "-f", "-c", "%T", str(path)], timeout=5).stdout.strip() == "btrfs"
    except SalError:
        return False


def _fail(function: str, message: str) -> RhaiError:
    text = f"{function}: {message}"
    return RhaiError("ErrorRuntime", text, value=text)


def _whole(function: str, what: str, value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _fail(function, f"{what} must be a whole number from {low} to {high}, not {value!r}")
    return value


class WorkloadFunctions:
    """Factories for one job: every function acts for `ctx.owner` only."""

    def __init__(self, resources: NodeResources, registry: WorkloadRegistry) -> None:
        self.resources = resources
        self.registry = registry

    def table(self) -> dict[str, SalFactory]:
        return {
            "volume_create": self._bind(self.volume_create),
            "volume_delete": self._bind(self.volume_delete),
            "volume_snapshot": self._bind(self.volume_snapshot),
            "herodb_create": self._bind(self.herodb_create),
            "herodb_delete": self._bind(self.herodb_delete),
            "herodb_info": self._bind(self.herodb_info),
        }

    def _bind(self, method: Callable[..., Any]) -> SalFactory:
        name = method.__name__

        def factory(ctx: JobContext) -> Callable[..., Any]:
            def call(*args: Any) -> Any:
                ctx.check()
                try:
                    return method(ctx, *args)
                except WorkloadError as exc:
                    raise _fail(name, str(exc)) from exc
                except SalError as exc:
                    log.warning("job %s: %s failed: %s", ctx.job_id, name, exc)
                    raise _fail(name, str(exc)) from exc

            return call

        return factory

    def _pool(self, function: str) -> Pool:
        if self.resources.pool is None:
            raise _fail(function, "this node has no btrfs storage pool for workloads")
        return self.resources.pool

    def _create(self, workload: Workload, make: Callable[[Workload], tuple[dict, dict]]) -> dict:
        """Reserve, make, record; on failure release the reservation and re-raise.

        `make` returns (details to record, extras only this call's result shows: secrets).
        """
        record, created = self.registry.reserve(workload)
        if not created and record.state == "ready":
            return record.public()
        try:
            record.details, extras = make(record)
        except Exception:
            self.registry.release(record)
            raise
        record.state = "ready"
        self.registry.save(record)
        return {**record.public(), **extras}

    # --- volumes ------------------------------------------------------------------------------

    def volume_create(self, ctx: JobContext, name: Any, size_gb: Any) -> dict:
        pool = self._pool("volume_create")
        name = check_name("volume", name)
        size = _whole("volume_create", "size_gb", size_gb, 1, MAX_VOLUME_GB)
        workload = Workload(
            owner=ctx.owner,
            kind="volume",
            name=name,
            spec={"size_gb": size},
            reserved={"sru": size * GIB},
        )

        def make(record: Workload) -> dict:
            pool.create_subvolume(_volume_subvolume(record), limit=size * GIB)
            return {"size_gb": size}, {}

        return self._create(workload, make)

    def volume_delete(self, ctx: JobContext, name: Any) -> bool:
        pool = self._pool("volume_delete")
        record = self.registry.require(ctx.owner, "volume", name)
        pool.delete_subvolume(_volume_subvolume(record))
        self.registry.release(record)
        return True

    def volume_snapshot(self, ctx: JobContext, name: Any, snap: Any) -> dict:
        pool = self._pool("volume_snapshot")
        source = self.registry.require(ctx.owner, "volume", name)
        snap = check_name("volume", snap)
        workload = Workload(
            owner=ctx.owner,
            kind="volume",
            name=snap,
            spec={"snapshot_of": source.name},
            reserved={"sru": source.reserved.get("sru", 0)},
        )

        def make(record: Workload) -> dict:
            pool.snapshot(_volume_subvolume(source), _volume_subvolume(record), readonly=True)
            return {"snapshot_of": source.name, "size_gb": source.spec.get("size_gb", 0)}, {}

        return self._create(workload, make)

    # --- databases ----------------------------------------------------------------------------

    def herodb_create(self, ctx: JobContext, spec: Any) -> dict:
        pool = self._pool("herodb_create")
        herodb = self.resources.herodb
        assert herodb is not None  # set whenever the pool is
        if not isinstance(spec, dict):
            raise _fail("herodb_create", "spec must be a map: #{name, memory_mb, disk_gb}")
        unknown = set(spec) - {"name", "memory_mb", "disk_gb", "password"}
        if unknown:
            raise _fail("herodb_create", f"unknown spec fields: {', '.join(sorted(unknown))}")
        name = check_name("herodb", spec.get("name"))
        memory = _whole(
            "herodb_create", "memory_mb", spec.get("memory_mb", 256), 16, MAX_DB_MEMORY_MB
        )
        disk = _whole("herodb_create", "disk_gb", spec.get("disk_gb", 1), 1, MAX_DB_DISK_GB)
        password = spec.get("password")
        if password is not None and not isinstance(password, str):
            raise _fail("herodb_create", "password must be a string")
        workload = Workload(
            owner=ctx.owner,
            kind="herodb",
            name=name,
            spec={"memory_mb": memory, "disk_gb": disk, "password_given": password is not None},
            reserved={"mru": memory * MIB, "sru": disk * GIB},
        )

        def make(record: Workload) -> dict:
            data = pool.create_subvolume(_db_subvolume(record), limit=disk * GIB)
            secret = password or secrets.token_urlsafe(24)
            try:
                info = herodb.create(
                    record.local_id, secret, memory, data, bind=self.resources.workload_bind
                )
            except Exception:
                pool.delete_subvolume(_db_subvolume(record))
                raise
            details = {"address": info.address, "memory_mb": memory, "disk_gb": disk}
            # The password is shown once, to the script that made it; never kept in inventories.
            return details, {} if password else {"password": secret}

        return self._create(workload, make)

    def herodb_info(self, ctx: JobContext, name: Any) -> dict:
        herodb = self.resources.herodb
        record = self.registry.require(ctx.owner, "herodb", name)
        if herodb is None:
            raise _fail("herodb_info", "this node has no btrfs storage pool for workloads")
        info = herodb.info(record.local_id)
        return {
            **record.public(),
            "state": str(info.state),
            "used_memory_bytes": info.used_memory_bytes,
            "keys": info.keys,
            "data_bytes": info.data_bytes,
        }

    def herodb_delete(self, ctx: JobContext, name: Any) -> bool:
        pool = self._pool("herodb_delete")
        record = self.registry.require(ctx.owner, "herodb", name)
        assert self.resources.herodb is not None
        self.resources.herodb.delete(record.local_id)
        pool.delete_subvolume(_db_subvolume(record))
        self.registry.release(record)
        return True


def _volume_subvolume(record: Workload) -> str:
    return f"vol-{record.local_id}"


def _db_subvolume(record: Workload) -> str:
    return f"db-{record.local_id}"
