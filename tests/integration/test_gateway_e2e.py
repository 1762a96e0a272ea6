"""A gateway name on the grid, end to end: signed scripts make https://blog.gw.test forward to a
user's VM, and nobody else can take the name or point one at that VM (issue 15's proof).

Real processes throughout: daphne, the coordinator worker, the agent with its redis-server and
runners, and a real Caddy the agent starts in the node's workload namespace (ports 80 and 443
there are the namespace's own, so nothing is reachable from outside it). The operator makes the
node a gateway in the ledger; the agent learns it from its uptime reply.

The VM is a stand-in, said plainly: an HTTP server bound to an overlay address in its own
namespace, joined by a veth to the overlay bridge in the node's namespace, exactly where a VM's
tap would be (tests/sal/overlay_web.py); booting a guest that serves HTTP costs far more under
TCG and proves nothing more about the gateway. The coordinator's inventory lists that address
as the first user's VM on another node, as that node's report would.
"""

import shutil
import tempfile
import time
from pathlib import Path

import pytest
import requests
from nacl.signing import SigningKey

from contracts.key_proof import sign_key_proof
from sal.caddy import Caddy
from signing.keys import public_key_hex
from tests.integration.conftest import wait_for
from tests.integration.test_deployments import User, running_grid
from tests.sal.conftest import net_required, netns_factory  # noqa: F401 - fixtures
from tests.sal.overlay_web import curl, start_fake_vm, wire_overlay

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("caddy") is None, reason="needs caddy (scripts/setup.sh)"),
]

PAGE = "the blog, served by a VM on the overlay"
MALLORY_VM = "4a1:2b3c:4d5e:6f71::99"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway.rhai"
EXAMPLE_BACKEND = '"[400:1234:5678::2]:80"'


@pytest.fixture
def data_dir():
    """Short on purpose: Caddy's admin socket path under it must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="zg-", dir="/tmp"))
    yield path
    Caddy(path / "gateway").stop()
    shutil.rmtree(path, ignore_errors=True)


def _shell(plane, code: str) -> str:
    return plane.manage("shell", "-c", code)


def _second_user(plane, name: str, node: int) -> User:
    """Another user of the grid with an API token and a registered signing key."""
    _shell(
        plane, f"from django.contrib.auth.models import User; User.objects.create_user({name!r})"
    )
    token = plane.manage("drf_create_token", name).split()[2]
    user = User(plane, token, SigningKey.generate(), node)
    challenge = requests.post(
        f"{plane.url}/api/v1/keys/challenge", headers=user.headers, timeout=5
    ).json()
    proof = sign_key_proof(
        user.key,
        user=challenge["user"],
        challenge=challenge["challenge"],
        issued_at=int(time.time()),
    )
    registered = requests.post(
        f"{plane.url}/api/v1/keys",
        json={"name": "laptop", "public_key": public_key_hex(user.key), "proof": proof},
        headers=user.headers,
        timeout=5,
    )
    assert registered.status_code == 201, registered.text
    return user


def _user_id(user: User) -> int:
    """The user's id, as the key challenge names it."""
    url = f"{user.plane.url}/api/v1/keys/challenge"
    return int(requests.post(url, headers=user.headers, timeout=5).json()["user"])


def _run(user: User, script: str) -> dict:
    done = user.wait_final(user.deploy(script)["id"], timeout=90)
    return done["job"]


def _https(netns: str, caddy: Caddy) -> tuple[int, str]:
    return curl(
        netns,
        "https://blog.gw.test/",
        resolve="blog.gw.test:443",
        cacert=str(caddy.root_certificate),
    )


def test_a_name_forwards_to_its_owners_vm_survives_restarts_and_stops_when_deleted(
    control_plane,
    start_agent,
    tmp_path,
    data_dir,
    netns_factory,  # noqa: F811
):
    netns = netns_factory()
    wire_overlay(netns)  # the node's overlay bridge, where VM taps go
    vm = start_fake_vm(netns, netns_factory(), "blog-vm", PAGE)
    caddy = Caddy(data_dir / "gateway", netns=netns)
    args = ("--workload-netns", netns)
    with running_grid(control_plane, start_agent, tmp_path, *args, data_dir=data_dir) as (
        alice,
        agent,
    ):
        mallory = _second_user(control_plane, "mallory", alice.node)
        # The operator makes the node a gateway; each user has a VM in the inventory (on
        # another node): alice's is the server above, mallory's is elsewhere on the overlay.
        _shell(
            control_plane,
            "from ledger.models import Node; from coordinator.models import Workload; "
            f"gw = Node.objects.get(pk={alice.node}); "
            "Node.objects.filter(pk=gw.pk).update(gateway_domain='gw.test'); "
            "other = Node.objects.create(farm=gw.farm, public_key='ab' * 32, status='online'); "
            f"Workload.objects.create(node=other, owner_id={_user_id(alice)}, kind='vm', "
            f"name='blog-vm', state='ready', details={{'mycelium_ip': '{vm.address}'}}); "
            f"Workload.objects.create(node=other, owner_id={_user_id(mallory)}, kind='vm', "
            f"name='vm', state='ready', details={{'mycelium_ip': '{MALLORY_VM}'}})",
        )
        wait_for(caddy.running, timeout=30, what="the agent to start the gateway's Caddy")

        # examples/gateway.rhai, as a user edits it: the backend is their VM's address.
        example = EXAMPLE.read_text()
        assert EXAMPLE_BACKEND in example
        script = example.replace(EXAMPLE_BACKEND, f'"{vm.backend}"')
        made = _run(alice, script)
        assert made["state"] == "succeeded", (made["error"], agent.log()[-3000:])
        assert made["result"] == {"url": "https://blog.gw.test/", "backends": [vm.backend]}
        assert _run(alice, script)["result"] == made["result"]  # a re-run is harmless
        wait_for(lambda: _https(netns, caddy)[0] == 200, timeout=30, what="https to the VM")
        assert _https(netns, caddy) == (200, PAGE)

        mine = f'["[{MALLORY_VM}]:80"]'
        taken = _run(mallory, f'gateway_name_create(#{{name: "blog", backends: {mine}}})')
        assert taken["state"] == "failed" and "already taken" in taken["error"], taken["error"]
        stolen = _run(
            mallory, f'gateway_name_create(#{{name: "mine", backends: ["{vm.backend}"]}})'
        )
        assert stolen["state"] == "failed"
        assert "not the address of a VM of yours" in stolen["error"], stolen["error"]
        assert _run(mallory, "gateway_list()")["result"] == []

        # The agent restarts and Caddy died meanwhile: the agent brings the name back.
        assert agent.stop() == 0
        caddy.stop()
        assert _https(netns, caddy)[0] == 0
        start_agent("--ledger", control_plane.url, *args, data_dir=data_dir)
        wait_for(lambda: _https(netns, caddy)[0] == 200, timeout=60, what="the name after restart")

        info = _run(alice, 'gateway_info("blog")')["result"]
        assert [h["up"] for h in info["health"]] == [True]
        assert _run(alice, 'gateway_delete("blog")')["state"] == "succeeded"
        assert _run(alice, 'gateway_delete("blog")')["state"] == "succeeded"  # a re-run too
        status, _ = _https(netns, caddy)  # the VM still serves; the gateway no longer forwards
        assert status != 200
        assert _run(alice, "gateway_list()")["result"] == []
