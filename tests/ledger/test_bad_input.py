"""Every malformed, forged, replayed or misdirected node request: 4xx JSON, nothing written."""

import json
import time

import pytest
from django.test import override_settings

from ledger.models import Node, UptimeReport
from signing.node_request import sign_request
from tests.conftest import NodeClient, registration

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/nodes"


def _assert_refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code, body
    return body


@pytest.fixture
def nothing_written():
    yield
    assert not Node.objects.exists()
    assert not UptimeReport.objects.exists()


@pytest.mark.usefixtures("nothing_written")
class TestRegistrationRefusals:
    def test_malformed_json(self, node, farm):
        _assert_refused(node.signed("POST", REGISTER, body=b'{"farm": '), 400, "malformed_json")

    def test_missing_fields_are_named(self, node, farm):
        body = _assert_refused(node.signed("POST", REGISTER, {"farm": farm.pk}), 400, "invalid")
        assert {"capacity", "interfaces"} <= set(body["fields"])

    def test_wrong_types(self, node, farm):
        payload = registration(farm, capacity={"cru": "many", "mru": 1, "sru": 1, "hru": 1})
        body = _assert_refused(node.signed("POST", REGISTER, payload), 400, "invalid")
        assert "cru" in body["fields"]["capacity"]

    def test_negative_capacity(self, node, farm):
        payload = registration(farm, capacity={"cru": -1, "mru": 1, "sru": 1, "hru": 1})
        _assert_refused(node.signed("POST", REGISTER, payload), 400, "invalid")

    def test_json_that_is_not_an_object(self, node, farm):
        _assert_refused(node.signed("POST", REGISTER, [1, 2]), 400, "invalid")

    @override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
    def test_oversized_body(self, node, farm):
        payload = registration(farm, serial="x" * 4096)
        _assert_refused(node.signed("POST", REGISTER, payload), 413, "body_too_large")

    def test_no_signature(self, node, farm):
        body = json.dumps(registration(farm)).encode()
        _assert_refused(node.send("POST", REGISTER, body, None), 401, "missing_signature")

    def test_bad_base64_signature(self, node, farm):
        body = json.dumps(registration(farm)).encode()
        header = sign_request(node.key, "POST", REGISTER, body).rsplit("sig=", 1)[0] + "sig=!!!"
        _assert_refused(node.send("POST", REGISTER, body, header), 401, "bad_base64")

    def test_malformed_header(self, node, farm):
        body = json.dumps(registration(farm)).encode()
        header = "ZOS-Ed25519 key=abc"
        _assert_refused(node.send("POST", REGISTER, body, header), 401, "bad_auth_header")

    def test_signature_by_another_key(self, client, farm):
        node, impostor = NodeClient(client), NodeClient(client)
        body = json.dumps(registration(farm)).encode()
        forged = sign_request(impostor.key, "POST", REGISTER, body).replace(
            impostor.public_key, node.public_key
        )
        resp = node.send("POST", REGISTER, body, forged)
        _assert_refused(resp, 401, "signature_invalid")

    def test_body_tampered_after_signing(self, node, farm):
        body = json.dumps(registration(farm)).encode()
        header = sign_request(node.key, "POST", REGISTER, body)
        tampered = body.replace(b'"cru": 4', b'"cru": 64')
        _assert_refused(node.send("POST", REGISTER, tampered, header), 401, "signature_invalid")

    def test_signature_for_another_path(self, node, farm):
        body = json.dumps(registration(farm)).encode()
        header = sign_request(node.key, "POST", "/api/v1/nodes/1/uptime", body)
        _assert_refused(node.send("POST", REGISTER, body, header), 401, "signature_invalid")

    # 30 s past the 300 s window: the signed ts is whole seconds and a busy machine may take a
    # moment to serve, which pulled +301 back inside the window once in CI.
    @pytest.mark.parametrize("offset", [-330, 330, -86400])
    def test_stale_or_future_timestamp_reports_server_time(self, node, farm, offset):
        resp = node.signed("POST", REGISTER, registration(farm), ts=int(time.time()) + offset)
        body = _assert_refused(resp, 401, "timestamp_skew")
        assert abs(body["server_time"] - time.time()) < 5


def test_replayed_request_is_refused(node: NodeClient, farm):
    body = json.dumps(registration(farm)).encode()
    header = sign_request(node.key, "POST", REGISTER, body)
    assert node.send("POST", REGISTER, body, header).status_code == 201
    _assert_refused(node.send("POST", REGISTER, body, header), 401, "nonce_replayed")


def test_uptime_from_unknown_key_is_refused(node: NodeClient, farm):
    _assert_refused(node.uptime(1), 403, "unknown_node")
    assert not UptimeReport.objects.exists()


def test_a_node_cannot_report_as_another_node(client, farm):
    victim, attacker = NodeClient(client), NodeClient(client)
    victim_id = victim.register(farm).json()["id"]
    attacker.register(farm)
    _assert_refused(attacker.uptime(victim_id), 403, "node_mismatch")
    _assert_refused(attacker.uptime(victim.public_key), 403, "node_mismatch")
    assert not UptimeReport.objects.exists()


def test_decommissioned_node_cannot_report(node: NodeClient, farm):
    from ledger.services import decommission_node

    node_id = node.register(farm).json()["id"]
    decommission_node(node=Node.objects.get(), actor="user:op")
    _assert_refused(node.uptime(node_id), 403, "node_decommissioned")
    assert not UptimeReport.objects.exists()


def test_bad_health_flag_is_refused(node: NodeClient, farm):
    node_id = node.register(farm).json()["id"]
    _assert_refused(node.uptime(node_id, health=["DROP TABLE"]), 400, "invalid")
    assert not UptimeReport.objects.exists()


def test_unknown_api_path_answers_json_404(client):
    resp = client.get("/api/v1/does-not-exist")
    _assert_refused(resp, 404, "not_found")


def test_a_recased_key_cannot_replay_a_registration(client, farm):
    """Attack: re-send a captured registration with one hex letter of key= upper-cased."""
    from tests.conftest import make_token

    node = NodeClient(client)
    while not any(c in "abcdef" for c in node.public_key):
        node = NodeClient(client)
    body = json.dumps(registration(farm, enroll_token=make_token(farm, uses=5))).encode()
    header = sign_request(node.key, "POST", REGISTER, body)
    assert node.send("POST", REGISTER, body, header).status_code == 201
    lower = node.public_key
    i = next(i for i, c in enumerate(lower) if c in "abcdef")
    recased = header.replace(f"key={lower}", f"key={lower[:i]}{lower[i].upper()}{lower[i + 1 :]}")
    body_json = _assert_refused(node.send("POST", REGISTER, body, recased), 401, "bad_public_key")
    assert "lowercase" in body_json["message"]
    assert list(Node.objects.values_list("public_key", flat=True)) == [lower]


def test_keys_with_upper_case_hex_are_refused_outright(client, farm):
    node = NodeClient(client)
    body = json.dumps(registration(farm)).encode()
    header = sign_request(node.key, "POST", REGISTER, body)
    upper = header.replace(node.public_key, node.public_key.upper())
    _assert_refused(node.send("POST", REGISTER, body, upper), 401, "bad_public_key")
    assert not Node.objects.exists()


def test_a_registration_nested_100000_deep_is_malformed_json(node: NodeClient, farm):
    body = b"[" * 100_000 + b"]" * 100_000
    _assert_refused(node.signed("POST", REGISTER, body=body), 400, "malformed_json")
    assert not Node.objects.exists()
