"""Which node links are alive, as the database knows it (docs/deployments.md §8).

Placement and deadlines ask here rather than the ledger's uptime status: uptime reports come every
minute and a node is `offline` only after three are missed, while a link's pings tell within
seconds that a node stopped answering. Only the ASGI process holding a link writes its row.
"""

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from coordinator.models import NodeLink


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
    now = timezone.now()
    NodeLink.objects.update_or_create(
        node_id=node_id,
        defaults={
            "session": session,
            "connected_at": now,
            "seen_at": now,
            "lost_at": None,
            "lost_reason": "",
        },
    )


def link_lost(node_id: int, session: str, reason: str) -> bool:
    """Mark the link down, unless the node has already reconnected (another session holds it)."""
    return bool(
        NodeLink.objects.filter(node_id=node_id, session=session, lost_at__isnull=True).update(
            lost_at=timezone.now(), lost_reason=reason[:200]
        )
    )


def refresh(sessions: dict[int, str]) -> None:
    """Say again that these links (node id → session) still answer: one write for all of them."""
    if not sessions:
        return
    match = Q()
    for node_id, session in sessions.items():
        match |= Q(node_id=node_id, session=session)
    NodeLink.objects.filter(match, lost_at__isnull=True).update(seen_at=timezone.now())
