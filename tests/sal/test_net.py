"""net SAL inside throwaway network namespaces; the host's links are never touched."""

from sal.command import run_json


def test_netns_fixture_has_only_loopback(netns):
    links = run_json(["ip", "-n", netns, "-json", "link", "show"])
    assert [link["ifname"] for link in links] == ["lo"]
