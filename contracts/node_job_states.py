"""A job's states on the node, and the statuses of the events the node sends about it
(docs/deployments.md §4): `queued → running → succeeded | failed | cancelled`.

The node writes them into its Redis and onto the link; the coordinator reads the same words from
the link and maps them onto its own, longer, job state machine. One enum on both sides keeps a
renamed or mistyped state from passing as an unknown event. (The node's Lua scripts, which Redis
runs, spell them as literals.)
"""

import enum


class NodeJobState(enum.StrEnum):
    """A job's state in the node's `job:<id>` hash, also the status of the event reporting it."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Not a state: the status of the event saying a job runs again on the node (its runner or the
    # agent died mid-job); the job stays `running`.
    RESTARTED = "restarted"


#: States a job never leaves on the node; the node reports each once.
NODE_FINAL_STATES = frozenset({NodeJobState.SUCCEEDED, NodeJobState.FAILED, NodeJobState.CANCELLED})
