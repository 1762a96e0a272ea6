"""Users manage their own keys; nodes read a user's keys to verify deployment signatures."""

import pytest
from nacl.signing import SigningKey
from rest_framework.test import APIClient

from ledger.models import UserKey
from signing.keys import public_key_hex
from tests.conftest import NodeClient, make_token, make_user

pytestmark = pytest.mark.django_db


def _api_for(user) -> APIClient:
    from rest_framework.authtoken.models import Token

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def _new_key() -> str:
    return public_key_hex(SigningKey.generate())


def test_user_adds_lists_and_revokes_a_key():
    api = _api_for(make_user("alice"))
    key = _new_key()
    created = api.post("/api/v1/keys", {"name": "laptop", "public_key": key}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["revoked"] is False
    listed = api.get("/api/v1/keys").json()["results"]
    assert [k["public_key"] for k in listed] == [key]
    revoked = api.post(f"/api/v1/keys/{created.json()['id']}/revoke")
    assert revoked.json()["revoked"] is True


def test_users_never_see_or_revoke_each_others_keys():
    alice, bob = _api_for(make_user("alice")), _api_for(make_user("bob"))
    key_id = alice.post(
        "/api/v1/keys", {"name": "k", "public_key": _new_key()}, format="json"
    ).json()["id"]
    assert bob.get("/api/v1/keys").json()["results"] == []
    assert bob.get(f"/api/v1/keys/{key_id}").status_code == 404
    assert bob.post(f"/api/v1/keys/{key_id}/revoke").status_code == 404
    assert UserKey.objects.get().revoked_at is None


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"name": "k", "public_key": "zz" * 32}, "invalid"),
        ({"name": "k", "public_key": "ab"}, "invalid"),
        ({"name": "", "public_key": "ab" * 32}, "invalid"),
        ({"public_key": "ab" * 32}, "invalid"),
    ],
)
def test_bad_keys_are_refused(payload, code):
    api = _api_for(make_user())
    response = api.post("/api/v1/keys", payload, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert not UserKey.objects.exists()


def test_the_same_key_cannot_be_registered_twice():
    key = _new_key()
    _api_for(make_user("alice")).post(
        "/api/v1/keys", {"name": "a", "public_key": key}, format="json"
    )
    again = _api_for(make_user("bob")).post(
        "/api/v1/keys", {"name": "b", "public_key": key}, format="json"
    )
    assert again.status_code == 409
    assert again.json()["error"] == "key_exists"


def test_anonymous_cannot_manage_keys(client):
    assert client.get("/api/v1/keys").status_code in (401, 403)


def test_a_registered_node_reads_a_users_keys_including_revocations(client, farm):
    user = make_user("alice")
    live = UserKey.objects.create(user=user, name="a", public_key=_new_key())
    from django.utils import timezone

    UserKey.objects.create(user=user, name="b", public_key=_new_key(), revoked_at=timezone.now())
    node = NodeClient(client)
    node.register(farm, enroll_token=make_token(farm))
    response = node.signed("GET", f"/api/v1/users/{user.pk}/keys")
    assert response.status_code == 200
    keys = {k["public_key"]: k["revoked"] for k in response.json()["keys"]}
    assert keys[live.public_key] is False
    assert len(keys) == 2 and sum(keys.values()) == 1


def test_user_keys_endpoint_needs_a_node_signature(client, farm):
    user = make_user("alice")
    assert client.get(f"/api/v1/users/{user.pk}/keys").json()["error"] == "missing_signature"
    stranger = NodeClient(client)
    assert stranger.signed("GET", f"/api/v1/users/{user.pk}/keys").status_code == 403


def test_a_key_spelled_in_upper_case_is_refused_not_folded():
    """One key, one spelling: the hex is a name (uniqueness, lookups), so it must be canonical."""
    api = _api_for(make_user())
    response = api.post(
        "/api/v1/keys", {"name": "k", "public_key": _new_key().upper()}, format="json"
    )
    assert response.status_code == 400
    assert "lowercase" in response.json()["message"]
    assert not UserKey.objects.exists()


def test_a_pending_node_cannot_read_a_users_keys(client, farm):
    """Attack: register without a token (anyone can) and read every user's keys as `pending`."""
    user = make_user("alice")
    UserKey.objects.create(user=user, name="a", public_key=_new_key())
    node = NodeClient(client)
    assert node.register(farm).json()["status"] == "pending"
    response = node.signed("GET", f"/api/v1/users/{user.pk}/keys")
    assert response.status_code == 403
    assert response.json()["error"] == "node_not_approved"


def test_a_decommissioned_node_cannot_read_a_users_keys(client, farm):
    from ledger.models import Node
    from ledger.services import decommission_node

    user = make_user("alice")
    node = NodeClient(client)
    node.register(farm, enroll_token=make_token(farm))
    decommission_node(node=Node.objects.get(), actor="test")
    response = node.signed("GET", f"/api/v1/users/{user.pk}/keys")
    assert response.status_code == 403


def test_staff_read_a_users_keys():
    user = make_user("alice")
    UserKey.objects.create(user=user, name="a", public_key=_new_key())
    response = _api_for(make_user("root", staff=True)).get(f"/api/v1/users/{user.pk}/keys")
    assert response.status_code == 200
    assert len(response.json()["keys"]) == 1
