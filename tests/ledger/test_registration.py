"""Registration: idempotent upsert by key; enrollment tokens approve; bad tokens write nothing.

Every test runs twice: through Django's test client (the DRF view), and through the ASGI
application, where the ledger's ingest answers a plainly valid registration in front of Django
(ledger/ingest.py): both must give the same answers and write the same rows.
"""

from datetime import timedelta

import pytest

from ledger.choices import AuditKind, NodeStatus
from ledger.models import AuditEntry, EnrollmentToken, Node
from tests.conftest import CAPACITY, NodeClient, make_farm, make_token
from tests.ledger.asgi_client import AsgiClient

# The ingest writes from a thread of its own: its rows must be committed to be seen.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["django", "ingest"])
def client(request, client):
    return client if request.param == "django" else AsgiClient()


def test_node_without_token_registers_pending(node: NodeClient, farm):
    response = node.register(farm)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["public_key"] == node.public_key
    assert body["capacity"] == CAPACITY
    assert body["interval"] == 60
    assert AuditEntry.objects.filter(kind=AuditKind.NODE_REGISTERED).count() == 1


def test_valid_token_approves_at_once_and_is_consumed(node: NodeClient, farm):
    token = make_token(farm, uses=1)
    response = node.register(farm, enroll_token=token)
    assert response.status_code == 201
    assert response.json()["status"] == "online"
    assert EnrollmentToken.objects.get().uses_left == 0


def test_registration_is_an_idempotent_upsert(node: NodeClient, farm):
    token = make_token(farm, uses=2)
    first = node.register(farm, enroll_token=token).json()
    again = node.register(farm, enroll_token=token, serial="SN-2")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert Node.objects.count() == 1
    assert Node.objects.get().serial == "SN-2"
    # An approved node re-registering does not spend another use.
    assert EnrollmentToken.objects.get().uses_left == 1


def test_pending_node_is_approved_when_it_comes_back_with_a_token(node: NodeClient, farm):
    node.register(farm)
    response = node.register(farm, enroll_token=make_token(farm))
    assert response.json()["status"] == "online"


def _refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code
    assert body["message"]
    return body


def test_unknown_token_is_refused_and_nothing_written(node: NodeClient, farm):
    _refused(node.register(farm, enroll_token="zet_nope"), 403, "enroll_token_invalid")
    assert not Node.objects.exists()


def test_expired_token_is_refused(node: NodeClient, farm):
    token = make_token(farm, ttl=timedelta(seconds=-1))
    body = _refused(node.register(farm, enroll_token=token), 403, "enroll_token_expired")
    assert "expired" in body["message"]
    assert not Node.objects.exists()


def test_spent_token_is_refused_and_reuse_logged_as_security_event(client, farm):
    token = make_token(farm, uses=1)
    assert NodeClient(client).register(farm, enroll_token=token).status_code == 201
    intruder = NodeClient(client)
    _refused(intruder.register(farm, enroll_token=token), 403, "enroll_token_spent")
    assert not Node.objects.filter(public_key=intruder.public_key).exists()
    event = AuditEntry.objects.get(kind=AuditKind.SECURITY)
    assert "spent" in event.message
    assert intruder.public_key in event.actor


def test_token_of_another_farm_is_refused(node: NodeClient, farm):
    other = make_farm("farm2")
    _refused(node.register(farm, enroll_token=make_token(other)), 403, "enroll_token_foreign")
    assert not Node.objects.exists()
    assert EnrollmentToken.objects.get().uses_left == 1
    assert AuditEntry.objects.filter(kind=AuditKind.SECURITY).count() == 1


def test_unknown_farm_is_refused(node: NodeClient, farm):
    response = node.signed(
        "POST", "/api/v1/nodes", {"farm": 999, "capacity": CAPACITY, "interfaces": []}
    )
    _refused(response, 404, "unknown_farm")
    assert not Node.objects.exists()


def test_node_cannot_move_itself_to_another_farm(node: NodeClient, farm):
    node.register(farm)
    _refused(node.register(make_farm("farm2")), 409, "farm_mismatch")
    assert Node.objects.get().farm == farm


def test_decommissioned_node_cannot_register_again(node: NodeClient, farm):
    from ledger.services import decommission_node

    node.register(farm)
    decommission_node(node=Node.objects.get(), actor="user:op")
    _refused(node.register(farm), 403, "node_decommissioned")
    assert Node.objects.get().status == NodeStatus.DECOMMISSIONED
