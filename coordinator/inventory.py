"""The coordinator's copy of each node's workloads, replaced whole by every inventory report.

A node sends its full inventory when its link comes up and whenever a workload changes, so
the copy here is made to match the report exactly: a workload the node no longer lists is gone.
Entries are validated like any other input; a malformed one is logged and skipped, never fatal.
A node is trusted only for the owners whose jobs the coordinator assigned to it: an entry for
anyone else is dropped and logged, so a node cannot plant workloads in a stranger's list.
"""

import logging

from django.db import transaction
from rest_framework import serializers

from coordinator.models import Job, Workload

log = logging.getLogger(__name__)

KINDS = ("vm", "volume", "herodb", "gateway")
MAX_WORKLOADS_PER_NODE = 10_000


class InventoryItemSerializer(serializers.Serializer):
    owner = serializers.IntegerField(min_value=1)
    kind = serializers.ChoiceField(choices=KINDS)
    name = serializers.CharField(max_length=63)
    state = serializers.CharField(max_length=16)
    reserved = serializers.DictField(child=serializers.IntegerField(min_value=0), required=False)


def record_inventory(node_id: int, workloads: object) -> int:
    """Make the node's workloads match its report; return how many it has now."""
    if not isinstance(workloads, list) or len(workloads) > MAX_WORKLOADS_PER_NODE:
        log.warning("node %s sent an inventory that is not a list of workloads", node_id)
        return Workload.objects.filter(node_id=node_id).count()
    owners = set(Job.objects.filter(node_id=node_id).values_list("deployment__owner_id", flat=True))
    rows: dict[tuple[int, str, str], dict] = {}
    for item in workloads:
        serializer = InventoryItemSerializer(data=item)
        if not isinstance(item, dict) or not serializer.is_valid():
            log.warning("node %s: skipped inventory entry %.200r", node_id, item)
            continue
        data = serializer.validated_data
        if data["owner"] not in owners:
            log.warning(
                "node %s: dropped inventory entry %s/%s of user %s, who never deployed to it",
                node_id,
                data["kind"],
                data["name"],
                data["owner"],
            )
            continue
        details = {k: v for k, v in item.items() if k not in InventoryItemSerializer().fields}
        rows[(data["owner"], data["kind"], data["name"])] = {
            "state": data["state"],
            "reserved": data.get("reserved", {}),
            "details": details,
        }
    with transaction.atomic():
        current = {
            (w.owner_id, w.kind, w.name): w
            for w in Workload.objects.select_for_update().filter(node_id=node_id)
        }
        gone = [w.pk for key, w in current.items() if key not in rows]
        Workload.objects.filter(pk__in=gone).delete()
        for (owner, kind, name), fields in rows.items():
            Workload.objects.update_or_create(
                node_id=node_id, owner_id=owner, kind=kind, name=name, defaults=fields
            )
    return len(rows)
