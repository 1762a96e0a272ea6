import pytest

from ledger.choices import AuditKind, NodeStatus
from ledger.models import AuditEntry
from ledger.states import NODE_TRANSITIONS, InvalidTransition
from tests.conftest import NodeClient


def test_transition_table_names_every_status_and_only_known_targets():
    statuses = set(NodeStatus.values)
    assert set(NODE_TRANSITIONS) == statuses
    for targets in NODE_TRANSITIONS.values():
        assert targets <= statuses


def test_decommissioned_is_final_and_reachable_from_every_other_status():
    assert NODE_TRANSITIONS[NodeStatus.DECOMMISSIONED] == frozenset()
    for status in set(NodeStatus.values) - {NodeStatus.DECOMMISSIONED}:
        assert NodeStatus.DECOMMISSIONED in NODE_TRANSITIONS[status]


def test_pending_node_cannot_go_offline_and_the_error_says_what_is_allowed(node: NodeClient, farm):
    from ledger.models import Node

    node.register(farm)
    row = Node.objects.get()
    with pytest.raises(InvalidTransition, match=r"pending to offline.*allowed: .*online"):
        row.transition_to(NodeStatus.OFFLINE, reason="test")
    assert Node.objects.get().status == NodeStatus.PENDING


def test_every_transition_is_logged_with_reason(node: NodeClient, farm):
    from ledger.models import Node

    node.register(farm)
    row = Node.objects.get()
    row.transition_to(NodeStatus.ONLINE, reason="operator said so", actor="user:op")
    row.save()
    entry = AuditEntry.objects.get(kind=AuditKind.NODE_TRANSITION)
    assert entry.node == row
    assert entry.actor == "user:op"
    assert entry.data == {"from": "pending", "to": "online", "reason": "operator said so"}
