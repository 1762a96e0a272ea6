"""A stand-in for the `mycelium` daemon: same command line, same HTTP API, no overlay.

Run as `python -m tests.sal.fake_mycelium --key-file K --api-addr 127.0.0.1:P ...` (wrapped by
`spec_stub.make_fake_binary`). The API goes through the strict spec stub, so every request is
checked against specs/mycelium.yaml. One supplement, from the daemon's source rather than the
spec: `POST /api/v1/admin/peers` takes `{"endpoint": "<proto>://<host>:<port>"}` (mycelium-api
`AddPeer`); the published spec declares no body for it.

What it models: the key file is read like myceliumd reads it (the first 32 bytes, an x25519
secret; fewer is an error; a missing file is generated and saved); the public key is the real
x25519 public key of that secret. The overlay subnet and address are a stand-in derivation
(SHA-256 of the public key into 400::/7; the real daemon uses blake3), so they are stable per
key, like the real ones. Peers given with `--peers` are `static`; added peers too; all stay
`connecting` (there is no network). Each peer contributes one selected route to a subnet derived
from its endpoint; there are no fallback routes. It creates no tun; it exits on SIGTERM or
SIGINT like myceliumd.
"""

import argparse
import hashlib
import ipaddress
import os
import re
import sys
import time
from pathlib import Path

from nacl.bindings import crypto_scalarmult_base

from tests.sal.spec_stub import (
    Reply,
    StubRequest,
    load_spec_stub,
    log_path_from_env,
    wait_for_termination,
)

ADD_PEER_BODY = {
    "type": "object",
    "required": ["endpoint"],
    "properties": {"endpoint": {"type": "string"}},
}
_ENDPOINT = re.compile(r"^(tcp|quic)://(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d{1,5})$")


def overlay_subnet(seed: bytes) -> ipaddress.IPv6Network:
    """A /64 in 400::/7 derived from `seed` (stand-in for mycelium's blake3 derivation)."""
    digest = hashlib.sha256(seed).digest()
    first = 0x04 | (digest[0] & 0x01)
    prefix = bytes([first]) + digest[1:8]
    return ipaddress.IPv6Network((int.from_bytes(prefix + bytes(8), "big"), 64))


def parse_endpoint(text: str) -> tuple[str, str] | None:
    match = _ENDPOINT.match(text)
    if not match or int(match.group(3)) > 65535:
        return None
    return match.group(1), f"{match.group(2)}:{match.group(3)}"


class FakeMycelium:
    def __init__(self, secret: bytes, static_peers: list[str]) -> None:
        self.stub = load_spec_stub(
            "mycelium.yaml",
            extra_bodies={("POST", "/api/v1/admin/peers"): ADD_PEER_BODY},
            log_path=log_path_from_env(),
        )
        self.public_key = crypto_scalarmult_base(secret)
        self.subnet = overlay_subnet(self.public_key)
        iid = int.from_bytes(hashlib.sha256(b"ip" + self.public_key).digest()[:8], "big")
        self.address = self.subnet.network_address + iid
        self.started = int(time.time())
        self.peers: dict[str, str] = {}  # endpoint → type
        for peer in static_peers:
            if parse_endpoint(peer) is None:
                sys.exit(f"error: invalid value '{peer}' for '--peers <STATIC_PEERS>...'")
            self.peers[peer] = "static"
        on = self.stub.on
        on("GET", "/api/v1/admin")(self.info)
        on("GET", "/api/v1/admin/peers")(self.list_peers)
        on("POST", "/api/v1/admin/peers")(self.add_peer)
        on("DELETE", "/api/v1/admin/peers/{endpoint}")(self.remove_peer)
        on("GET", "/api/v1/admin/routes/selected")(self.selected_routes)
        on("GET", "/api/v1/admin/routes/fallback")(lambda req: Reply(200, []))

    def info(self, req: StubRequest) -> Reply:
        return Reply(
            200,
            {
                "nodeSubnet": str(self.subnet),
                "nodeIp": str(self.address),
                "nodePubkey": self.public_key.hex(),
                "nodeStartTime": self.started,
            },
        )

    def list_peers(self, req: StubRequest) -> Reply:
        peers = []
        for endpoint, kind in self.peers.items():
            proto, addr = parse_endpoint(endpoint)
            peers.append(
                {
                    "endpoint": {"proto": proto, "socketAddr": addr},
                    "type": kind,
                    "connectionState": "connecting",
                    "txBytes": 0,
                    "rxBytes": 0,
                }
            )
        return Reply(200, peers)

    def add_peer(self, req: StubRequest) -> Reply:
        endpoint = req.body["endpoint"]
        if parse_endpoint(endpoint) is None:
            return Reply(400, f"invalid endpoint {endpoint!r}", "text/plain")
        if endpoint in self.peers:
            return Reply(409, "A peer identified by that endpoint already exists", "text/plain")
        self.peers[endpoint] = "static"
        return Reply(204)

    def remove_peer(self, req: StubRequest) -> Reply:
        endpoint = req.path_params["endpoint"]
        if parse_endpoint(endpoint) is None:
            return Reply(400, f"invalid endpoint {endpoint!r}", "text/plain")
        if self.peers.pop(endpoint, None) is None:
            return Reply(404, "A peer identified by that endpoint does not exist", "text/plain")
        return Reply(204)

    def selected_routes(self, req: StubRequest) -> Reply:
        routes = [
            {
                "subnet": str(overlay_subnet(endpoint.encode())),
                "nextHop": f"TCP {endpoint.split('://', 1)[1]}",
                "metric": 10 + i,
                "seqno": 1,
            }
            for i, endpoint in enumerate(self.peers)
        ]
        return Reply(200, routes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mycelium")
    parser.add_argument("-k", "--key-file", default="priv_key.bin")
    parser.add_argument("--api-addr", default="127.0.0.1:8989")
    parser.add_argument("--peers", nargs="+", default=[])
    parser.add_argument("-t", "--tcp-listen-port", type=int, default=9651)
    parser.add_argument("-q", "--quic-listen-port", type=int, default=9651)
    parser.add_argument("--peer-discovery-port", type=int, default=9650)
    parser.add_argument("--disable-peer-discovery", action="store_true")
    parser.add_argument("--no-tun", action="store_true")
    parser.add_argument("--tun-name", default="tun0")
    parser.add_argument("-d", "--debug", action="store_true")
    parser.add_argument("--silent", action="store_true")
    args = parser.parse_args(argv)
    key_file = Path(args.key_file)
    if not key_file.exists():  # myceliumd generates and saves a new key in that case
        key_file.write_bytes(os.urandom(32))
        key_file.chmod(0o600)
    key = key_file.read_bytes()[:32]
    if len(key) != 32:
        sys.exit(f"Error: failed to fill whole buffer reading {args.key_file}")
    daemon = FakeMycelium(key, args.peers)
    host, _, port = args.api_addr.rpartition(":")
    try:
        server = daemon.stub.serve_tcp(host.strip("[]"), int(port))
    except OSError as exc:
        sys.exit(f"Failed to bind listener for Http Api server: {exc}")
    wait_for_termination(server.shutdown)


if __name__ == "__main__":
    main()
