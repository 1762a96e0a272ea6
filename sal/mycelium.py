"""Mycelium: the node's overlay network daemon, its key, and addresses for the VMs behind it.

ARCHITECTURE §6. The node runs one `mycelium` daemon. Its private key is DERIVED from the node's
ed25519 seed, so the node's overlay identity (and therefore its /64) is stable across reboots
and reinstalls without storing another secret, and the node key itself never leaves the agent:

    mycelium key = HKDF-SHA256(IKM = node seed (32 bytes), salt = none (32 zero bytes),
                               info = b"zos/mycelium/node-key/v1", L = 32)

The result is written as the 32 raw bytes mycelium expects in `--key-file` (it reads exactly 32
bytes and treats them as an x25519 secret). HKDF is one-way: the key file does not reveal the
seed, and a different `info` string gives an unrelated key for any other use of the seed.

Mycelium gives the node an overlay subnet (a /64 in 400::/7) and an address in it; both are read
from its API (`GET /api/v1/admin`, specs/mycelium.yaml). Each VM gets an address in that /64,
chosen deterministically from its id (`vm_address`) so re-creating a VM gives it the same address;
the VMs' taps hang off a bridge that holds the subnet's gateway address `<subnet>::1`
(`wire_bridge`), and the kernel routes between the bridge and mycelium's tun.

The daemon is driven through its HTTP API on loopback: node info, peers (list, add, remove) and
routes. It is not installable here; the tests run against a fake daemon that validates every
request against the published spec (tests/sal/fake_mycelium.py).
"""

import contextlib
import hashlib
import hmac
import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sal import net
from sal.command import SalError, child_setup, process_alive, run, wait_gone
from sal.unix_http import ApiUnavailable, HttpApi

KEY_INFO = b"zos/mycelium/node-key/v1"
KEY_SIZE = 32
SEED_SIZE = 32
VM_ADDRESS_DOMAIN = b"zos/mycelium/vm-address/v1"
MAX_PROBES = 1024
DEFAULT_API = "127.0.0.1:8989"
DEFAULT_PORT = 9651  # mycelium's default TCP and QUIC listen port


class MyceliumError(SalError):
    """Mycelium could not be started, or its API refused or could not answer a request."""


# -- the key --------------------------------------------------------------------------------


def hkdf_sha256(ikm: bytes, *, info: bytes, length: int = 32, salt: bytes = b"") -> bytes:
    """HKDF (RFC 5869) with SHA-256: extract with `salt` (zeros when empty), then expand."""
    if length > 255 * 32:
        raise ValueError("HKDF-SHA256 output is limited to 8160 bytes")
    prk = hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
    return out[:length]


def derive_key(node_seed: bytes) -> bytes:
    """The node's mycelium private key (32 bytes), derived one-way from its ed25519 seed."""
    if not isinstance(node_seed, bytes) or len(node_seed) != SEED_SIZE:
        raise MyceliumError(f"the node seed must be {SEED_SIZE} bytes")
    return hkdf_sha256(node_seed, info=KEY_INFO, length=KEY_SIZE)


def write_key_file(path: Path, node_seed: bytes) -> bool:
    """Make `path` hold the derived key (mode 0600). Returns True when the file was (re)written;
    an existing file with another key is replaced, since the derived key is authoritative."""
    key = derive_key(node_seed)
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == key and (path.stat().st_mode & 0o777) == 0o600:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    tmp.rename(path)
    return True


# -- VM addresses ---------------------------------------------------------------------------


def gateway_address(subnet: ipaddress.IPv6Network) -> ipaddress.IPv6Address:
    """The address the mycelium bridge holds and VMs route through: `<subnet>::1`."""
    _require_64(subnet)
    return subnet.network_address + 1


def _require_64(subnet: ipaddress.IPv6Network) -> None:
    if not isinstance(subnet, ipaddress.IPv6Network) or subnet.prefixlen != 64:
        raise MyceliumError(f"mycelium node subnets are IPv6 /64s, got {subnet}")


def address_candidates(
    subnet: ipaddress.IPv6Network, vm_id: str
) -> Iterable[ipaddress.IPv6Address]:
    """The probe sequence for a VM: address i has interface id = first 8 bytes of
    SHA-256(domain ‖ 0 ‖ vm id ‖ 0 ‖ i as 4 big-endian bytes). Deterministic, spread over the
    whole /64, and independent for every VM."""
    _require_64(subnet)
    ident = vm_id.encode()
    for i in range(MAX_PROBES):
        digest = hashlib.sha256(
            VM_ADDRESS_DOMAIN + b"\0" + ident + b"\0" + i.to_bytes(4, "big")
        ).digest()
        yield subnet.network_address + int.from_bytes(digest[:8], "big")


