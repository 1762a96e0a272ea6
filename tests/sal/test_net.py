"""net SAL inside throwaway network namespaces; the host's links are never touched."""

import sys

import pytest

from sal import net
from sal.command import SalError

# An ICMP echo over a raw socket, so the tests need no ping binary; exits 0 on a reply.
PING = """
import socket, struct, sys
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
body = struct.pack('!BBHHH', 8, 0, 0, 0x2a, 1) + b'zos-ping'
packet = body[:2] + struct.pack('!H', csum(body)) + body[4:]
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.settimeout(float(sys.argv[2]))
sock.sendto(packet, (sys.argv[1], 0))
while True:
    data, (src, _) = sock.recvfrom(1024)
    if src == sys.argv[1] and data[20] == 0 and data[24:26] == b'\\x00\\x2a':
        sys.exit(0)
"""


def ping(netns: str, address: str, timeout: float = 3.0) -> bool:
    argv = [sys.executable, "-c", PING, address, str(timeout)]
    return net.netns_exec(netns, argv, check=False).returncode == 0


def test_netns_fixture_has_only_loopback(netns):
    assert [link.name for link in net.list_links(netns)] == ["lo"]
    assert net.get_link("lo", netns).up


def test_namespaces_are_created_listed_and_deleted_idempotently(netns):
    name = f"{netns}-x"
    try:
        net.create_netns(name)
        net.create_netns(name)
        assert net.netns_exists(name)
        assert name in net.list_netns()
        assert net.netns_exec(name, ["cat", "/proc/net/dev"]).stdout.count(":") == 1  # just lo
    finally:
        net.delete_netns(name)
    net.delete_netns(name)
    assert not net.netns_exists(name)
    with pytest.raises(SalError, match="no network namespace"):
        net.list_links(name)


def test_bridge_with_two_namespaced_ends_carries_ping(netns_factory):
    host, left, right = netns_factory(), netns_factory(), netns_factory()
    bridge = net.create_bridge("br-test", netns=host)
    assert bridge.kind == "bridge" and bridge.up
    assert net.create_bridge("br-test", netns=host).index == bridge.index
    net.add_address("br-test", "10.77.0.1/24", netns=host)
    for side, address in ((left, "10.77.0.2/24"), (right, "10.77.0.3/24")):
        port = f"ve-{side[-4:]}"
        net.create_veth(port, "eth0", netns=host, peer_netns=side)
        net.create_veth(port, "eth0", netns=host, peer_netns=side)
        net.attach_to_bridge(port, "br-test", netns=host)
        net.add_address("eth0", address, netns=side)
        net.set_up("eth0", netns=side)
        assert net.get_link(port, host).master == "br-test"
        assert net.get_link("eth0", side).kind == "veth"
    assert ping(left, "10.77.0.3")
    assert ping(right, "10.77.0.2")
    assert ping(left, "10.77.0.1")
    assert not ping(left, "10.77.0.9", timeout=0.5)


def test_veth_end_moves_between_namespaces(netns_factory):
    here, there = netns_factory(), netns_factory()
    net.create_veth("va", "vb", netns=here)
    net.move_to_netns("vb", there, netns=here)
    net.move_to_netns("vb", there, netns=here)
    assert not net.link_exists("vb", here)
    assert net.get_link("vb", there).kind == "veth"
    net.delete_link("va", netns=here)
    assert not net.link_exists("vb", there)  # a veth takes its peer with it


def test_tap_is_created_attached_and_deleted(netns):
    net.create_bridge("br0", netns=netns)
    tap = net.create_tap("tap-vm1", owner="nobody", netns=netns)
    assert tap.kind == "tap"
    assert net.create_tap("tap-vm1", owner="nobody", netns=netns).index == tap.index
    net.attach_to_bridge("tap-vm1", "br0", netns=netns)
    net.attach_to_bridge("tap-vm1", "br0", netns=netns)
    assert net.get_link("tap-vm1", netns).master == "br0"
    net.detach_from_bridge("tap-vm1", netns=netns)
    assert net.get_link("tap-vm1", netns).master is None
    net.delete_link("tap-vm1", netns=netns)
    net.delete_link("tap-vm1", netns=netns)
    assert [link.name for link in net.list_links(netns)] == ["lo", "br0"]


def test_addresses_v4_and_v6_idempotent(netns):
    net.create_bridge("br1", netns=netns)
    for _ in range(2):
        net.add_address("br1", "192.168.50.1/24", netns=netns)
        net.add_address("br1", "fd00:77::1/64", netns=netns)
    found = net.addresses("br1", netns=netns)
    assert found.count("192.168.50.1/24") == 1
    assert found.count("fd00:77::1/64") == 1
    with pytest.raises(SalError, match="prefix length"):
        net.add_address("br1", "192.168.50.2", netns=netns)
    with pytest.raises(SalError, match="does not appear to be"):
        net.add_address("br1", "not-an-ip/24", netns=netns)


def test_up_down_and_mac(netns):
    net.create_tap("tap0", netns=netns)
    net.set_up("tap0", netns=netns)
    assert net.get_link("tap0", netns).up
    net.set_down("tap0", netns=netns)
    assert not net.get_link("tap0", netns).up
    mac = net.link_mac("tap0", netns=netns)
    assert len(mac.split(":")) == 6 and mac == mac.lower()


def test_failures_name_the_device(netns):
    with pytest.raises(SalError, match="no interface 'ghost'"):
        net.link_mac("ghost", netns=netns)
    with pytest.raises(SalError, match=r"cannot set 'ghost' up in namespace 'zt-"):
        net.set_up("ghost", netns=netns)
    net.create_tap("taken", netns=netns)
    with pytest.raises(SalError, match=r"cannot create bridge 'taken'.*kind tap"):
        net.create_bridge("taken", netns=netns)
    with pytest.raises(SalError, match="not a bridge"):
        net.attach_to_bridge("lo", "taken", netns=netns)
    with pytest.raises(SalError, match="longer than 15"):
        net.create_bridge("a-very-long-bridge-name", netns=netns)
    with pytest.raises(SalError, match="must not"):
        net.create_tap("../x", netns=netns)
    net.delete_link("ghost", netns=netns)  # deleting what is gone is fine
