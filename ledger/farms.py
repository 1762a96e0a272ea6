"""What a farmer does with their own farm: create it, hand out and revoke enrollment tokens,
approve, drain and decommission its nodes, choose its agent release.

Any signed-in user may be a farmer. Every function here that takes a farm id or a node id looks
it up among the user's own farms (staff: all farms), and answers another farmer's id exactly as a
missing one (404), so ids cannot be probed. The API (ledger/views.py) and the dashboard
(dashboard/farm_views.py) both call these, so the two offer the same actions with the same
refusals. Each change writes its audit entry in the same transaction.

Draining is not a node state: a drained node keeps going through pending → online ⇄ degraded →
offline as its reports say, it only stops taking new work (coordinator/scheduling.py) and its
undelivered farm jobs move to other nodes (coordinator.services.move_jobs_off_drained_node).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from coordinator.services import move_jobs_off_drained_node
from ledger import releases
from ledger.choices import AuditKind, NodeStatus
from ledger.errors import LedgerError
from ledger.models import AuditEntry, EnrollmentToken, Farm, FarmBootToken, Node, UptimeReport
from ledger.services import approve_node, decommission_node

FARM_NAME_MAX = 64
# Statuses a node can be drained in: approved ones. A pending node takes no work anyway, and a
# decommissioned one never will again.
DRAINABLE = frozenset({NodeStatus.ONLINE, NodeStatus.DEGRADED, NodeStatus.OFFLINE})


def _actor(user) -> str:
    return f"user:{user.username}"


def _audit(kind: str, message: str, *, user, farm: Farm, node: Node | None = None, **data):
    AuditEntry.objects.create(
        kind=kind, actor=_actor(user), farm=farm, node=node, message=message, data=data
    )


def farms_of(user) -> QuerySet[Farm]:
    """The farms `user` may manage: their own, or every farm for staff."""
    farms = Farm.objects.select_related("owner")
    return farms if user.is_staff else farms.filter(owner=user)


def get_farm(user, farm_id: int | str) -> Farm:
    farm = farms_of(user).filter(pk=farm_id).first() if str(farm_id).isdigit() else None
    if farm is None:
        raise LedgerError("unknown_farm", f"you have no farm {farm_id}", http_status=404)
    return farm


def get_node(user, node_id: int | str) -> Node:
    """A node of one of the user's farms, by id or public key."""
    lookup = str(node_id).lower()
    field = "pk" if lookup.isdigit() else "public_key"
    node = (
        Node.objects.select_related("farm")
        .filter(farm__in=farms_of(user), **{field: lookup})
        .first()
    )
    if node is None:
        raise LedgerError("unknown_node", f"you have no node {node_id}", http_status=404)
    return node


def create_farm(*, owner, name: str) -> Farm:
    """A new farm owned by `owner`; names are unique across the grid (they appear in listings)."""
    name = name.strip()
    if not name or len(name) > FARM_NAME_MAX:
        raise LedgerError(
            "invalid_name", f"a farm's name is 1 to {FARM_NAME_MAX} characters", field="name"
        )
    try:
        with transaction.atomic():
            farm = Farm.objects.create(name=name, owner=owner)
            _audit(AuditKind.FARM_CREATED, f"farm {farm} created", user=owner, farm=farm)
    except IntegrityError:
        raise LedgerError(
            "farm_name_taken",
            f"a farm named {name!r} exists; choose another name",
            http_status=409,
            field="name",
        ) from None
    return farm


def enrollment_tokens(farm: Farm) -> QuerySet[EnrollmentToken]:
    """The tokens the farmer made; the boot token is left out (the boot link governs it)."""
    boot_tokens = FarmBootToken.objects.values("token_id")
    return farm.enrollment_tokens.exclude(pk__in=boot_tokens)


def revoke_enrollment_token(*, user, farm: Farm, token_id: int | str) -> EnrollmentToken:
    """Stop a token approving nodes; nodes it already approved stay. Revoking twice is a no-op."""
    token = enrollment_tokens(farm).filter(pk=token_id).first() if str(token_id).isdigit() else None
    if token is None:
        raise LedgerError(
            "unknown_token", f"farm {farm.pk} has no enrollment token {token_id}", http_status=404
        )
    if token.revoked_at is None:
        with transaction.atomic():
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            _audit(
                AuditKind.TOKEN_REVOKED,
                f"enrollment token {token.prefix}… of farm {farm} revoked",
                user=user,
                farm=farm,
                token=token.prefix,
            )
    return token


