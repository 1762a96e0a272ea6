"""Which node links are alive, as the database knows it (docs/deployments.md §8).

Placement and deadlines ask here rather than the ledger's uptime status: uptime reports come every
minute and a node is `offline` only after three are missed, while a link's pings tell within
seconds that a node stopped answering. Only the ASGI process holding a link writes its row.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, Lookup, Q
from django.utils import timezone

from coordinator.models import NodeLink
from ledger.models import Node
from ledger.states import APPROVED_STATUSES

# Links per batched write (refresh, links_lost): within every database's limit on parameters
# (SQLite's 32,766).
LINKS_PER_WRITE = 5000


class AnyOf(Lookup):
    """`field = ANY(%s)`: the values as ONE array parameter (PostgreSQL). The link loop names
    every link of its process each tick; as an IN list that was one placeholder per link for
    Django to compile and psycopg to rewrite, and most of an idle worker's CPU at 2,000 links
    (py-spy --gil)."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*params, list(self.rhs))


CharField.register_lookup(AnyOf)


def session_q(sessions: list[str], prefix: str = "") -> Q:
    """Rows (NodeLinks with prefix "", Jobs with "node__link__") of these link sessions. A
    session is a random 128-bit token naming one connection: it matches its own link's row only,
    never a newer link of the same node held by another process."""
    lookup = "any_of" if connection.vendor == "postgresql" else "in"
    return Q(**{f"{prefix}session__{lookup}": sessions})


@contextmanager
def _unsynced() -> Iterator[None]:
    """A transaction whose commit does not wait for the disk (PostgreSQL `synchronous_commit
    off`): link rows are liveness, rewritten every ping interval and expiring by themselves, so
    a crash that loses the last fraction of a second of them loses nothing. Each of a storm's
    thousands of link writes waited for its own WAL flush on the loaded disk before."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def _stale_before():
    """Rows not refreshed since then belong to a process that died holding the link."""
    window = settings.ZOS_LINK_PING_INTERVAL + settings.ZOS_LINK_PING_TIMEOUT
    return timezone.now() - timedelta(seconds=window)


def live_q(prefix: str = "") -> Q:
    """A filter for rows (Nodes with prefix "", Jobs with "node__") whose node's link is live."""
    return Q(
        **{
            f"{prefix}link__lost_at__isnull": True,
            f"{prefix}link__seen_at__gte": _stale_before(),
        }
    )


def link_of_node_is_live(node) -> bool:
    """Whether a node's link is live, from the link read with the node
    (`select_related("link")`): one round trip fewer than `is_live` after it."""
    try:
        link = node.link
    except NodeLink.DoesNotExist:
        return False
    return link.lost_at is None and link.seen_at >= _stale_before()


def live_node_ids(node_ids: Iterable[int]) -> set[int]:
    return set(
        NodeLink.objects.filter(
            node_id__in=list(node_ids), lost_at__isnull=True, seen_at__gte=_stale_before()
        ).values_list("node_id", flat=True)
    )


def is_live(node_id: int) -> bool:
    return bool(live_node_ids([node_id]))


def link_up(node_id: int, session: str) -> None:
    """Record the node's link up under `session`."""
    links_up({node_id: session})


def links_up(sessions: dict[int, str]) -> None:
    """Record these links (node id → session) up: one statement (an upsert) for all, as every
    node of a dropped fleet says hello at once and each handshake waits for it."""
    now = timezone.now()
    with _unsynced():
        NodeLink.objects.bulk_create(
            [
                NodeLink(node_id=node_id, session=session, connected_at=now, seen_at=now)
                for node_id, session in sessions.items()
            ],
            update_conflicts=True,
            unique_fields=["node"],
            update_fields=["session", "connected_at", "seen_at", "lost_at", "lost_reason"],
        )


def link_approved_node(public_key: str, session: str) -> Node | None:
    """At a link's hello: the approved node with this key, its link recorded up under
    `session` — or None (unknown, pending or decommissioned), nothing recorded."""
    return link_approved_nodes([(public_key, session)]).get(public_key)


def link_approved_nodes(hellos: list[tuple[str, str]]) -> dict[str, Node]:
    """`link_approved_node` for many hellos (public key, session) at once: the approved nodes
    by key, their links recorded up, in two statements whatever their number. A key twice in
    the batch (a node that linked again within it) keeps its last session."""
    keys = {key for key, _ in hellos}
    nodes = {
        node.public_key: node
        for node in Node.objects.filter(public_key__in=keys, status__in=APPROVED_STATUSES)
    }
    sessions = {nodes[key].pk: session for key, session in hellos if key in nodes}
    if sessions:
        links_up(sessions)
    return nodes


def link_lost(node_id: int, session: str, reason: str) -> bool:
    """Mark the link down, unless the node has already reconnected (another session holds it)."""
    return bool(
        NodeLink.objects.filter(node_id=node_id, session=session, lost_at__isnull=True).update(
            lost_at=timezone.now(), lost_reason=reason[:200]
        )
    )


def links_lost(lost: list[tuple[int, str, str]]) -> None:
    """`link_lost` for many links (node id, session, reason) at once: one write per reason (a
    storm's links all close for the same one)."""
    now = timezone.now()
    by_reason: dict[str, list[str]] = {}
    for _, session, reason in lost:
        by_reason.setdefault(reason[:200], []).append(session)
    with _unsynced():
        for reason, sessions in by_reason.items():
            for start in range(0, len(sessions), LINKS_PER_WRITE):
                chunk = sessions[start : start + LINKS_PER_WRITE]
                NodeLink.objects.filter(session_q(chunk), lost_at__isnull=True).update(
                    lost_at=now, lost_reason=reason
                )


def refresh(sessions: dict[int, str]) -> None:
    """Say again that these links (node id → session) still answer: one write (per 5,000 links
    on SQLite)."""
    tokens = list(sessions.values())
    now = timezone.now()
    with _unsynced():
        for start in range(0, len(tokens), LINKS_PER_WRITE):
            chunk = tokens[start : start + LINKS_PER_WRITE]
            NodeLink.objects.filter(session_q(chunk), lost_at__isnull=True).update(seen_at=now)
