"""Gateway nodes and the host names reserved on them (ledger.models.GatewayHost).

An operator makes a node a gateway by giving it a domain (admin); from then on its uptime
replies tell it so (`gateway_settings`), and users may reserve names on it. Reservations are
made by the gateway node itself, in a signed node request, for the owner of the job that asks
(coordinator/gateways.py checks the rest): the node has already verified the owner's signed
script, and the ledger keeps the one grid-wide table, so two gateways, or two runners of one,
can never hand the same host to two users.

Why the node asks, rather than the coordinator reserving at submit: a script computes its names
at run time (`gateway_name_create(#{name: `blog-${n}`, ...})`), so only the node running it
knows them. What a rogue gateway could do with this is bounded: it reserves only on itself,
only for users whose jobs were sent to it, and it serves its own domain's traffic anyway.
"""

from django.db import IntegrityError, transaction

from ledger.choices import AuditKind, GatewayHostKind, NodeStatus
from ledger.errors import LedgerError
from ledger.models import AuditEntry, GatewayHost, Node


def gateway_settings(node: Node) -> dict | None:
    """What a node must know to act as a gateway (in its uptime reply), None when it is not."""
    if not node.is_gateway:
        return None
    return {
        "domain": node.gateway_domain,
        "addresses": list(node.gateway_addresses),
        "any_backend": node.gateway_any_backend,
    }


def gateway_nodes():
    """The grid's gateways, for users choosing where to put a name."""
    return Node.objects.exclude(gateway_domain="").exclude(status=NodeStatus.DECOMMISSIONED)


def _require_gateway(node: Node) -> None:
    if not node.is_gateway:
        raise LedgerError(
            "not_a_gateway",
            f"node {node.pk} is not a gateway: an operator must give it a domain first",
            http_status=403,
        )


def check_host(node: Node, host: str, kind: str) -> None:
    """A name must be exactly one label under this gateway's domain; an FQDN must be under no
    gateway's domain (such names are reserved as names, first come first served)."""
    domain = node.gateway_domain
    if kind == GatewayHostKind.NAME:
        label, _, rest = host.partition(".")
        if rest != domain or not label:
            raise LedgerError(
                "host_invalid", f"a name on node {node.pk} must be <name>.{domain}, not {host}"
            )
        return
    for other in gateway_nodes().values_list("gateway_domain", flat=True):
        if host == other or host.endswith("." + other):
            raise LedgerError(
                "host_invalid",
                f"{host} is under the gateway domain {other}: reserve it as a name there "
                "(gateway_name_create) rather than as an fqdn",
            )


def reserve_host(*, node: Node, owner_id: int, host: str, kind: str) -> tuple[GatewayHost, bool]:
    """Reserve `host` on gateway `node` for the user `owner_id`; (reservation, created).

    The same owner asking again on the same node gets the same reservation (a re-run of the
    script); anyone else gets `host_taken` and never learns who holds it.
    """
    _require_gateway(node)
    check_host(node, host, kind)
    try:
        with transaction.atomic():
            reservation, created = GatewayHost.objects.get_or_create(
                host=host, defaults={"kind": kind, "node": node, "owner_id": owner_id}
            )
    except IntegrityError:  # another request made it between the lookup and the insert
        reservation, created = GatewayHost.objects.get(host=host), False
    if reservation.owner_id != owner_id:
        raise LedgerError(
            "host_taken", f"{host} is already taken; choose another name", http_status=409
        )
    if reservation.node_id != node.pk:
        raise LedgerError(
            "host_on_other_gateway",
            f"you have {host} on node {reservation.node_id}: delete it there first",
            http_status=409,
        )
    if created:
        _audit(node, f"{host} reserved for user {owner_id}", host, owner_id)
    return reservation, created


def release_host(*, node: Node, owner_id: int, host: str) -> bool:
    """Give `host` up; True when a reservation was removed. Releasing what this owner does not
    hold on this node is a no-op (a re-run of a delete), never someone else's loss."""
    removed, _ = GatewayHost.objects.filter(host=host, node=node, owner_id=owner_id).delete()
    if removed:
        _audit(node, f"{host} released by user {owner_id}", host, owner_id)
    return bool(removed)


def _audit(node: Node, message: str, host: str, owner_id: int) -> None:
    AuditEntry.objects.create(
        kind=AuditKind.GATEWAY_HOST,
        actor=f"node:{node.pk}",
        node=node,
        farm_id=node.farm_id,
        message=message,
        data={"host": host, "owner": owner_id},
    )
