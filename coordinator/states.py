"""The job state machine as data (ARCHITECTURE §3).

Nodes report states over an unreliable link, so a job may jump ahead (a `succeeded` event can
arrive before `accepted`); it never moves back, and final states are final.

`cancelling` is the owner's cancel of a job a node may hold: the cancel is stored and sent until
the node acknowledges it, and the node's own final word decides the end — `cancelled` when it
stopped the job, `succeeded` or `failed` when the job ended before the node heard of the cancel.
A node that never answers leaves the job `cancelled` when its cancel deadline passes.
"""

from coordinator.choices import JobState

FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
# States in which a node holds, or should hold, the job.
ON_NODE_STATES = frozenset({JobState.DISPATCHED, JobState.ACCEPTED, JobState.RUNNING})
ACTIVE_STATES = frozenset({JobState.QUEUED, *ON_NODE_STATES})
# Waiting for the node to deliver or to run: what a dead link holds up.
AWAITING_DELIVERY = frozenset({JobState.QUEUED, JobState.DISPATCHED})

JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    JobState.QUEUED: frozenset(
        {
            JobState.DISPATCHED,
            JobState.RETRYING,
            JobState.FAILED,
            JobState.CANCELLING,
            JobState.CANCELLED,
        }
    ),
    JobState.DISPATCHED: frozenset(
        {
            JobState.ACCEPTED,
            JobState.RUNNING,
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.RETRYING,
            JobState.CANCELLING,
            JobState.CANCELLED,
        }
    ),
    JobState.ACCEPTED: frozenset(
        {
            JobState.RUNNING,
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.RETRYING,
            JobState.CANCELLING,
            JobState.CANCELLED,
        }
    ),
    JobState.RUNNING: frozenset(
        {
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.RETRYING,
            JobState.CANCELLING,
            JobState.CANCELLED,
        }
    ),
    JobState.RETRYING: frozenset(
        {JobState.QUEUED, JobState.FAILED, JobState.CANCELLING, JobState.CANCELLED}
    ),
    JobState.CANCELLING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class InvalidJobTransition(Exception):
    def __init__(self, current: str, new: str) -> None:
        allowed = ", ".join(sorted(JOB_TRANSITIONS[current])) or "none"
        super().__init__(f"a job cannot go from {current} to {new} (allowed: {allowed})")


def can_transition(current: str, new: str) -> bool:
    return new in JOB_TRANSITIONS[current]
