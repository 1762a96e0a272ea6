"""Where a job runs: the given node, or the farm's online node with the most room."""

from collections.abc import Mapping

from ledger.choices import NodeStatus
from ledger.models import Farm, Node

RESOURCE_KEYS = ("cru", "mru", "sru", "hru")


def free_capacity(node: Node) -> dict[str, int]:
    return {k: getattr(node, k) - getattr(node, f"used_{k}") for k in RESOURCE_KEYS}


def has_room(node: Node, resources: Mapping[str, int]) -> bool:
    free = free_capacity(node)
    return all(free[k] >= resources.get(k, 0) for k in RESOURCE_KEYS)


def pick_farm_node(
    farm: Farm, resources: Mapping[str, int], *, exclude: int | None = None
) -> Node | None:
    """The online node with enough free capacity and the most free memory, then CPU."""
    candidates = [
        node
        for node in Node.objects.filter(farm=farm, status=NodeStatus.ONLINE).exclude(pk=exclude)
        if has_room(node, resources)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda n: (free_capacity(n)["mru"], free_capacity(n)["cru"], -n.pk))
