"""The gateway SAL drives a real Caddy in a test namespace: names forwarded to an overlay backend.

Caddy runs inside a fresh network namespace (its ports 80 and 443 are the namespace's own), the
backend is an HTTP server on an overlay address in a second namespace joined to the gateway's
overlay bridge (tests/sal/overlay_web.py), and the client is curl inside the gateway namespace
with the name resolved to it. TLS certificates come from Caddy's internal CA, whose root the
client trusts for these requests only.
"""

import shutil
import tempfile
from pathlib import Path

import pytest

from sal.caddy import Caddy, CaddyError, Route, dial_address
from tests.sal.overlay_web import curl, start_fake_vm, wait_for, wire_overlay

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("caddy") is None, reason="needs caddy (scripts/setup.sh)"),
]


@pytest.fixture
def state_dir():
    # Short: Caddy's admin socket path must fit in a sun_path.
    root = Path(tempfile.mkdtemp(prefix="zg-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def gateway(netns_factory, state_dir):
    netns = netns_factory()
    wire_overlay(netns)
    caddy = Caddy(state_dir, netns=netns)
    yield caddy
    caddy.stop()


def _https(caddy: Caddy, host: str) -> tuple[int, str]:
    return curl(
        caddy.netns,
        f"https://{host}/",
        resolve=f"{host}:443",
        cacert=str(caddy.root_certificate),
    )


def test_a_name_is_served_over_https_to_its_backend_until_it_is_removed(gateway, netns_factory):
    vm = start_fake_vm(gateway.netns, netns_factory(), "blog-vm", "hello from the blog")
    route = Route("u1-blog", ("blog.gw.test",), (vm.backend,), tls=True)
    gateway.sync(lambda: [route])

    assert wait_for(lambda: _https(gateway, "blog.gw.test")[0] == 200, "https through caddy")
    assert _https(gateway, "blog.gw.test") == (200, "hello from the blog")
    status, _ = curl(gateway.netns, "http://blog.gw.test/", resolve="blog.gw.test:80")
    assert status == 308  # plain HTTP is redirected to HTTPS

    [health] = gateway.health([vm.backend])
    assert health["up"] is True and health["backend"] == vm.backend
    vm.stop()
    [health] = gateway.health([vm.backend])
    assert health["up"] is False and health["error"]

    gateway.sync(list)
    status, _ = _https(gateway, "blog.gw.test")
    assert status != 200


def test_routes_survive_a_caddy_restart(gateway, netns_factory):
    vm = start_fake_vm(gateway.netns, netns_factory(), "web", "still here")
    gateway.sync(lambda: [Route("u2-web", ("web.gw.test",), (vm.backend,), tls=True)])
    wait_for(lambda: _https(gateway, "web.gw.test")[0] == 200, "the first https answer")

    gateway.stop()
    assert not gateway.running()
    gateway.ensure_running()  # from the saved config alone, as after a reboot

    assert wait_for(lambda: _https(gateway, "web.gw.test")[1] == "still here", "after restart")


def test_a_route_without_tls_is_plain_http(gateway, netns_factory):
    vm = start_fake_vm(gateway.netns, netns_factory(), "plain", "plain page")
    gateway.sync(lambda: [Route("u3-plain", ("plain.gw.test",), (vm.backend,), tls=False)])

    def plain():
        return curl(gateway.netns, "http://plain.gw.test/", resolve="plain.gw.test:80")

    wait_for(lambda: plain()[0] == 200, "plain http")
    assert plain() == (200, "plain page")


@pytest.mark.parametrize(
    "backend",
    ["400::1", "[400::1]:0", "[400::1]:70000", "400::1:80", "host:80", "[nonsense]:80", 80],
)
def test_a_bad_backend_is_refused_with_what_to_write(backend):
    with pytest.raises(CaddyError, match="not an address and port"):
        dial_address(backend)


def test_backends_are_compared_in_one_canonical_form():
    assert dial_address("[0400:0000::0001]:80") == "[400::1]:80"
    assert dial_address("10.0.0.1:8080") == "10.0.0.1:8080"


def test_a_bad_host_name_is_refused_before_caddy_sees_it(state_dir):
    caddy = Caddy(state_dir)
    with pytest.raises(CaddyError, match="not a valid host name"):
        caddy.config([Route("u1-x", ("Bad_Host.gw.test",), ("[400::1]:80",))])
