"""A gateway node's requests for its users' names: reserve (with the backends checked) and release.

The gateway node runs a user's `gateway_name_create` / `gateway_fqdn_create` and asks here, in a
signed node request, before it configures its proxy. Two checks need the whole grid, so they are
made centrally rather than on the node:

- the host is free (ledger/gateways.py keeps the grid-wide reservations);
- every backend is the address of a VM the same user owns, on any node, as the nodes'
  inventories report them (coordinator/inventory.py): its overlay address, or on a node
  without Mycelium its node-local one -- unless the operator lets this gateway
  forward to any overlay address (`Node.gateway_any_backend`).

A gateway acts only for users whose jobs the coordinator sent to it (as inventories are trusted
only for them), so a node cannot reserve names in the name of strangers.
"""

import ipaddress

from coordinator.models import Job, Workload
from grid.errors import ServiceError
from ledger import gateways
from ledger.models import GatewayHost, Node

OVERLAY = ipaddress.IPv6Network("400::/7")


def _require_owner_job(node: Node, owner_id: int) -> None:
    if not Job.objects.filter(node=node, deployment__owner_id=owner_id).exists():
        raise ServiceError(
            "not_your_user",
            f"node {node.pk} was never sent a job of user {owner_id}",
            http_status=403,
        )


def owned_vm_addresses(owner_id: int) -> set[ipaddress.IPv6Address]:
    """The overlay addresses of the user's VMs on every node, as the nodes last reported."""
    found = set()
    details = Workload.objects.filter(owner_id=owner_id, kind="vm").values_list(
        "details", flat=True
    )
    for detail in details:
        try:
            found.add(ipaddress.IPv6Address(str(detail.get("mycelium_ip", ""))))
        except ValueError:
            continue
    return found


def check_backends(node: Node, owner_id: int, backends: list[str]) -> None:
    """Each backend must be `[overlay address]:port` of one of the user's VMs (or, on a gateway
    that allows any, any overlay address); the error lists the ones that are not."""
    addresses = {}
    owned = owned_vm_addresses(owner_id)
    for backend in backends:
        host, _, _port = backend.rpartition(":")
        try:
            address = ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            address = None
        # A VM of the user's as its node reports it is a backend even off the overlay: a node
        # without Mycelium (`--mycelium local`, the grid in a box) gives its VMs private
        # addresses (fd00::/8) that its own gateway reaches. Any other address must be an
        # overlay one, so `gateway_any_backend` never opens a gateway's own private networks.
        if address is None or (address not in OVERLAY and address not in owned):
            raise ServiceError(
                "backend_invalid",
                f"backend {backend} is not an overlay address: use a VM's mycelium_ip "
                "(in 400::/7) and a port, [address]:port",
                backends=[backend],
            )
        addresses[backend] = address
    if node.gateway_any_backend:
        return
    foreign = sorted(b for b, a in addresses.items() if a not in owned)
    if foreign:
        raise ServiceError(
            "backend_not_owned",
            f"{', '.join(foreign)}: not the address of a VM of yours; a gateway forwards only "
            "to your own VMs' overlay addresses",
            http_status=403,
            backends=foreign,
        )


def claim_host(
    *, node: Node, owner_id: int, host: str, kind: str, backends: list[str]
) -> tuple[GatewayHost, bool]:
    """Check the backends and reserve the host for the user; (reservation, created)."""
    _require_owner_job(node, owner_id)
    check_backends(node, owner_id, backends)
    return gateways.reserve_host(node=node, owner_id=owner_id, host=host, kind=kind)


def release_host(*, node: Node, owner_id: int, host: str) -> bool:
    _require_owner_job(node, owner_id)
    return gateways.release_host(node=node, owner_id=owner_id, host=host)
