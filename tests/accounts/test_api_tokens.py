"""Named API tokens: `zos login` gets one, each works on its own, a revoked one is refused."""

import pytest
from asgiref.sync import async_to_sync
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import create_api_token, revoke_api_token
from coordinator.ws_auth import _user_for
from tests.conftest import make_user

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-password"


def _login(api: APIClient, username: str, password: str, **extra):
    return api.post(
        "/api/v1/auth/token", {"username": username, "password": password, **extra}, format="json"
    )


def _keys_with(secret: str) -> int:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return api.get("/api/v1/keys").status_code


def test_login_issues_a_new_named_token_per_call_stored_only_hashed():
    alice = make_user("alice")
    first = _login(APIClient(), "alice", PASSWORD).json()["token"]
    second = _login(APIClient(), "alice", PASSWORD, name="ci").json()["token"]
    assert first != second and first.startswith("zos_")
    assert sorted(t.name for t in alice.api_tokens.all()) == ["ci", "zos login"]
    assert not ApiToken.objects.filter(secret_hash__in=[first, second]).exists()
    assert _keys_with(first) == 200 and _keys_with(second) == 200


def test_a_revoked_token_is_refused_and_the_others_keep_working():
    alice = make_user("alice")
    kept, kept_secret = create_api_token(user=alice, name="laptop")
    gone, gone_secret = create_api_token(user=alice, name="old")
    revoke_api_token(user=alice, token_id=gone.pk)
    assert _keys_with(gone_secret) == 401
    assert _keys_with(kept_secret) == 200
    kept.refresh_from_db()
    assert kept.last_used is not None


def test_another_users_token_cannot_be_revoked():
    token, _ = create_api_token(user=make_user("alice"), name="laptop")
    with pytest.raises(Exception, match="no such token"):
        revoke_api_token(user=make_user("mallory"), token_id=token.pk)
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_drf_tokens_made_before_named_tokens_still_work():
    from rest_framework.authtoken.models import Token

    legacy = Token.objects.create(user=make_user("alice")).key
    assert _keys_with(legacy) == 200
    assert _keys_with("zos_not-a-token") == 401


# The feed's login reads on its own connection (coordinator/link_db.py), so the token is committed.
@pytest.mark.django_db(transaction=True)
def test_the_live_feed_accepts_a_named_token():
    alice = make_user("alice")
    _, secret = create_api_token(user=alice, name="feed")
    assert async_to_sync(_user_for)(secret) == alice
    assert async_to_sync(_user_for)("zos_nope").is_anonymous


def test_wrong_password_is_explained_as_before():
    make_user("alice")
    response = _login(APIClient(), "alice", "wrong")
    assert response.status_code == 400
    assert "Unable to log in" in response.json()["message"]


def test_five_failures_lock_the_username_at_this_address_even_with_the_right_password():
    make_user("alice")
    make_user("bob")
    api = APIClient()
    codes = [_login(api, "alice", "wrong").status_code for _ in range(5)]
    assert codes == [400, 400, 400, 400, 429]
    locked = _login(api, "alice", PASSWORD)
    assert locked.status_code == 429 and locked.json()["error"] == "locked_out"
    assert _login(api, "bob", PASSWORD).status_code == 200  # per username + address
