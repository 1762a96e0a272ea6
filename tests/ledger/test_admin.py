"""The operator's console: tokens shown once, nodes approved and decommissioned."""

import pytest

from ledger.choices import NodeStatus
from ledger.models import EnrollmentToken, Node
from tests.conftest import NodeClient, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    client.force_login(make_user("op", staff=True))
    return client


def test_creating_a_token_shows_the_secret_once_and_stores_only_its_hash(operator_client, farm):
    response = operator_client.post(
        "/admin/ledger/enrollmenttoken/add/",
        {"farm": farm.pk, "label": "rack 1", "uses_left": 3, "valid_days": 2},
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    secret = next(m for m in messages if "zet_" in m).split("<code>")[1].split("</code>")[0]
    token = EnrollmentToken.objects.get()
    assert token.uses_left == 3
    assert secret not in token.secret_hash
    from ledger.models import hash_token_secret

    assert token.secret_hash == hash_token_secret(secret)
    page = operator_client.get(f"/admin/ledger/enrollmenttoken/{token.pk}/change/")
    assert secret.encode() not in page.content


def test_node_list_shows_coloured_status_and_capacity(operator_client, farm):
    NodeClient(operator_client).register(farm)
    page = operator_client.get("/admin/ledger/node/")
    assert b"Pending approval" in page.content
    assert b'<b class="node-status node-status-pending">Pending approval</b>' in page.content
    assert b"ledger/admin.css" in page.content and b"style=" not in page.content  # CSP: no inline
    assert b"8.0 GiB" in page.content


def test_approve_and_decommission_actions(operator_client, farm):
    NodeClient(operator_client).register(farm)
    node = Node.objects.get()
    operator_client.post(
        "/admin/ledger/node/", {"action": "approve", "_selected_action": [node.pk]}
    )
    assert Node.objects.get().status == NodeStatus.ONLINE
    operator_client.post(
        "/admin/ledger/node/", {"action": "decommission", "_selected_action": [node.pk]}
    )
    assert Node.objects.get().status == NodeStatus.DECOMMISSIONED


def test_node_page_shows_uptime_history(operator_client, farm):
    node = NodeClient(operator_client)
    node_id = node.register(farm).json()["id"]
    node.uptime(node_id, uptime=4242, health=["no_disk"])
    page = operator_client.get(f"/admin/ledger/node/{node_id}/change/")
    assert b"4242s" in page.content
    assert b"no_disk" in page.content


def test_api_approval_needs_the_farms_owner_or_staff(client, farm):
    node = NodeClient(client)
    node_id = node.register(farm).json()["id"]
    client.force_login(make_user("mallory"))
    assert client.post(f"/api/v1/nodes/{node_id}/approve").status_code == 404
    client.force_login(make_user("op", staff=True))
    assert client.post(f"/api/v1/nodes/{node_id}/approve").json()["status"] == "online"
