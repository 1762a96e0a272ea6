"""Submitting a signed deployment: what is accepted, and the precise reason for each refusal."""

import json

import pytest
from nacl.signing import SigningKey

from coordinator.models import Deployment, Job
from signing.keys import b64decode, b64encode
from tests.conftest import make_farm
from tests.coordinator.conftest import deployment_payload, make_online_node, sign

pytestmark = pytest.mark.django_db


def test_a_signed_deployment_is_dispatched_to_its_linked_node_on_submit(alice, online_node):
    response = alice.submit(deployment_payload(target={"node": online_node.pk}))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "dispatched"
    assert body["target"] == {"node": online_node.pk}
    assert body["job"]["node"] == online_node.pk
    assert body["job"]["attempt"] == 1
    job = Job.objects.get(deployment_id=body["id"])
    assert job.node == online_node
    assert [e.status for e in job.events.order_by("id")] == ["queued", "dispatched"]


def test_a_deployment_for_a_node_whose_link_is_down_waits_queued(alice):
    node = make_online_node(make_farm("farm-w"), linked=False)
    response = alice.submit(deployment_payload(target={"node": node.pk}))
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "queued"
    job = Job.objects.get(deployment_id=response.json()["id"])
    assert [e.status for e in job.events.order_by("id")] == ["queued", "waiting"]


def test_farm_target_picks_the_online_node_with_most_free_memory(alice):
    farm = make_farm("farm-b")
    make_online_node(farm, mru=4 * 2**30)
    roomy = make_online_node(farm, mru=64 * 2**30)
    response = alice.submit(deployment_payload(target={"farm": farm.pk}))
    assert response.status_code == 201, response.json()
    assert response.json()["job"]["node"] == roomy.pk


def _error(response) -> dict:
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def test_an_envelope_signed_by_someone_else_is_refused(alice, mallory, online_node):
    response = alice.submit(deployment_payload(target={"node": online_node.pk}), key=mallory.key)
    assert response.status_code == 403
    assert _error(response)["error"] == "signature_invalid"
    assert not Deployment.objects.exists()


def test_a_tampered_payload_is_refused(alice, online_node):
    envelope = sign(alice.key, deployment_payload(target={"node": online_node.pk}))
    payload = json.loads(b64decode(envelope["payload"], what="payload"))
    payload["script"] = 'vm_delete("everything")'
    envelope["payload"] = b64encode(json.dumps(payload).encode())
    response = alice.api.post(
        "/api/v1/deployments", {"envelope": envelope}, content_type="application/json"
    )
    assert response.status_code == 403
    assert _error(response)["error"] == "signature_invalid"


def test_a_revoked_key_no_longer_signs(alice, online_node):
    from ledger.models import UserKey
    from ledger.services import revoke_user_key

    revoke_user_key(key=UserKey.objects.get(user=alice.user))
    response = alice.submit(deployment_payload(target={"node": online_node.pk}))
    assert response.status_code == 403
    assert _error(response)["error"] == "no_keys"


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"expires_at": 1000}, 400, "expired"),
        ({"issued_at": 2**40, "expires_at": 2**40 + 10}, 400, "not_yet_valid"),
        ({"nonce": "not-hex"}, 400, "payload_invalid"),
        ({"name": "Bad Name"}, 400, "payload_invalid"),
        ({"target": {"node": 1, "farm": 1}}, 400, "payload_invalid"),
        ({"target": {"node": 999}}, 404, "unknown_node"),
        ({"target": {"farm": 999}}, 404, "unknown_farm"),
        ({"resources": {"cru": 1000}}, 409, "no_capacity"),
    ],
    ids=[
        "expired",
        "future",
        "bad-nonce",
        "bad-name",
        "two-targets",
        "unknown-node",
        "unknown-farm",
        "too-big",
    ],
)
def test_bad_payloads_get_a_specific_error(alice, online_node, overrides, status, code):
    payload = deployment_payload(target={"node": online_node.pk})
    payload.update(overrides)
    response = alice.submit(payload)
    assert response.status_code == status, response.json()
    assert _error(response)["error"] == code
    assert not Deployment.objects.exists()


def test_a_nonce_is_used_once(alice, online_node):
    payload = deployment_payload(target={"node": online_node.pk})
    assert alice.submit(payload).status_code == 201
    response = alice.submit(payload)
    assert response.status_code == 409
    assert _error(response)["error"] == "nonce_reused"
    assert Deployment.objects.count() == 1


def test_a_script_that_does_not_parse_reports_line_and_column(alice, online_node):
    payload = deployment_payload("let x = 1;\nlet y = (2 + ;\n", target={"node": online_node.pk})
    response = alice.submit(payload)
    assert response.status_code == 400
    body = _error(response)
    assert body["error"] == "script_parse"
    assert body["line"] == 2
    assert body["column"] >= 1
    assert "line 2" in body["message"]


def test_a_script_calling_outside_the_catalog_is_refused(alice, online_node):
    payload = deployment_payload('log("x"); launch_missiles(3)', target={"node": online_node.pk})
    response = alice.submit(payload)
    assert response.status_code == 400
    body = _error(response)
    assert body["error"] == "unknown_function"
    assert body["functions"] == ["launch_missiles"]


def test_an_offline_node_cannot_be_targeted(alice, online_node):
    online_node.status = "offline"
    online_node.save()
    response = alice.submit(deployment_payload(target={"node": online_node.pk}))
    assert response.status_code == 409
    assert _error(response)["error"] == "node_not_online"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"{}", b'{"envelope": "string"}', b'{"envelope": {"payloadType": 1}}'],
    ids=["not-json", "no-envelope", "envelope-string", "envelope-garbage"],
)
def test_malformed_bodies_are_4xx_json(alice, body):
    response = alice.api.generic(
        "POST", "/api/v1/deployments", body, content_type="application/json"
    )
    assert 400 <= response.status_code < 500
    assert "error" in _error(response)


def test_validate_compiles_without_deploying(alice):
    ok = alice.api.post(
        "/api/v1/scripts/validate",
        {"script": 'log("a"); now()'},
        content_type="application/json",
    )
    assert ok.status_code == 200
    assert ok.json()["functions"] == ["log", "now"]
    bad = alice.api.post(
        "/api/v1/scripts/validate", {"script": "let = 1"}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "script_parse"
    assert bad.json()["line"] == 1
    assert not Deployment.objects.exists()


def test_anonymous_users_cannot_deploy(client, online_node):
    payload = deployment_payload(target={"node": online_node.pk})
    response = client.post(
        "/api/v1/deployments",
        {"envelope": sign(SigningKey.generate(), payload)},
        content_type="application/json",
    )
    assert response.status_code in (401, 403)


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("path", ["/api/v1/deployments", "/api/v1/scripts/validate"])
def test_json_nested_100000_deep_is_a_400_not_a_500(alice, path):
    """Attack: a body nested 100,000 deep raised RecursionError in the JSON parser (500)."""
    response = alice.api.generic("POST", path, DEEP, content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert _error(response)["error"] == "malformed_json"


def test_a_signed_payload_nested_too_deep_is_refused(alice, online_node):
    response = alice.api.post(
        "/api/v1/deployments",
        {"envelope": sign(alice.key, DEEP)},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert _error(response)["error"] == "payload_invalid"
