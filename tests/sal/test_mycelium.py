"""Mycelium: the derived key, VM address allocation (pure functions), the daemon driver against a
fake that validates every request against specs/mycelium.yaml, and the bridge wiring inside a
throwaway network namespace."""

import ipaddress
import os
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_scalarmult_base

from sal import mycelium, net
from sal.mycelium import (
    Mycelium,
    MyceliumError,
    address_candidates,
    derive_key,
    gateway_address,
    hkdf_sha256,
    vm_address,
    write_key_file,
)
from tests.sal.spec_stub import SPECS_DIR, make_fake_binary, read_log, violations_in

SEED = bytes(range(32))
SUBNET = ipaddress.IPv6Network("54f:b680:ba6e:7ced::/64")
NODE_IP = ipaddress.IPv6Address("54f:b680:ba6e:7ced:abcd:1234:5678:9abc")


# -- the key --------------------------------------------------------------------------------


def test_hkdf_matches_rfc5869_vectors():
    ikm = b"\x0b" * 22
    case1 = hkdf_sha256(ikm, salt=bytes(range(13)), info=bytes(range(0xF0, 0xFA)), length=42)
    assert case1.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )
    case3 = hkdf_sha256(ikm, info=b"", length=42)
    assert case3.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_key_is_derived_deterministically_and_one_way():
    key = derive_key(SEED)
    assert len(key) == 32
    assert derive_key(SEED) == key
    assert key != SEED
    assert derive_key(bytes(32)) != key
    assert key == hkdf_sha256(SEED, info=b"zos/mycelium/node-key/v1")
    with pytest.raises(MyceliumError, match="32 bytes"):
        derive_key(SEED[:31])


def test_key_file_is_private_and_rewritten_when_tampered(tmp_path: Path):
    path = tmp_path / "keys" / "mycelium.key"
    assert write_key_file(path, SEED) is True
    assert path.read_bytes() == derive_key(SEED)
    assert path.stat().st_mode & 0o777 == 0o600
    assert write_key_file(path, SEED) is False
    path.write_bytes(os.urandom(32))
    assert write_key_file(path, SEED) is True
    assert path.read_bytes() == derive_key(SEED)


# -- VM addresses ---------------------------------------------------------------------------


def test_gateway_is_the_first_host_address():
    assert gateway_address(SUBNET) == ipaddress.IPv6Address("54f:b680:ba6e:7ced::1")
    with pytest.raises(MyceliumError, match="/64"):
        gateway_address(ipaddress.IPv6Network("54f:b680::/48"))


def test_vm_address_is_deterministic_and_in_the_subnet():
    first = vm_address(SUBNET, "alice.web", node_address=NODE_IP)
    assert first == vm_address(SUBNET, "alice.web", node_address=NODE_IP)
    assert first in SUBNET
    assert first != vm_address(SUBNET, "alice.db", node_address=NODE_IP)
    assert first == next(iter(address_candidates(SUBNET, "alice.web")))


def test_collisions_probe_the_next_candidate():
    candidates = list(address_candidates(SUBNET, "vm"))[:3]
    assert vm_address(SUBNET, "vm", taken=[candidates[0]]) == candidates[1]
    assert vm_address(SUBNET, "vm", taken=candidates[:2]) == candidates[2]
    assert vm_address(SUBNET, "vm", node_address=candidates[0]) == candidates[1]


def test_exhausted_probe_sequence_is_an_error():
    everything = list(address_candidates(SUBNET, "vm"))
    with pytest.raises(MyceliumError, match="no free mycelium address"):
        vm_address(SUBNET, "vm", taken=everything)
    with pytest.raises(MyceliumError, match="VM id"):
        vm_address(SUBNET, "")