def approve(*, user, node: Node) -> Node:
    return approve_node(node=node, actor=_actor(user))


def decommission(*, user, node: Node) -> Node:
    if node.status == NodeStatus.DECOMMISSIONED:
        raise LedgerError(
            "node_decommissioned", f"node {node.pk} is already decommissioned", http_status=409
        )
    return decommission_node(node=node, actor=_actor(user), reason=f"decommissioned by {user}")


def drain(*, user, node: Node) -> Node:
    """No new deployments for the node; its farm jobs not yet sent to it go elsewhere."""
    with transaction.atomic():
        node = Node.objects.select_for_update().select_related("farm").get(pk=node.pk)
        if node.status not in DRAINABLE:
            raise LedgerError(
                "not_drainable",
                f"node {node.pk} is {node.status}; only an approved node (online, degraded or "
                "offline) can be drained"
                + (": approve it first" if node.status == NodeStatus.PENDING else ""),
                http_status=409,
            )
        if node.drained:
            raise LedgerError(
                "already_drained", f"node {node.pk} is already drained", http_status=409
            )
        node.drained_at = timezone.now()
        node.save(update_fields=["drained_at", "updated_at"])
        moved = move_jobs_off_drained_node(node.pk)
        _audit(
            AuditKind.NODE_DRAINED,
            f"node {node.pk} drained; {moved} waiting farm job(s) moved to other nodes",
            user=user,
            farm=node.farm,
            node=node,
            moved=moved,
        )
    return node


def undrain(*, user, node: Node) -> Node:
    """The node takes new deployments again."""
    with transaction.atomic():
        node = Node.objects.select_for_update().select_related("farm").get(pk=node.pk)
        if not node.drained:
            raise LedgerError("not_drained", f"node {node.pk} is not drained", http_status=409)
        node.drained_at = None
        node.save(update_fields=["drained_at", "updated_at"])
        _audit(
            AuditKind.NODE_UNDRAINED,
            f"node {node.pk} undrained",
            user=user,
            farm=node.farm,
            node=node,
        )
    return node


def set_release(*, user, farm: Farm, version: str) -> Farm:
    """The agent version the farm's nodes should run (the uptime reply tells them); "" leaves
    each node on what it runs."""
    with transaction.atomic():
        releases.set_desired_version(farms=Farm.objects.filter(pk=farm.pk), version=version)
        farm.refresh_from_db(fields=["desired_agent_version"])
        _audit(
            AuditKind.RELEASE_SET,
            f"farm {farm} set to agent release {version or '(none: nodes keep theirs)'}",
            user=user,
            farm=farm,
            version=version,
        )
    return farm


@dataclass(frozen=True)
class UptimeHour:
    """One hour of a node's uptime chart: the share of the reports expected while the node was
    registered that came (None: it was not registered yet), and how many carried health flags."""

    start: datetime
    share: float | None
    degraded: int


def uptime_hours(farm: Farm, *, hours: int = 24, now: datetime | None = None) -> dict:
    """{node id: [UptimeHour, oldest first]} for the farm's nodes over the last `hours` hours.

    Counted in the database, one query for the whole farm. A node reports every
    ZOS_UPTIME_INTERVAL seconds, so its reports over the number expected in the part of the hour
    it existed (up to now, for the current hour) is its uptime then: a node that joined a
    minute ago and reported since is at 100 %, not at 2 %.
    """
    now = now or timezone.now()
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    interval = settings.ZOS_UPTIME_INTERVAL
    rows = (
        UptimeReport.objects.filter(node__farm=farm, received_at__gte=first)
        .annotate(hour=TruncHour("received_at"))
        .values("node_id", "hour")
        .annotate(reports=Count("id"), degraded=Count("id", filter=~Q(health=[])))
    )
    counted = {(r["node_id"], r["hour"]): r for r in rows}
    starts = [first + timedelta(hours=i) for i in range(hours)]
    chart = {}
    for node_id, registered in farm.nodes.values_list("pk", "registered_at"):
        bars = []
        for start in starts:
            row = counted.get((node_id, start), {})
            end = min(start + timedelta(hours=1), now)
            existed = (end - max(start, registered)).total_seconds()
            reports = row.get("reports", 0)
            share = None
            if existed > 0 or reports:
                share = min(1.0, reports / max(1.0, existed / interval))
            bars.append(UptimeHour(start=start, share=share, degraded=row.get("degraded", 0)))
        chart[node_id] = bars
    return chart
