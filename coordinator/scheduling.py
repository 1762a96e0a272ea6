"""Where a job runs: the given node, or the farm's online node with the most room.

A drained node (Node.drained_at) is never picked: its farmer wants it to take no new work.
"""

from collections.abc import Mapping

from coordinator import links
from ledger.choices import NodeStatus
from ledger.models import Farm, Node

RESOURCE_KEYS = ("cru", "mru", "sru", "hru")


def free_capacity(node: Node) -> dict[str, int]:
    return {k: getattr(node, k) - getattr(node, f"used_{k}") for k in RESOURCE_KEYS}


def has_room(node: Node, resources: Mapping[str, int]) -> bool:
    free = free_capacity(node)
    return all(free[k] >= resources.get(k, 0) for k in RESOURCE_KEYS)


def pick_farm_node(
    farm: Farm, resources: Mapping[str, int], *, exclude: int | None = None, live_only: bool = False
) -> Node | None:
    """The online, undrained node with enough free capacity: one whose link is live first, then
    the most free memory, then CPU. A node whose link is down is taken only when no live one fits
    (the job then waits for it), and never with `live_only`."""
    candidates = [
        node
        for node in Node.objects.filter(
            farm=farm, status=NodeStatus.ONLINE, drained_at__isnull=True
        ).exclude(pk=exclude)
        if has_room(node, resources)
    ]
    live = links.live_node_ids(node.pk for node in candidates)
    if live_only:
        candidates = [node for node in candidates if node.pk in live]
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda n: (n.pk in live, free_capacity(n)["mru"], free_capacity(n)["cru"], -n.pk),
    )
