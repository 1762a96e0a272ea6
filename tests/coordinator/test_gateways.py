"""Gateways in the control plane: an operator marks a node a gateway, its names are reserved
grid-wide for the users its jobs run for, backends must be the user's own VMs, and scripts that
use gateway functions go to a gateway node."""

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from coordinator.models import Deployment, Job, Workload
from ledger.models import AuditEntry, GatewayHost
from signing.node_request import sign_request
from tests.conftest import make_farm
from tests.coordinator.conftest import deployment_payload, make_online_node

pytestmark = pytest.mark.django_db

CLAIM = "/api/v1/gateway-hosts/claim"
RELEASE = "/api/v1/gateway-hosts/release"
ALICE_VM = "4a1:2b3c:4d5e:6f71::10"
MALLORY_VM = "4a1:2b3c:4d5e:6f71::20"


@pytest.fixture
def farm(db):
    return make_farm("gateways")


@pytest.fixture
def gw(farm):
    return make_online_node(
        farm, gateway_domain="gw.test", gateway_addresses=["203.0.113.7", "2001:db8::7"]
    )


def _served(node, tenant) -> None:
    """The node was sent a job of `tenant` (a gateway acts only for such users)."""
    deployment = Deployment.objects.create(
        owner=tenant.user,
        name="d",
        envelope={},
        payload="{}",
        signer=tenant.user.keys.first(),
        script_sha256="0" * 64,
        nonce=f"n-{tenant.user.pk}-{node.pk}",
        target_node=node,
        resources={},
        expires_at="2100-01-01T00:00:00Z",
    )
    Job.objects.create(deployment=deployment, node=node, max_attempts=1, timeout=60)


def _vm(tenant, node, address: str) -> None:
    """The user's VM at `address`, as its node's inventory reported it."""
    Workload.objects.create(
        node=node,
        owner=tenant.user,
        kind="vm",
        name=f"vm{address[-2:]}",
        state="ready",
        details={"mycelium_ip": address},
    )


def _node_post(node, path: str, body: dict):
    raw = json.dumps(body).encode()
    return Client().post(
        path,
        raw,
        content_type="application/json",
        HTTP_AUTHORIZATION=sign_request(node.signing_key, "POST", path, raw),
    )


def _claim(node, tenant, host: str, backends: list[str], kind: str = "name"):
    body = {"owner": tenant.user.pk, "host": host, "kind": kind, "backends": backends}
    return _node_post(node, CLAIM, body)


def test_an_operator_marks_a_node_as_a_gateway_and_users_see_it(farm, gw):
    make_online_node(farm)
    listed = Client().get("/api/v1/nodes?gateway=true").json()["results"]
    assert [n["id"] for n in listed] == [gw.pk]
    assert listed[0]["gateway"] == {
        "domain": "gw.test",
        "addresses": ["203.0.113.7", "2001:db8::7"],
        "any_backend": False,
    }
    others = Client().get("/api/v1/nodes?gateway=false").json()["results"]
    assert [n["gateway"] for n in others] == [None]


def test_the_uptime_reply_tells_the_node_it_is_a_gateway(gw):
    body = json.dumps({"uptime": 5, "health": []}).encode()
    path = f"/api/v1/nodes/{gw.pk}/uptime"
    reply = (
        Client()
        .post(
            path,
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=sign_request(gw.signing_key, "POST", path, body),
        )
        .json()
    )
    assert reply["gateway"]["domain"] == "gw.test"


def test_the_admin_edits_a_nodes_gateway_fields_and_refuses_a_bad_domain(gw):
    admin = User.objects.create_superuser("root", "root@example.net", "pw")
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/ledger/node/{gw.pk}/change/").content.decode()
    assert 'name="gateway_domain"' in page and 'name="gateway_any_backend"' in page
    form = {
        "farm": gw.farm_id,
        "gateway_domain": "Not A Domain",
        "gateway_addresses": '["203.0.113.7"]',
        "workloads-TOTAL_FORMS": 0,  # the node page's inline of workloads, left as it is
        "workloads-INITIAL_FORMS": 0,
    }
    refused = client.post(f"/admin/ledger/node/{gw.pk}/change/", form)
    assert refused.status_code == 200 and "lowercase DNS name" in refused.content.decode()
    form["gateway_domain"] = "gw2.test"
    assert client.post(f"/admin/ledger/node/{gw.pk}/change/", form).status_code == 302
    gw.refresh_from_db()
    assert gw.gateway_domain == "gw2.test"


