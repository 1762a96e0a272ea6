"""Users manage their own keys; nodes read a user's keys to verify deployment signatures."""

import time

import pytest
from nacl.signing import SigningKey
from rest_framework.test import APIClient

from contracts.key_proof import sign_key_proof
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


def _challenge(api: APIClient) -> dict:
    response = api.post("/api/v1/keys/challenge")
    assert response.status_code == 201, response.content
    return response.json()


def _register(api: APIClient, name: str, key: SigningKey | None = None, **proof_overrides):
    """What `zos key register` does: ask for a challenge, sign the proof with the key itself."""
    key = key or SigningKey.generate()
    challenge = _challenge(api)
    fields = {
        "user": challenge["user"],
        "challenge": challenge["challenge"],
        "issued_at": int(time.time()),
        **proof_overrides,
    }
    proof = sign_key_proof(key, **fields)
    return api.post(
        "/api/v1/keys",
        {"name": name, "public_key": public_key_hex(key), "proof": proof},
        format="json",
    )


def test_user_adds_lists_and_revokes_a_key():
    api = _api_for(make_user("alice"))
    signing_key = SigningKey.generate()
    key = public_key_hex(signing_key)
    created = _register(api, "laptop", signing_key)
    assert created.status_code == 201, created.content
    assert created.json()["revoked"] is False
    listed = api.get("/api/v1/keys").json()["results"]
    assert [k["public_key"] for k in listed] == [key]
    revoked = api.post(f"/api/v1/keys/{created.json()['id']}/revoke")
    assert revoked.json()["revoked"] is True


def test_users_never_see_or_revoke_each_others_keys():
    alice, bob = _api_for(make_user("alice")), _api_for(make_user("bob"))
    key_id = _register(alice, "k").json()["id"]
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
    key = SigningKey.generate()
    assert _register(_api_for(make_user("alice")), "a", key).status_code == 201
    again = _register(_api_for(make_user("bob")), "b", key)
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


def test_someone_elses_public_key_cannot_be_registered_without_its_private_key():
    """Attack: squat a key you do not hold (another user's, not yet registered)."""
    victim = SigningKey.generate()
    api = _api_for(make_user("mallory"))
    bare = api.post(
        "/api/v1/keys", {"name": "k", "public_key": public_key_hex(victim)}, format="json"
    )
    assert bare.status_code == 400
    assert bare.json()["error"] == "invalid"
    assert "proof" in bare.json()["fields"]
    challenge = _challenge(api)
    forged = sign_key_proof(
        SigningKey.generate(),
        user=challenge["user"],
        challenge=challenge["challenge"],
        issued_at=int(time.time()),
    )
    response = api.post(
        "/api/v1/keys",
        {"name": "k", "public_key": public_key_hex(victim), "proof": forged},
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["error"] == "signature_invalid"
    assert not UserKey.objects.exists()


def test_a_challenge_is_single_use_and_bound_to_its_user():
    alice_user, bob = make_user("alice"), _api_for(make_user("bob"))
    alice = _api_for(alice_user)
    key = SigningKey.generate()
    challenge = _challenge(alice)
    proof = sign_key_proof(
        key, user=challenge["user"], challenge=challenge["challenge"], issued_at=int(time.time())
    )
    body = {"name": "k", "public_key": public_key_hex(key), "proof": proof}
    stolen = bob.post("/api/v1/keys", body, format="json")
    assert stolen.json()["error"] == "proof_invalid"
    bobs = _challenge(bob)
    as_bob = sign_key_proof(key, user=alice_user.pk, challenge=bobs["challenge"], issued_at=1)
    assert bob.post("/api/v1/keys", {**body, "proof": as_bob}, format="json").json()["error"] in (
        "proof_invalid",
        "challenge_invalid",
    )
    assert alice.post("/api/v1/keys", body, format="json").status_code == 201
    UserKey.objects.all().delete()
    again = alice.post("/api/v1/keys", body, format="json")
    assert again.status_code == 400
    assert again.json()["error"] == "challenge_invalid"


def test_a_stale_proof_is_refused():
    response = _register(_api_for(make_user()), "k", issued_at=int(time.time()) - 3600)
    assert response.json()["error"] == "proof_invalid"


def test_the_coordinator_and_release_keys_cannot_be_registered():
    from coordinator.keys import coordinator_signing_key
    from ledger.releases import release_signing_key

    api = _api_for(make_user())
    for key in (coordinator_signing_key(), release_signing_key()):
        response = _register(api, "k", key)
        assert response.status_code == 409, response.content
        assert response.json()["error"] == "key_reserved"
    assert not UserKey.objects.exists()
