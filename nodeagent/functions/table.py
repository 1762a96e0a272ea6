"""What every workload function table shares: script-facing errors, argument checks, and the
reserve → make → record sequence that keeps capacity and the SAL's view in step.

Errors raise RhaiError with a message for the script author, prefixed with the function's name;
they never mention another owner's workloads.
"""

import logging
from collections.abc import Callable
from typing import Any

from contracts.catalog import CatalogFunction
from nodeagent.functions.context import JobContext, SalFactory
from nodeagent.functions.registry import Workload, WorkloadError, WorkloadRegistry, check_name
from nodeagent.functions.resources import NodeResources
from rhai import RhaiError
from sal.btrfs import Pool
from sal.command import SalError

log = logging.getLogger(__name__)

GIB = 2**30
MIB = 2**20
POOL_FULL_FRACTION = 0.05  # a pool with less free than this is full (require_pool_space)


def script_error(function: str, message: str) -> RhaiError:
    text = f"{function}: {message}"
    return RhaiError("ErrorRuntime", text, value=text)


def whole_number(function: str, what: str, value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise script_error(
            function, f"{what} must be a whole number from {low} to {high}, not {value!r}"
        )
    return value


def check_spec_fields(function: CatalogFunction, spec: Any) -> dict:
    """`spec` as a map with only the fields the catalog lists for `function`, so what a node
    accepts is what `GET /api/v1/catalog` and the docs say."""
    if not isinstance(spec, dict):
        raise script_error(function.name, f"spec must be a map: {function.shape()}")
    allowed = {f.name for f in function.spec_fields}
    unknown = set(spec) - allowed
    if unknown:
        known = ", ".join(sorted(allowed))
        raise script_error(
            function.name, f"unknown spec fields: {', '.join(sorted(unknown))} (known: {known})"
        )
    return spec


def spec_number(
    function: CatalogFunction, spec: dict, field: str, default: int | None = None
) -> int:
    """A whole-number spec field with the catalog's default and range; `default` stands in for
    a default the node derives (a VM's disk from its image)."""
    arg = function.field(field)
    assert arg.minimum is not None and arg.maximum is not None  # a number field has a range
    value = spec.get(field, arg.default if default is None else default)
    return whole_number(function.name, field, value, arg.minimum, arg.maximum)


def bind_method(method: Callable[..., Any]) -> SalFactory:
    """A catalog factory calling `method(ctx, *args)`; workload and SAL errors become script
    errors naming the function."""
    name = method.__name__

    def factory(ctx: JobContext) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            ctx.check()
            try:
                return method(ctx, *args)
            except WorkloadError as exc:
                raise script_error(name, str(exc)) from exc
            except SalError as exc:
                log.warning("job %s: %s failed: %s", ctx.job_id, name, exc)
                raise script_error(name, str(exc)) from exc

        return call

    return factory


class FunctionTable:
    """Catalog functions as methods `name(ctx, *args)`; `table()` binds the ones in FUNCTIONS.

    Each function acts for `ctx.owner` only: the registry scopes every name to its owner.
    """

    FUNCTIONS: tuple[str, ...] = ()

    def __init__(self, resources: NodeResources, registry: WorkloadRegistry) -> None:
        self.resources = resources
        self.registry = registry

    def table(self) -> dict[str, SalFactory]:
        return {name: bind_method(getattr(self, name)) for name in self.FUNCTIONS}


def absent_ok(
    ctx: JobContext, registry: WorkloadRegistry, kind: str, name: Any, function: str
) -> Workload | None:
    """The owner's workload to delete, or None when there is none: a delete of what is already
    gone succeeds (a re-run after a crash deletes again), and says so in the job log so a
    mistyped name does not pass unseen."""
    record = registry.get(ctx.owner, kind, check_name(kind, name))
    if record is None:
        ctx.events.log(ctx.job_id, f"{function}: you have no {kind} named {name!r}; nothing to do")
    return record


def _size(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if abs(n) >= GIB else f"{n // MIB} MiB"


def require_pool_space(pool: Pool, need: int) -> None:
    """Refuse a create before anything is made when the pool is out of space.

    Capacity is reserved by accounting (nodeagent.functions.registry); this is the pool's own
    word, for space something else took (a full image cache, a database filling its disk, a
    farmer's file). Volumes, database disks and VM disks are thin -- a quota or a sparse file,
    space taken as it is written -- so a create is refused only when the pool is full: less free
    than it reserves *and* under POOL_FULL_FRACTION of the pool free. Without this, a create on
    a full pool either "succeeded" with space it can never have or failed half-way with ENOSPC.
    """
    usage = pool.pool_usage()
    if usage.free < min(need, usage.size * POOL_FULL_FRACTION):
        raise WorkloadError(
            f"no space left on this node's storage pool: {_size(need)} needed, "
            f"{_size(usage.free)} free of {_size(usage.size)}; nothing was created "
            "(try again once space is freed, or on another node)"
        )


def create_recorded(
    registry: WorkloadRegistry,
    workload: Workload,
    make: Callable[[Workload], tuple[dict, dict]],
) -> dict:
    """Reserve, make, record; on failure release the reservation and re-raise.

    `make` returns (details to record, extras only this call's result shows: secrets). The same
    spec again returns the existing record without calling `make` once it is ready; a record
    left `creating` by a runner that died is made again, so `make` must tolerate leftovers.
    """
    record, created = registry.reserve(workload)
    if not created and record.state == "ready":
        return record.public()
    try:
        record.details, extras = make(record)
    except Exception:
        registry.release(record)
        raise
    record.state = "ready"
    registry.save(record)
    return {**record.public(), **extras}
