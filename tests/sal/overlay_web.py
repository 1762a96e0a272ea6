"""A web server standing for a VM on the overlay, and a client that asks through the gateway.

Booting a VM per gateway test costs tens of seconds under TCG; what the gateway sees of a VM is
only an overlay address on the node's Mycelium bridge with a port open. So the "VM" here is its
own network namespace joined to the gateway namespace's overlay bridge by a veth (as a VM's tap
is), with the VM's overlay address on its end and a Python HTTP server bound to it.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass

from sal import mycelium, net
from sal.command import run

OVERLAY = ipaddress.IPv6Network("4a1:2b3c:4d5e:6f71::/64")
BRIDGE = "zos-myc"
WAIT = 30.0

_SERVER = """
import http.server, socket, sys
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = sys.argv[3].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
Server((sys.argv[1], int(sys.argv[2])), Page).serve_forever()
"""


@dataclass
class FakeVm:
    """An HTTP server on an overlay address in its own namespace."""

    netns: str
    address: ipaddress.IPv6Address
    port: int
    process: subprocess.Popen

    @property
    def backend(self) -> str:
        return f"[{self.address}]:{self.port}"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)


def wire_overlay(gateway_ns: str) -> None:
    """The gateway namespace's overlay bridge, `<subnet>::1/64` on it, as the node wires it."""
    mycelium.wire_bridge(BRIDGE, OVERLAY, netns=gateway_ns)


def start_fake_vm(gateway_ns: str, vm_ns: str, name: str, page: str, port: int = 8080) -> FakeVm:
    """Join `vm_ns` to the gateway's overlay bridge and serve `page` on the VM's address."""
    address = mycelium.vm_address(OVERLAY, name)
    here, there = "zv" + secrets.token_hex(3), "zp" + secrets.token_hex(3)
    net.create_veth(here, there, netns=gateway_ns, peer_netns=vm_ns)
    net.attach_to_bridge(here, BRIDGE, gateway_ns)
    # nodad: the server binds to the address at once (a tentative address cannot be bound).
    run(["ip", "-n", vm_ns, "address", "add", f"{address}/64", "dev", there, "nodad"])
    net.set_up(there, vm_ns)
    server = [sys.executable, "-c", _SERVER, str(address), str(port), page]
    process = subprocess.Popen(
        ["ip", "netns", "exec", vm_ns, *server],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    vm = FakeVm(vm_ns, address, port, process)
    wait_for(lambda: probe(gateway_ns, vm.backend), f"the fake VM at {vm.backend}")
    return vm


def probe(netns: str, backend: str) -> bool:
    """True once a TCP connection from `netns` to `backend` succeeds."""
    host, _, port = backend.rpartition(":")
    code = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()"
    argv = ["ip", "netns", "exec", netns, sys.executable, "-c", code, host.strip("[]"), port]
    return run(argv, check=False).returncode == 0


def curl(netns: str, url: str, *, resolve: str, cacert: str | None = None) -> tuple[int, str]:
    """(HTTP status, body) of one request from inside `netns`; status 0 when none came back.

    `resolve` is `host:port` pointed at 127.0.0.1 (the gateway's own namespace), so no DNS."""
    argv = ["ip", "netns", "exec", netns, "curl", "-sS", "--max-time", "10"]
    argv += ["--resolve", f"{resolve}:127.0.0.1", "-w", "\n%{json}"]
    if cacert:
        argv += ["--cacert", cacert]
    done = run([*argv, url], check=False, timeout=30)
    if done.returncode != 0:
        return 0, done.stderr.strip()
    body, _, meta = done.stdout.rpartition("\n")
    return int(json.loads(meta)["http_code"]), body


def wait_for(condition, what: str, timeout: float = WAIT):
    """Poll `condition` until it returns something true; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
