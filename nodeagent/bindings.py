"""The SAL catalog bound into one job's Rhai engine, on behalf of the job's signer.

Every catalog name (in contracts/) is registered in every job's engine, so a script behaves the
same on every node: a name whose SAL this node lacks fails with a clear "not available" error
rather than "function not found". A SAL plugs in by adding a factory to `IMPLEMENTATIONS` (or
passing its own table to `bind`): the factory receives the `JobContext` -- job id, owner, signer
-- and returns the function the script calls, so an implementation can only ever act for the
owner of the job it was made for.

The built-ins here are the ones every node has: `log`, `sleep`, `now`, `node_info`.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from contracts.catalog import CATALOG, CatalogFunction
from nodeagent.workloads import WorkloadRegistry
from rhai.errors import RhaiError
from rhai.values import to_string

MAX_LOG_LINE = 4096
MAX_LOG_LINES = 10_000
MAX_SLEEP_MS = CATALOG["sleep"].param("ms").maximum
SLEEP_SLICE = 0.1
CANCEL_CHECK_EVERY = 0.2

# Which SAL provides a catalog name, for the "not available" message.
_SAL_OF_PREFIX = {"vm_": "hypervisor", "volume_": "storage", "herodb_": "herodb"}


class JobEvents(Protocol):
    """What the bindings need from the job store (nodeagent.jobstore.JobStore has it)."""

    def log(self, job_id: str, message: str) -> str | None: ...

    def cancel_requested(self, job_id: str) -> bool: ...

    def node_info(self) -> dict | None: ...


class JobStopped(Exception):
    """Raised inside natives when the job must end: cancelled or out of time."""


@dataclass
class JobContext:
    """One job's identity and its stop conditions, shared by all its bound functions."""

    job_id: str
    owner: int
    signer: str
    name: str
    timeout: float
    events: JobEvents
    workloads: WorkloadRegistry | None = None
    started: float = field(default_factory=time.monotonic)
    stop_reason: str | None = None  # "cancelled" or "timeout" once the job must end
    log_lines: int = 0
    _cancel_checked: float = 0.0

    @property
    def deadline(self) -> float:
        return self.started + self.timeout

    def check(self) -> None:
        """Raise ErrorTerminated if the job was cancelled or ran out of time."""
        now = time.monotonic()
        if self.stop_reason is None and now >= self.deadline:
            self.stop_reason = "timeout"
        if self.stop_reason is None and now - self._cancel_checked >= CANCEL_CHECK_EVERY:
            self._cancel_checked = now
            if self.events.cancel_requested(self.job_id):
                self.stop_reason = "cancelled"
        if self.stop_reason == "cancelled":
            raise RhaiError("ErrorTerminated", "Script terminated: the job was cancelled")
        if self.stop_reason == "timeout":
            raise RhaiError(
                "ErrorTerminated",
                f"Script terminated: the job ran longer than its {self.timeout:g}s limit",
            )


SalFactory = Callable[[JobContext], Callable[..., Any]]


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
    """Register every catalog function in `engine`, bound to this job."""
    table = IMPLEMENTATIONS if implementations is None else implementations
    for name, function in CATALOG.items():
        factory = table.get(name)
        engine.register_fn(name, factory(ctx) if factory else unavailable(function))
    if "log" in table:
        # `print` and `debug` write to the job's log too, never to the runner's stdout.
        engine.on_print = engine.on_debug = table["log"](ctx)
