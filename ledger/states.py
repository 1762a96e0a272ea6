"""The node state machine as data (ARCHITECTURE §2 step 6).

Every status change goes through `Node.transition_to`, which checks this table; a test checks the
table names every status, so adding a status without deciding its transitions fails loudly.
"""

from ledger.choices import NodeStatus

NODE_TRANSITIONS: dict[str, frozenset[str]] = {
    NodeStatus.PENDING: frozenset(
        {NodeStatus.ONLINE, NodeStatus.DEGRADED, NodeStatus.DECOMMISSIONED}
    ),
    NodeStatus.ONLINE: frozenset(
        {NodeStatus.DEGRADED, NodeStatus.OFFLINE, NodeStatus.DECOMMISSIONED}
    ),
    NodeStatus.DEGRADED: frozenset(
        {NodeStatus.ONLINE, NodeStatus.OFFLINE, NodeStatus.DECOMMISSIONED}
    ),
    NodeStatus.OFFLINE: frozenset(
        {NodeStatus.ONLINE, NodeStatus.DEGRADED, NodeStatus.DECOMMISSIONED}
    ),
    NodeStatus.DECOMMISSIONED: frozenset(),
}

# Statuses of nodes an operator has let into the grid.
APPROVED_STATUSES = frozenset({NodeStatus.ONLINE, NodeStatus.DEGRADED, NodeStatus.OFFLINE})


class InvalidTransition(Exception):
    def __init__(self, current: str, new: str) -> None:
        allowed = ", ".join(sorted(NODE_TRANSITIONS[current])) or "none"
        super().__init__(f"a node cannot go from {current} to {new} (allowed: {allowed})")
        self.current = current
        self.new = new


def check_transition(current: str, new: str) -> None:
    if new not in NODE_TRANSITIONS[current]:
        raise InvalidTransition(current, new)