subnets = st.integers(min_value=0x0400 << 48, max_value=(0x0600 << 48) - 1).map(
    lambda prefix: ipaddress.IPv6Network((prefix << 64, 64))
)
vm_ids = st.text(min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(subnet=subnets, vm_id=vm_ids, skip=st.integers(0, 5), iid=st.integers(2, 2**64 - 1))
def test_property_allocation_avoids_everything_unavailable(subnet, vm_id, skip, iid):
    # make the first `skip` candidates unavailable, one of them as the node's address
    candidates = list(address_candidates(subnet, vm_id))
    taken = candidates[:skip]
    node = subnet.network_address + iid
    chosen = vm_address(subnet, vm_id, node_address=node, taken=taken)
    assert chosen in subnet
    assert chosen not in {subnet.network_address, gateway_address(subnet), node, *taken}
    expected = next(
        c
        for c in candidates
        if c not in {subnet.network_address, gateway_address(subnet), node} and c not in taken
    )
    assert chosen == expected


@settings(max_examples=50, deadline=None)
@given(subnet=subnets, ids=st.lists(vm_ids, min_size=1, max_size=30, unique=True))
def test_property_sequential_allocations_are_unique(subnet, ids):
    allocated: dict[str, ipaddress.IPv6Address] = {}
    for vm_id in ids:
        allocated[vm_id] = vm_address(subnet, vm_id, taken=allocated.values())
    assert len(set(allocated.values())) == len(ids)
    # re-deriving any VM's address with the others taken gives the same answer
    for vm_id, address in allocated.items():
        others = [a for k, a in allocated.items() if k != vm_id]
        assert vm_address(subnet, vm_id, taken=others) == address


# -- the daemon -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Daemons:
    """Makes Mycelium drivers for the fake binary; stops every daemon they started."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.log = tmp_path / "requests.jsonl"
        self.binary = make_fake_binary(
            tmp_path, "mycelium", "tests.sal.fake_mycelium", log_path=self.log
        )
        self.made: list[Mycelium] = []

    def __call__(self, **kwargs) -> Mycelium:
        kwargs.setdefault("api", f"127.0.0.1:{free_port()}")
        kwargs.setdefault("no_tun", True)
        myc = Mycelium(self.tmp_path / "state" / "mycelium.key", binary=str(self.binary), **kwargs)
        self.made.append(myc)
        return myc


@pytest.fixture
def fake(tmp_path: Path):
    if not SPECS_DIR.is_dir():
        pytest.skip(f"needs the published API specs in {SPECS_DIR}")
    daemons = Daemons(tmp_path)
    yield daemons
    for myc in daemons.made:
        myc.stop()
    assert violations_in(daemons.log) == [], "the driver sent requests the spec does not allow"


def test_daemon_runs_with_the_derived_key(fake, tmp_path: Path):
    myc = fake()
    info = myc.start(SEED)
    assert info.address in info.subnet and info.subnet.prefixlen == 64
    # the daemon's identity is the x25519 public key of the derived key
    assert info.public_key == crypto_scalarmult_base(derive_key(SEED)).hex()
    assert (tmp_path / "state" / "mycelium.key").read_bytes() == derive_key(SEED)
    assert myc.info() == info
    pid = myc.pid()
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"--disable-peer-discovery" in cmdline and b"--no-tun" in cmdline

    # already running: start() leaves it alone
    assert myc.start(SEED) == info and myc.pid() == pid
    # the agent restarts: a new driver finds the same daemon
    again = Mycelium(myc.key_file, binary=myc.binary, api=myc.api_addr, no_tun=True)
    assert again.pid() == pid and again.start(SEED) == info

    # restarted, the node keeps its overlay subnet and address
    myc.stop()
    assert myc.pid() is None
    assert myc.start(SEED) == info
    assert myc.pid() != pid
    # another seed is another node
    other = myc.start(bytes(32))
    assert other.subnet != info.subnet


def test_peers_and_routes(fake):
    myc = fake(peers=["tcp://192.0.2.6:9651"])
    myc.start(SEED)
    assert [(p.endpoint, p.type) for p in myc.list_peers()] == [("tcp://192.0.2.6:9651", "static")]
    assert myc.add_peer("quic://[2001:db8::7]:9651") is True
    assert myc.add_peer("quic://[2001:db8::7]:9651") is False  # 409: already known
    assert {p.endpoint for p in myc.list_peers()} == {
        "tcp://192.0.2.6:9651",
        "quic://[2001:db8::7]:9651",
    }
    routes = myc.routes()
    assert len(routes) == 2 and all(
        r.metric is not None and r.subnet.endswith("/64") for r in routes
    )
    assert myc.routes("fallback") == []
    assert myc.remove_peer("tcp://192.0.2.6:9651") is True
    assert myc.remove_peer("tcp://192.0.2.6:9651") is False  # 404: not known
    assert [p.endpoint for p in myc.list_peers()] == ["quic://[2001:db8::7]:9651"]
    with pytest.raises(MyceliumError, match="HTTP 400"):
        myc.add_peer("udp://192.0.2.9:1")
    with pytest.raises(MyceliumError, match="'selected' or 'fallback'"):
        myc.routes("queried")
    paths = [e["path"] for e in read_log(fake.log) if e["method"] == "DELETE"]
    assert paths == ["/api/v1/admin/peers/tcp%3A%2F%2F192.0.2.6%3A9651"] * 2


def test_start_failures_are_clear(fake, tmp_path: Path):
    missing = Mycelium(tmp_path / "k", binary=str(tmp_path / "no-mycelium"), api="127.0.0.1:1")
    with pytest.raises(MyceliumError, match="cannot start"):
        missing.start(SEED)
    for api in ("192.0.2.1:8989", "localhost:8989", "127.0.0.1"):
        with pytest.raises(MyceliumError, match="loopback"):
            Mycelium(tmp_path / "k", api=api)
    # the API port is taken: the daemon gives up and the error carries its log
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        myc = fake(api=f"127.0.0.1:{busy.getsockname()[1]}")
        with pytest.raises(MyceliumError, match="Failed to bind"):
            myc.start(SEED)


# -- wiring ---------------------------------------------------------------------------------


def test_bridge_wiring_in_a_namespace(netns: str):
    subnet = ipaddress.IPv6Network("4a1:2b3c:4d5e:6f70::/64")
    gateway = mycelium.wire_bridge("br-myc", subnet, netns=netns)
    assert gateway == ipaddress.IPv6Interface("4a1:2b3c:4d5e:6f70::1/64")
    assert mycelium.wire_bridge("br-myc", subnet, netns=netns) == gateway  # idempotent
    bridge = net.get_link("br-myc", netns)
    assert bridge.kind == "bridge" and bridge.up
    assert "4a1:2b3c:4d5e:6f70::1/64" in net.addresses("br-myc", netns)
    forwarding = net.netns_exec(netns, ["sysctl", "-n", "net.ipv6.conf.all.forwarding"])
    assert forwarding.stdout.strip() == "1"

    net.create_tap("tap-vm1", netns=netns)
    mycelium.attach_vm_tap("tap-vm1", "br-myc", netns=netns)
    assert net.get_link("tap-vm1", netns).master == "br-myc"
    # the VM's own address comes from the same /64, never the gateway
    assert vm_address(subnet, "vm1") not in {gateway.ip, subnet.network_address}
