"""The job a catalog function acts for, and when it must stop.

Every function bound into a job's engine closes over one `JobContext`: the owner scopes every
workload name, the signer is who asked, and `check()` is the one place that decides a job must
end (cancelled, or out of time) -- natives call it, and so does the engine's progress hook.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from nodeagent.functions.registry import WorkloadRegistry
from rhai import RhaiError

# How often `check()` asks Redis whether the job was cancelled (the clock it reads every time).
CANCEL_CHECK_EVERY = 0.2


class JobEvents(Protocol):
    """What the bindings need from the job store (nodeagent.jobstore.JobStore has it)."""

    def log(self, job_id: str, message: str) -> str | None: ...

    def cancel_requested(self, job_id: str) -> bool: ...

    def node_info(self) -> dict | None: ...


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