def vm_address(
    subnet: ipaddress.IPv6Network,
    vm_id: str,
    *,
    node_address: ipaddress.IPv6Address | None = None,
    taken: Iterable[ipaddress.IPv6Address] = (),
) -> ipaddress.IPv6Address:
    """The VM's address in the node's /64: the first candidate (`address_candidates`) that is
    not the subnet-router anycast address (`<subnet>::`), the gateway (`<subnet>::1`), the
    node's own mycelium address, or already `taken` by another VM.

    Pass the other VMs' addresses as `taken` (not this VM's own): the same inputs always give
    the same answer, so a VM keeps its address across re-creation as long as nothing else took
    it in between.
    """
    if not vm_id:
        raise MyceliumError("a VM id is required to allocate its mycelium address")
    unavailable = {subnet.network_address, gateway_address(subnet), *taken}
    if node_address is not None:
        unavailable.add(node_address)
    for candidate in address_candidates(subnet, vm_id):
        if candidate not in unavailable:
            return candidate
    raise MyceliumError(f"no free mycelium address for VM {vm_id} after {MAX_PROBES} probes")


# -- wiring ---------------------------------------------------------------------------------


def wire_bridge(
    bridge: str,
    subnet: ipaddress.IPv6Network,
    *,
    netns: str | None = None,
    forwarding: bool = True,
) -> ipaddress.IPv6Interface:
    """Create the mycelium bridge (idempotent), give it `<subnet>::1/64` and set it up; with
    `forwarding`, turn on IPv6 forwarding so packets flow between the bridge and mycelium's tun.
    Returns the gateway interface address the VMs are configured with."""
    gateway = ipaddress.IPv6Interface(f"{gateway_address(subnet)}/64")
    net.create_bridge(bridge, netns)
    net.add_address(bridge, str(gateway), netns)
    if forwarding:
        argv = ["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"]
        if netns is None:
            run(argv)
        else:
            net.netns_exec(netns, argv)
    return gateway


def attach_vm_tap(tap: str, bridge: str, *, netns: str | None = None) -> None:
    """Put a VM's tap on the mycelium bridge (the tap must exist; idempotent)."""
    net.attach_to_bridge(tap, bridge, netns)


# -- the daemon -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeInfo:
    subnet: ipaddress.IPv6Network
    address: ipaddress.IPv6Address
    public_key: str


@dataclass(frozen=True)
class Peer:
    endpoint: str  # "tcp://192.0.2.6:9651", the form add_peer/remove_peer take
    type: str  # static, inbound, linkLocalDiscovery
    state: str  # alive, connecting, dead
    tx_bytes: int
    rx_bytes: int


@dataclass(frozen=True)
class Route:
    subnet: str
    next_hop: str
    metric: int | None  # None: infinite (unreachable)
    seqno: int


