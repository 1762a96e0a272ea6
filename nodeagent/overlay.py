"""The node's Mycelium overlay as workloads see it: the daemon, its /64, the VMs' bridge.

The agent starts the mycelium daemon with a key derived from the node key (sal.mycelium), wires
the bridge VMs' taps join (`<subnet>::1/64` on it) and publishes the result in the node's Redis,
where the runners read it when a VM asks for an overlay address. Without a mycelium binary the
node simply has no overlay: VMs that ask for one get a clear error, the rest works.

A node told `--mycelium local` (the grid in a box, where no mycelium binary can be installed)
runs no daemon: its VMs get addresses on a private /64 (a ULA, fd00::/8, derived from the node
key) on the same bridge, wired the same way in the node's workload namespace. They reach each
other and the node's bridge, nothing else; the address is not registered with the ledger.
"""

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

import redis

from sal import mycelium

BRIDGE = "zos-myc"
OVERLAY_KEY = "overlay"
LOCAL = "local"  # the `mycelium` setting for a node-local network instead of the daemon


@dataclass(frozen=True)
class Overlay:
    subnet: ipaddress.IPv6Network
    address: ipaddress.IPv6Address  # the node's own overlay address
    bridge: str
    netns: str | None = None

    @property
    def gateway(self) -> ipaddress.IPv6Address:
        return mycelium.gateway_address(self.subnet)

    def to_json(self) -> str:
        return json.dumps(
            {
                "subnet": str(self.subnet),
                "address": str(self.address),
                "bridge": self.bridge,
                "netns": self.netns,
            }
        )


@dataclass(frozen=True)
class OverlaySettings:
    binary: str
    api: str = mycelium.DEFAULT_API
    peers: tuple[str, ...] = ()
    netns: str | None = None


def start_overlay(settings: OverlaySettings, data_dir: Path, node_seed: bytes) -> Overlay:
    """Start (or find running) the daemon, wire the VM bridge, and say where the node is."""
    daemon = mycelium.Mycelium(
        data_dir / "mycelium" / "key",
        binary=settings.binary,
        api=settings.api,
        peers=settings.peers,
    )
    info = daemon.start(node_seed)
    mycelium.wire_bridge(BRIDGE, info.subnet, netns=settings.netns)
    return Overlay(subnet=info.subnet, address=info.address, bridge=BRIDGE, netns=settings.netns)


def local_subnet(node_seed: bytes) -> ipaddress.IPv6Network:
    """The node's private /64: fd00::/8 with 56 bits derived from the node key (RFC 4193's
    random global id and subnet), stable across restarts, different per node."""
    bits = hashlib.sha256(b"zos-local-overlay\0" + node_seed).digest()[:7]
    prefix = bytes([0xFD]) + bits
    return ipaddress.IPv6Network((int.from_bytes(prefix + bytes(8), "big"), 64))


def start_local(node_seed: bytes, netns: str | None) -> Overlay:
    """The node-local network: the bridge with `<subnet>::1/64`, no daemon, no route out."""
    subnet = local_subnet(node_seed)
    mycelium.wire_bridge(BRIDGE, subnet, netns=netns, forwarding=False)
    return Overlay(
        subnet=subnet, address=mycelium.gateway_address(subnet), bridge=BRIDGE, netns=netns
    )


def database_address(found: Overlay | None, fallback: str) -> str:
    """Where a database listens: the overlay gateway address (`<subnet>::1`, on the VM bridge,
    routed to this node by Mycelium, so VMs and the whole overlay reach it) when the node runs
    its overlay in its own network namespace; `fallback` otherwise (loopback on a development
    box, or an overlay kept in a separate namespace the database server does not run in)."""
    if found is None or found.netns is not None:
        return fallback
    return str(found.gateway)


def publish(client: redis.Redis, overlay: Overlay, prefix: str = "zos:") -> None:
    client.set(prefix + OVERLAY_KEY, overlay.to_json())


def clear(client: redis.Redis, prefix: str = "zos:") -> None:
    """Forget the published overlay (the agent does this before starting it again)."""
    client.delete(prefix + OVERLAY_KEY)


def current(client: redis.Redis, prefix: str = "zos:") -> Overlay | None:
    """The overlay the agent published, or None when the node runs none."""
    raw = client.get(prefix + OVERLAY_KEY)
    if raw is None:
        return None
    data = json.loads(raw)
    return Overlay(
        subnet=ipaddress.IPv6Network(data["subnet"]),
        address=ipaddress.IPv6Address(data["address"]),
        bridge=data["bridge"],
        netns=data.get("netns"),
    )
