"""The link loop's one write that says every link of a process still answers (links.refresh)."""

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from coordinator import links
from coordinator.models import NodeLink
from ledger.choices import NodeStatus
from ledger.models import Node
from tests.conftest import make_farm
from tests.coordinator.conftest import make_online_node


def _age(*node_ids: int) -> None:
    """Links last heard from longer ago than the liveness window: dead unless refreshed."""
    NodeLink.objects.filter(node_id__in=node_ids).update(
        seen_at=timezone.now() - timedelta(hours=1)
    )


def _statements(queries: CaptureQueriesContext) -> list[str]:
    """The statements run, without the savepoints a test's transaction adds around atomic() and
    PostgreSQL's `SET LOCAL synchronous_commit` (link rows are written without a WAL flush)."""
    return [
        q["sql"].split()[0].upper()
        for q in queries.captured_queries
        if "SAVEPOINT" not in q["sql"].upper() and not q["sql"].upper().startswith("SET ")
    ]


def test_refresh_keeps_every_named_link_live_with_one_write(db):
    farm = make_farm("farm-a")
    nodes = [make_online_node(farm, linked=False) for _ in range(3)]
    for i, node in enumerate(nodes):
        links.link_up(node.pk, f"session-{i}")
    _age(*(n.pk for n in nodes))
    assert links.live_node_ids(n.pk for n in nodes) == set()
    with CaptureQueriesContext(connection) as queries:
        links.refresh({n.pk: f"session-{i}" for i, n in enumerate(nodes)})
    assert _statements(queries) == ["UPDATE"]
    assert links.live_node_ids(n.pk for n in nodes) == {n.pk for n in nodes}


def test_refresh_of_an_old_session_does_not_revive_a_node_that_linked_elsewhere(db):
    # The node dropped its link on this process and linked again through another process,
    # whose link then died: this process's tick still names the old session.
    farm = make_farm("farm-a")
    node = make_online_node(farm, linked=False)
    links.link_up(node.pk, "old-session")
    links.link_up(node.pk, "new-session")
    _age(node.pk)
    links.refresh({node.pk: "old-session"})
    assert not links.is_live(node.pk)


def test_refresh_leaves_a_link_marked_lost_down(db):
    farm = make_farm("farm-a")
    node = make_online_node(farm, linked=False)
    links.link_up(node.pk, "session")
    links.link_lost(node.pk, "session", "closed (1006)")
    links.refresh({node.pk: "session"})
    assert not links.is_live(node.pk)


def test_a_node_that_links_again_is_live_under_its_new_session(db):
    farm = make_farm("farm-a")
    node = make_online_node(farm, linked=False)
    links.link_up(node.pk, "first")
    links.link_lost(node.pk, "first", "closed (1006)")
    links.link_up(node.pk, "second")
    link = NodeLink.objects.get(node_id=node.pk)
    assert (link.session, link.lost_at, link.lost_reason) == ("second", None, "")
    assert links.is_live(node.pk)
    # The old session's late close does not take the new link down.
    assert not links.link_lost(node.pk, "first", "closed (1000)")
    assert links.is_live(node.pk)


def test_only_an_approved_node_gets_its_link_recorded_at_hello(db):
    farm = make_farm("farm-a")
    approved = make_online_node(farm, linked=False)
    pending = make_online_node(farm, linked=False)
    Node.objects.filter(pk=pending.pk).update(status=NodeStatus.PENDING)
    with CaptureQueriesContext(connection) as queries:
        assert links.link_approved_node(approved.public_key, "s1") == approved
    assert _statements(queries) == ["SELECT", "INSERT"]  # the node, and the link's upsert
    assert links.link_approved_node(pending.public_key, "s2") is None
    assert links.link_approved_node("00" * 32, "s3") is None
    assert links.is_live(approved.pk)
    assert not NodeLink.objects.filter(node_id=pending.pk).exists()


def test_links_lost_marks_many_links_down_and_spares_a_newer_session(db):
    farm = make_farm("farm-a")
    nodes = [make_online_node(farm, linked=False) for _ in range(4)]
    for i, node in enumerate(nodes):
        links.link_up(node.pk, f"s{i}")
    links.link_up(nodes[3].pk, "s3-again")  # relinked elsewhere before its old link's close
    links.links_lost(
        [
            (nodes[0].pk, "s0", "closed (1006)"),
            (nodes[1].pk, "s1", "closed (1006)"),
            (nodes[2].pk, "s2", "no beat for 26s"),
            (nodes[3].pk, "s3", "closed (1006)"),
        ]
    )
    assert links.live_node_ids(n.pk for n in nodes) == {nodes[3].pk}
    reasons = dict(NodeLink.objects.values_list("node_id", "lost_reason"))
    assert [reasons[n.pk] for n in nodes] == [
        "closed (1006)",
        "closed (1006)",
        "no beat for 26s",
        "",
    ]