class Mycelium:
    """The node's mycelium daemon: started with the derived key, driven over its HTTP API.

    `api` is the `host:port` of the API (`--api-addr`, loopback only); `state_dir` holds the pid
    file and the daemon's log (default: the key file's directory).
    """

    def __init__(
        self,
        key_file: Path,
        *,
        binary: str = "mycelium",
        api: str = DEFAULT_API,
        state_dir: Path | None = None,
        peers: Sequence[str] = (),
        tun_name: str = "mycelium",
        no_tun: bool = False,
        listen_port: int = DEFAULT_PORT,
        peer_discovery: bool = False,
        start_timeout: float = 15.0,
        api_timeout: float = 10.0,
    ) -> None:
        host, _, port = api.rpartition(":")
        try:
            loopback = ipaddress.ip_address(host.strip("[]")).is_loopback and int(port) > 0
        except ValueError:
            loopback = False
        if not loopback:
            raise MyceliumError(f"the mycelium API must be a loopback IP:port, not {api!r}")
        self.key_file = Path(key_file)
        self.binary = binary
        self.api_addr = api
        self.state_dir = Path(state_dir) if state_dir is not None else self.key_file.parent
        self.peers = tuple(peers)
        self.tun_name = tun_name
        self.no_tun = no_tun
        self.listen_port = listen_port
        self.peer_discovery = peer_discovery
        self.start_timeout = start_timeout
        self.api = HttpApi(host=host.strip("[]"), port=int(port), timeout=api_timeout)
        self._child: subprocess.Popen | None = None

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "mycelium.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "mycelium.log"

    def argv(self) -> list[str]:
        """The daemon's command line (flags of myceliumd; `--peers` last, it takes a list)."""
        argv = [
            self.binary,
            "--key-file",
            str(self.key_file),
            "--api-addr",
            self.api_addr,
            "--tcp-listen-port",
            str(self.listen_port),
            "--quic-listen-port",
            str(self.listen_port),
            "--tun-name",
            self.tun_name,
        ]
        if self.no_tun:
            argv.append("--no-tun")
        if not self.peer_discovery:
            argv.append("--disable-peer-discovery")
        if self.peers:
            argv += ["--peers", *self.peers]
        return argv

    # -- process ----------------------------------------------------------------------------

    def _running(self, pid: int) -> bool:
        """The process exists and has not exited (a zombie has); our own child is reaped."""
        if self._child is not None and self._child.pid == pid:
            return self._child.poll() is None
        return process_alive(pid)

    def pid(self) -> int | None:
        """The daemon's pid when it runs (pid file, process alive, command line ours)."""
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if not self._running(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        # guard against pid reuse (an exiting process shows an empty command line: still ours)
        if cmdline != [b""] and str(self.key_file).encode() not in cmdline:
            return None
        return pid

    def start(self, node_seed: bytes) -> NodeInfo:
        """Write the derived key, start the daemon unless it already runs, wait for its API."""
        key_changed = write_key_file(self.key_file, node_seed)
        if self.pid() is not None and not key_changed:
            return self.wait_ready()
        self.stop()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            try:
                self._child = subprocess.Popen(
                    self.argv(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # keeps running across agent restarts
                    close_fds=True,
                    preexec_fn=child_setup(),  # lifts a runner's memory limit (see child_setup)
                )
            except OSError as exc:
                raise MyceliumError(
                    f"cannot start {self.binary}: {exc.strerror} (is mycelium installed?)"
                ) from exc
        self.pid_file.write_text(str(self._child.pid))
        return self.wait_ready()

    def wait_ready(self) -> NodeInfo:
        """Wait until the API answers with node info; fail early if the daemon exits."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.pid() is None:
                raise MyceliumError(f"{self.binary} is not running: {self._log_tail()}")
            with contextlib.suppress(ApiUnavailable):
                resp = self.api.request("GET", "/api/v1/admin", timeout=1.0)
                if resp.status == 200:
                    return _node_info(resp.json())
            if time.monotonic() > deadline:
                raise MyceliumError(
                    f"mycelium API on {self.api_addr} did not answer within "
                    f"{self.start_timeout:g}s: {self._log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (mycelium exits cleanly on it), SIGKILL after `timeout`; no-op when stopped."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_gone(pid, 5.0)
        self.pid_file.unlink(missing_ok=True)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        return wait_gone(lambda: self._running(pid), timeout)

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-1000:].strip() or "(no output)"
        except FileNotFoundError:
            return "(no output)"

    # -- API --------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs):
        try:
            return self.api.request(method, path, **kwargs)
        except ApiUnavailable as exc:
            raise MyceliumError(str(exc)) from exc

    def _expect(self, resp, what: str, ok: tuple[int, ...]):
        if resp.status not in ok:
            raise MyceliumError(f"mycelium refused to {what}: HTTP {resp.status} {resp.text}")
        return resp

    def info(self) -> NodeInfo:
        resp = self._request("GET", "/api/v1/admin")
        return _node_info(self._expect(resp, "report node info", (200,)).json())

    def list_peers(self) -> list[Peer]:
        resp = self._expect(self._request("GET", "/api/v1/admin/peers"), "list peers", (200,))
        return [
            Peer(
                endpoint=f"{p['endpoint']['proto']}://{p['endpoint']['socketAddr']}",
                type=p.get("type", ""),
                state=p.get("connectionState", ""),
                tx_bytes=p.get("txBytes", 0),
                rx_bytes=p.get("rxBytes", 0),
            )
            for p in resp.json()
        ]

    def add_peer(self, endpoint: str) -> bool:
        """Add a peer such as `tcp://192.0.2.6:9651`; False when it was already known.

        The body `{"endpoint": ...}` is what myceliumd reads (mycelium-api `AddPeer`); the
        published spec omits it."""
        resp = self._request("POST", "/api/v1/admin/peers", json_body={"endpoint": endpoint})
        self._expect(resp, f"add peer {endpoint}", (204, 409))
        return resp.status == 204

    def remove_peer(self, endpoint: str) -> bool:
        """Remove a peer; False when mycelium did not know it. The endpoint is one path segment,
        so it is percent-encoded whole (`tcp%3A%2F%2F...`)."""
        resp = self._request("DELETE", "/api/v1/admin/peers/" + quote(endpoint, safe=""))
        self._expect(resp, f"remove peer {endpoint}", (204, 404))
        return resp.status == 204

    def routes(self, kind: str = "selected") -> list[Route]:
        """Selected routes (in use) or fallback routes (standby) of the overlay."""
        if kind not in ("selected", "fallback"):
            raise MyceliumError(f"route kind is 'selected' or 'fallback', not {kind!r}")
        resp = self._request("GET", f"/api/v1/admin/routes/{kind}")
        return [
            Route(
                subnet=r["subnet"],
                next_hop=r["nextHop"],
                metric=None if r["metric"] == "infinite" else int(r["metric"]),
                seqno=r["seqno"],
            )
            for r in self._expect(resp, f"list {kind} routes", (200,)).json()
        ]


def _node_info(data: dict) -> NodeInfo:
    try:
        subnet = ipaddress.IPv6Network(data["nodeSubnet"])
        address = ipaddress.IPv6Address(data["nodeIp"])
    except (KeyError, ValueError) as exc:
        raise MyceliumError(f"mycelium node info is incomplete or malformed: {data}") from exc
    if address not in subnet:
        raise MyceliumError(f"mycelium node address {address} is not in its subnet {subnet}")
    return NodeInfo(subnet=subnet, address=address, public_key=data.get("nodePubkey", ""))
