"""The node's side of the function catalog: the catalog bound into one job's Rhai engine, on
behalf of the job's signer.

Every catalog name (in contracts/) is registered in every job's engine, so a script behaves the
same on every node: a name whose SAL this node lacks fails with a clear "not available" error
rather than "function not found". A SAL plugs in by adding a factory to `IMPLEMENTATIONS` (or
passing its own table to `bind`): the factory receives the `JobContext` -- job id, owner, signer
-- and returns the function the script calls, so an implementation can only ever act for the
owner of the job it was made for.

The built-ins here are the ones every node has: `log`, `sleep`, `now`, `node_info`. The rest of
the package says what else a job can reach:

- `context`: the job a function acts for (`JobContext`) and when it must stop;
- `table`: what every workload function table shares (argument checks, reserve → make → record);
- `workloads`: volumes and databases; `vms`: virtual machines; `gateways`: names on the web;
- `registry`: the owner-scoped workload records and the capacity they reserve, in Redis;
- `resources`: the SALs this node has for workloads (pool, HeroDB, hypervisor, image cache).
"""

import time
from collections.abc import Callable, Mapping
from typing import Any

from contracts.catalog import CATALOG, CatalogFunction, callable_functions
from nodeagent.functions.context import JobContext, SalFactory
from rhai import RhaiError, to_string

MAX_LOG_LINE = 4096
MAX_LOG_LINES = 10_000
MAX_SLEEP_MS = CATALOG["sleep"].param("ms").maximum
SLEEP_SLICE = 0.1

# Which SAL provides a catalog name, for the "not available" message.
_SAL_OF_PREFIX = {
    "vm_": "hypervisor",
    "volume_": "storage",
    "herodb_": "herodb",
    "gateway_": "gateway",
}


def _log(ctx: JobContext) -> Callable[[Any], None]:
    def log(message: Any) -> None:
        ctx.check()
        if ctx.log_lines >= MAX_LOG_LINES:
            raise RhaiError("ErrorRuntime", f"log: a job may write at most {MAX_LOG_LINES} lines")
        ctx.log_lines += 1
        text = message if isinstance(message, str) else to_string(message)
        if len(text) > MAX_LOG_LINE:
            text = text[:MAX_LOG_LINE] + " [truncated]"
        ctx.events.log(ctx.job_id, text)

    return log


def _sleep(ctx: JobContext) -> Callable[[Any], None]:
    def sleep(ms: Any) -> None:
        if type(ms) not in (int, float):
            raise RhaiError("ErrorRuntime", f"sleep(ms): ms must be a number, not {ms!r}")
        if ms < 0 or ms > MAX_SLEEP_MS:
            raise RhaiError(
                "ErrorRuntime", f"sleep(ms): ms must be between 0 and {MAX_SLEEP_MS}, not {ms}"
            )
        until = time.monotonic() + ms / 1000
        while True:
            ctx.check()
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, SLEEP_SLICE, max(0.0, ctx.deadline - time.monotonic()) + 0.001))

    return sleep


def _now(ctx: JobContext) -> Callable[[], int]:
    def now() -> int:
        return int(time.time())

    return now


def _node_info(ctx: JobContext) -> Callable[[], dict]:
    def node_info() -> dict:
        info = ctx.events.node_info()
        if info is None:
            raise RhaiError("ErrorRuntime", "node_info: the agent has not published its facts yet")
        # The cached images this owner may use: shared ones and their own private ones.
        info["images"] = [
            {k: v for k, v in image.items() if k != "owner"}
            for image in info.get("images", [])
            if image.get("owner") in (None, ctx.owner)
        ]
        if ctx.workloads is not None:  # reservations change between the agent's reports
            used = ctx.workloads.used()
            info["used"] = used
            capacity = info.get("capacity", {})
            info["free"] = {key: capacity.get(key, 0) - used[key] for key in used}
        return info

    return node_info


IMPLEMENTATIONS: dict[str, SalFactory] = {
    "log": _log,
    "sleep": _sleep,
    "now": _now,
    "node_info": _node_info,
}


def _sal_name(function: str) -> str:
    for prefix, sal in _SAL_OF_PREFIX.items():
        if function.startswith(prefix):
            return sal
    return "matching"


def unavailable(function: CatalogFunction) -> Callable[..., Any]:
    """A native with the catalog's arity that always fails saying which SAL is missing."""
    message = (
        f"{function.name} is not available on this node yet (no {_sal_name(function.name)} SAL)"
    )

    def fail(*_args: Any) -> Any:
        raise RhaiError("ErrorRuntime", message, value=message)

    by_arity: dict[int, Callable[..., Any]] = {
        0: lambda: fail(),
        1: lambda a: fail(a),
        2: lambda a, b: fail(a, b),
        3: lambda a, b, c: fail(a, b, c),
    }
    return by_arity[len(function.params)]


def bind(
    engine: Any,
    ctx: JobContext,
    implementations: Mapping[str, SalFactory] | None = None,
) -> None:
    """Register every catalog function in `engine`, bound to this job (and the test functions
    on a test grid, contracts.catalog.TEST_FUNCTIONS)."""
    table = IMPLEMENTATIONS if implementations is None else implementations
    for name, function in callable_functions().items():
        factory = table.get(name)
        engine.register_fn(name, factory(ctx) if factory else unavailable(function))
    if "log" in table:
        # `print` and `debug` write to the job's log too, never to the runner's stdout.
        engine.on_print = engine.on_debug = table["log"](ctx)
