"""Where databases listen, given the node's overlay (nodeagent.overlay.database_address), and
the node-local VM network a node without Mycelium runs (`--mycelium local`)."""

import ipaddress

from nodeagent.config import _mycelium
from nodeagent.overlay import (
    Overlay,
    current,
    database_address,
    local_subnet,
    publish,
    start_local,
)
from sal import net
from tests.sal.conftest import net_required, netns, netns_factory  # noqa: F401 - fixtures

SUBNET = ipaddress.IPv6Network("4a1:2b3c:4d5e:6f70::/64")
ADDRESS = ipaddress.IPv6Address("4a1:2b3c:4d5e:6f70:1234::1")


def test_databases_listen_on_the_overlay_gateway_when_the_overlay_is_the_hosts():
    overlay = Overlay(subnet=SUBNET, address=ADDRESS, bridge="zos-myc")
    assert database_address(overlay, "127.0.0.1") == "4a1:2b3c:4d5e:6f70::1"


def test_without_an_overlay_or_with_one_in_another_namespace_they_keep_the_fallback():
    assert database_address(None, "127.0.0.1") == "127.0.0.1"
    elsewhere = Overlay(subnet=SUBNET, address=ADDRESS, bridge="zos-myc", netns="workloads")
    assert database_address(elsewhere, "127.0.0.1") == "127.0.0.1"


def test_the_published_overlay_reads_back(store):
    assert current(store.redis) is None
    overlay = Overlay(subnet=SUBNET, address=ADDRESS, bridge="zos-myc", netns="ns1")
    publish(store.redis, overlay)
    assert current(store.redis) == overlay


def test_a_node_local_network_is_a_private_64_of_its_own_per_node():
    first, second = local_subnet(b"\1" * 32), local_subnet(b"\2" * 32)
    assert first.prefixlen == 64 and first.subnet_of(ipaddress.IPv6Network("fd00::/8"))
    assert first == local_subnet(b"\1" * 32) and first != second


def test_the_node_local_network_is_the_bridge_in_the_nodes_namespace(netns):  # noqa: F811
    seed = b"\7" * 32
    found = start_local(seed, netns)
    gateway = found.subnet.network_address + 1
    assert (found.bridge, found.netns, found.address) == ("zos-myc", netns, gateway)
    bridge = net.get_link("zos-myc", netns)
    assert bridge is not None and net.get_link("zos-myc") is None  # not on the host
    shown = net.netns_exec(netns, ["ip", "-6", "-json", "addr", "show", "dev", "zos-myc"]).stdout
    assert f'"local":"{gateway}"' in shown.replace(" ", "")
    assert start_local(seed, netns) == found  # a restart finds it wired


def test_the_agent_takes_local_as_its_mycelium_setting():
    assert _mycelium("local") == "local"
    assert _mycelium("off") is None
