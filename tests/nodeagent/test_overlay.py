"""Where databases listen, given the node's overlay (nodeagent.overlay.database_address)."""

import ipaddress

from nodeagent.overlay import Overlay, current, database_address, publish

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
