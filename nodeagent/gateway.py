"""The node as a gateway: what the ledger says it serves, and the proxy that serves it.

An operator makes a node a gateway in the ledger (a domain, public addresses); the node learns
it from every uptime reply and publishes it in its Redis (`zos:gateway`), where runners read it
when a script asks for a gateway name. The proxy is one Caddy (sal.caddy) in the workload
namespace, next to the overlay bridge it forwards to; its routes are always rebuilt from the
workload registry's `gateway` records (`sync`), by the runner that changed one and by the agent
when it starts, so the registry is the one truth and a restarted Caddy or agent converges on it.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import redis

from nodeagent.functions.registry import WorkloadRegistry
from sal.caddy import Caddy, Route

log = logging.getLogger(__name__)

GATEWAY_KEY = "gateway"
KIND = "gateway"
# Record states Caddy serves: `claimed` (the control plane reserved the host; being synced) and
# `ready`. Not `creating` (not reserved yet) nor `deleting` (its route goes, then its host).
SERVED = ("claimed", "ready")
CLAIMED = "claimed"
DELETING = "deleting"


@dataclass(frozen=True)
class ProxySettings:
    """How this node's proxy listens and gets certificates (the agent's flags, plain values)."""

    http_port: int = 80
    https_port: int = 443
    acme_email: str = ""  # empty: certificates from Caddy's internal CA (tests, private grids)
    acme_ca: str = ""  # empty: Caddy's default (Let's Encrypt)


@dataclass(frozen=True)
class GatewaySettings:
    """What the ledger says this gateway serves."""

    domain: str
    addresses: tuple[str, ...] = ()
    any_backend: bool = False


def publish(client: redis.Redis, settings: dict | None, prefix: str = "zos:") -> None:
    """Record the ledger's word (None: the node is not, or no longer, a gateway)."""
    if settings is None:
        client.delete(prefix + GATEWAY_KEY)
    else:
        client.set(prefix + GATEWAY_KEY, json.dumps(settings, sort_keys=True))


def current(client: redis.Redis, prefix: str = "zos:") -> GatewaySettings | None:
    raw = client.get(prefix + GATEWAY_KEY)
    if raw is None:
        return None
    data = json.loads(raw)
    return GatewaySettings(
        domain=str(data["domain"]),
        addresses=tuple(data.get("addresses") or ()),
        any_backend=bool(data.get("any_backend")),
    )


def proxy(data_dir: Path, settings: ProxySettings, netns: str | None) -> Caddy:
    """The node's Caddy, its state in `<data_dir>/gateway`."""
    return Caddy(
        Path(data_dir) / "gateway",
        netns=netns,
        http_port=settings.http_port,
        https_port=settings.https_port,
        acme_email=settings.acme_email or None,
        acme_ca=settings.acme_ca or None,
    )


def routes(registry: WorkloadRegistry) -> list[Route]:
    """The gateway workloads Caddy serves (SERVED), as routes."""
    return [
        Route(
            route_id=record.local_id,
            hosts=(record.spec["host"],),
            backends=tuple(record.spec["backends"]),
            tls=bool(record.spec["tls"]),
        )
        for record in registry.all(kind=KIND)
        if record.state in SERVED
    ]


def sync(caddy: Caddy, registry: WorkloadRegistry) -> None:
    """Make the proxy serve exactly what the registry holds."""
    caddy.sync(lambda: routes(registry))


def restore(caddy: Caddy, registry: WorkloadRegistry) -> int:
    """At agent start: a gateway's Caddy runs and serves its registry; returns the route count.

    A node that is no gateway (any more) but still has gateway records keeps serving them
    until their owners delete them: taking the names down is the owners' call."""
    if current(registry.redis) is None and not registry.all(kind=KIND):
        return 0
    sync(caddy, registry)
    return len(routes(registry))
