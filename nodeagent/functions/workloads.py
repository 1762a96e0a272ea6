"""The catalog's volume and database functions bound to the node's SALs.

Each function validates what the script passed, reserves capacity in the workload registry
(which also scopes the name to the job's owner), asks the SAL to do the work, and records what
the SAL reported (nodeagent.functions.table). A failure after the reservation gives the capacity
back, so a failed create leaves nothing behind. VMs are in nodeagent.functions.vms.

Jobs run at least once (a runner or agent that dies mid-job runs the script again), so every
function is idempotent by name: a create with the same spec returns the same result, a delete of
what is already gone succeeds, a snapshot that exists is returned again even if its source has
been deleted since.
"""

from typing import Any

from contracts.catalog import CATALOG
from nodeagent import overlay
from nodeagent.functions.context import JobContext
from nodeagent.functions.registry import DELETING, Workload, WorkloadError, check_name
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
    whole_number,
)
from sal.btrfs import Pool

VOLUME_SIZE = CATALOG["volume_create"].param("size_gb")
HERODB = CATALOG["herodb_create"]


class WorkloadFunctions(FunctionTable):
    """Volumes and databases."""

    FUNCTIONS = (
        "volume_create",
        "volume_delete",
        "volume_snapshot",
        "herodb_create",
        "herodb_delete",
        "herodb_info",
    )

    def _pool(self, function: str) -> Pool:
        if self.resources.pool is None:
            raise script_error(function, "this node has no btrfs storage pool for workloads")
        return self.resources.pool

    def _database_address(self) -> str:
        found = overlay.current(self.registry.redis)
        return overlay.database_address(found, self.resources.workload_bind)

    # --- volumes ------------------------------------------------------------------------------

    def volume_create(self, ctx: JobContext, name: Any, size_gb: Any) -> dict:
        pool = self._pool("volume_create")
        name = check_name("volume", name)
        assert VOLUME_SIZE.minimum is not None and VOLUME_SIZE.maximum is not None
        size = whole_number(
            "volume_create", "size_gb", size_gb, VOLUME_SIZE.minimum, VOLUME_SIZE.maximum
        )
        workload = Workload(
            owner=ctx.owner,
            kind="volume",
            name=name,
            spec={"size_gb": size},
            reserved={self.resources.disk_key: size * GIB},
        )

        def make(record: Workload) -> dict:
            require_pool_space(pool, size * GIB)
            pool.create_subvolume(volume_subvolume(record), limit=size * GIB)
            return {"size_gb": size}, {}

        return create_recorded(self.registry, workload, make)

    def volume_delete(self, ctx: JobContext, name: Any) -> bool:
        pool = self._pool("volume_delete")
        record = absent_ok(ctx, self.registry, "volume", name, "volume_delete")
        if record is None:
            return True
        holder = self.registry.claim_volume(record, DELETING)
        if holder != DELETING:
            raise WorkloadError(
                f"volume {record.name!r} is attached to vm {holder!r}; delete that VM first "
                "(vm_delete leaves its volumes)"
            )
        try:
            pool.delete_subvolume(volume_subvolume(record))
            self.registry.release(record)
        finally:
            self.registry.unclaim_volumes(record.owner, [record.name], DELETING)
        return True

    def volume_snapshot(self, ctx: JobContext, name: Any, snap: Any) -> dict:
        pool = self._pool("volume_snapshot")
        snap = check_name("volume", snap)
        done = self.registry.get(ctx.owner, "volume", snap)
        if done is not None and done.state == "ready" and done.spec == {"snapshot_of": name}:
            return done.public()  # a re-run: the source may be gone by now, the snapshot is not
        source = self.registry.require(ctx.owner, "volume", name)
        workload = Workload(
            owner=ctx.owner,
            kind="volume",
            name=snap,
            spec={"snapshot_of": source.name},
            reserved=dict(source.reserved),
        )

        def make(record: Workload) -> dict:
            if not pool.exists(volume_subvolume(record)):  # else made by a run that died
                pool.snapshot(volume_subvolume(source), volume_subvolume(record), readonly=True)
            return {"snapshot_of": source.name, "size_gb": source.spec.get("size_gb", 0)}, {}

        return create_recorded(self.registry, workload, make)

    # --- databases ----------------------------------------------------------------------------

    def herodb_create(self, ctx: JobContext, spec: Any) -> dict:
        pool = self._pool("herodb_create")
        herodb = self.resources.herodb
        assert herodb is not None  # set whenever the pool is
        check_spec_fields(HERODB, spec)
        name = check_name("herodb", spec.get("name"))
        memory = spec_number(HERODB, spec, "memory_mb")
        disk = spec_number(HERODB, spec, "disk_gb")
        password = spec.get("password")
        if password is not None and not isinstance(password, str):
            raise script_error("herodb_create", "password must be a string")
        workload = Workload(
            owner=ctx.owner,
            kind="herodb",
            name=name,
            spec={"memory_mb": memory, "disk_gb": disk, "password_given": password is not None},
            reserved={"mru": memory * MIB, self.resources.disk_key: disk * GIB},
        )

        def secret(record: Workload) -> str:
            return password or herodb.generated_password(record.local_id, repr(record.created))

        def make(record: Workload) -> dict:
            require_pool_space(pool, disk * GIB)
            data = pool.create_subvolume(_db_subvolume(record), limit=disk * GIB)
            try:
                info = herodb.create(
                    record.local_id, secret(record), memory, data, bind=self._database_address()
                )
            except Exception:
                pool.delete_subvolume(_db_subvolume(record))
                raise
            return {"address": info.address, "memory_mb": memory, "disk_gb": disk}, {}

        made = create_recorded(self.registry, workload, make)
        if password is None:
            # Shown to the scripts that create it (a re-run gets the same one), never kept in
            # the record or the inventory. A database made before passwords were derived has a
            # random one that cannot be shown again: then none is shown rather than a wrong one.
            record = self.registry.require(ctx.owner, "herodb", name)
            if herodb.has_password(record.local_id, secret(record)):
                made["password"] = secret(record)
        return made

    def herodb_info(self, ctx: JobContext, name: Any) -> dict:
        herodb = self.resources.herodb
        record = self.registry.require(ctx.owner, "herodb", name)
        if herodb is None:
            raise script_error("herodb_info", "this node has no btrfs storage pool for workloads")
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
        record = absent_ok(ctx, self.registry, "herodb", name, "herodb_delete")
        if record is None:
            return True
        assert self.resources.herodb is not None
        self.resources.herodb.delete(record.local_id)
        pool.delete_subvolume(_db_subvolume(record))
        self.registry.release(record)
        return True


def volume_subvolume(record: Workload) -> str:
    return f"vol-{record.local_id}"


def _db_subvolume(record: Workload) -> str:
    return f"db-{record.local_id}"