def test_a_name_is_first_come_first_served_and_a_rerun_is_harmless(gw, alice, mallory):
    _served(gw, alice)
    _served(gw, mallory)
    _vm(alice, gw, ALICE_VM)
    _vm(mallory, gw, MALLORY_VM)

    first = _claim(gw, alice, "blog.gw.test", [f"[{ALICE_VM}]:80"])
    assert first.status_code == 201, first.json()
    assert _claim(gw, alice, "blog.gw.test", [f"[{ALICE_VM}]:80"]).status_code == 200

    taken = _claim(gw, mallory, "blog.gw.test", [f"[{MALLORY_VM}]:80"])
    assert taken.status_code == 409
    assert taken.json()["error"] == "host_taken"
    assert "alice" not in taken.json()["message"]
    assert GatewayHost.objects.get(host="blog.gw.test").owner == alice.user
    assert AuditEntry.objects.filter(kind="gateway_host").count() == 1

    # Releasing someone else's name does nothing; the owner's release frees it.
    assert _node_post(gw, RELEASE, {"owner": mallory.user.pk, "host": "blog.gw.test"}).json() == {
        "released": False
    }
    assert _node_post(gw, RELEASE, {"owner": alice.user.pk, "host": "blog.gw.test"}).json() == {
        "released": True
    }
    assert _claim(gw, mallory, "blog.gw.test", [f"[{MALLORY_VM}]:80"]).status_code == 201


def test_a_user_cannot_point_a_name_at_another_users_vm(gw, alice, mallory):
    _served(gw, mallory)
    _vm(alice, gw, ALICE_VM)
    refused = _claim(gw, mallory, "evil.gw.test", [f"[{ALICE_VM}]:80"])
    assert refused.status_code == 403
    assert refused.json()["error"] == "backend_not_owned"
    assert refused.json()["backends"] == [f"[{ALICE_VM}]:80"]
    assert not GatewayHost.objects.exists()


def test_an_operator_may_let_a_gateway_forward_to_any_overlay_address(gw, mallory):
    gw.gateway_any_backend = True
    gw.save()
    _served(gw, mallory)
    assert _claim(gw, mallory, "any.gw.test", [f"[{ALICE_VM}]:80"]).status_code == 201
    outside = _claim(gw, mallory, "out.gw.test", ["[2001:db8::1]:80"])
    assert outside.status_code == 400 and outside.json()["error"] == "backend_invalid"


def test_a_vm_on_a_node_without_mycelium_is_a_backend_by_its_node_local_address(gw, alice, mallory):
    """The grid in a box: `--mycelium local` VMs have fd00::/8 addresses, which are backends
    for their owner only, and never for `any_backend` (a gateway's own private networks)."""
    local_vm = "fd12:3456:789a:bcde::10"
    _served(gw, alice)
    _served(gw, mallory)
    _vm(alice, gw, local_vm)
    assert _claim(gw, alice, "box.gw.test", [f"[{local_vm}]:80"]).status_code == 201
    stolen = _claim(gw, mallory, "steal.gw.test", [f"[{local_vm}]:80"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "backend_invalid"
    gw.gateway_any_backend = True
    gw.save()
    stolen = _claim(gw, mallory, "steal.gw.test", [f"[{local_vm}]:80"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "backend_invalid"


@pytest.mark.parametrize(
    ("host", "kind", "error"),
    [
        ("blog.other.test", "name", "host_invalid"),
        ("a.b.gw.test", "name", "host_invalid"),
        ("www.gw.test", "fqdn", "host_invalid"),
        ("Bad_Name.gw.test", "name", "invalid"),
    ],
)
def test_hosts_outside_the_rules_are_refused_with_a_reason(gw, alice, host, kind, error):
    _served(gw, alice)
    _vm(alice, gw, ALICE_VM)
    refused = _claim(gw, alice, host, [f"[{ALICE_VM}]:80"], kind=kind)
    assert refused.status_code == 400
    assert refused.json()["error"] == error
    assert refused.json()["message"]


def test_only_a_gateway_may_reserve_and_only_for_users_it_runs_jobs_for(farm, gw, alice):
    plain = make_online_node(farm)
    _served(plain, alice)
    _vm(alice, plain, ALICE_VM)
    refused = _claim(plain, alice, "blog.gw.test", [f"[{ALICE_VM}]:80"])
    assert refused.status_code == 403 and refused.json()["error"] == "not_a_gateway"

    stranger = _claim(gw, alice, "blog.gw.test", [f"[{ALICE_VM}]:80"])
    assert stranger.status_code == 403 and stranger.json()["error"] == "not_your_user"

    unsigned = Client().post(CLAIM, {}, content_type="application/json")
    assert unsigned.status_code == 401


def test_scripts_with_gateway_functions_go_to_a_gateway_node(farm, gw, alice):
    script = 'gateway_name_create(#{name: "blog", backends: ["[400::1]:80"]})'
    plain = make_online_node(farm)

    on_farm = alice.submit(deployment_payload(script, target={"farm": farm.pk}))
    assert on_farm.status_code == 400 and on_farm.json()["error"] == "gateway_needs_node"

    on_plain = alice.submit(deployment_payload(script, target={"node": plain.pk}))
    assert on_plain.status_code == 409 and on_plain.json()["error"] == "not_a_gateway"

    on_gateway = alice.submit(deployment_payload(script, target={"node": gw.pk}))
    assert on_gateway.status_code == 201, on_gateway.json()
