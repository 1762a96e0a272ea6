"""The dashboard's pages through Django's test client: who sees what, and the security headers."""

import pytest

from accounts.models import ApiToken
from accounts.services import create_api_token
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_visitors_get_a_welcome_and_users_their_dashboard(client):
    welcome = client.get("/")
    assert welcome.status_code == 200 and b"Sign up" in welcome.content
    client.force_login(make_user("alice"))
    assert b"Hello, alice" in client.get("/").content


def test_every_page_sends_a_strict_policy_and_refuses_framing(client):
    response = client.get("/sign-in")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"


def test_sign_up_validates_the_password_and_signs_the_new_user_in(client):
    weak = client.post(
        "/sign-up",
        {
            "username": "bob",
            "email": "b@example.org",
            "password1": "password",
            "password2": "password",
        },
    )
    assert weak.status_code == 200 and b"too common" in weak.content
    response = client.post(
        "/sign-up",
        {
            "username": "bob",
            "email": "b@example.org",
            "password1": "correct horse battery",
            "password2": "correct horse battery",
        },
    )
    assert response.status_code == 302
    assert b"Hello, bob" in client.get("/").content
    assert not client.get("/").wsgi_request.user.is_staff


def test_sign_out_is_post_only(client):
    client.force_login(make_user("alice"))
    assert client.get("/sign-out").status_code == 405
    assert client.post("/sign-out").status_code == 302
    assert b"Sign up" in client.get("/").content


def test_pages_of_an_account_need_a_session(client):
    response = client.get("/account/tokens")
    assert response.status_code == 302 and response["Location"].startswith("/sign-in")


def test_tokens_are_listed_only_for_their_owner_and_revoked_only_by_them(client):
    alice, mallory = make_user("alice"), make_user("mallory")
    token, _ = create_api_token(user=alice, name="alice-laptop")
    client.force_login(mallory)
    assert b"alice-laptop" not in client.get("/account/tokens").content
    refused = client.post(f"/account/tokens/{token.pk}/revoke")
    # 404 as for a missing token (it used to be a redirect; every other resource says 404).
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_a_new_token_is_shown_once_and_the_page_is_not_cached(client):
    client.force_login(make_user("alice"))
    created = client.post("/account/tokens", {"name": "ci"})
    secret = created.context["secret"]
    assert secret.startswith("zos_") and secret.encode() in created.content
    assert "no-store" in created["Cache-Control"]
    assert secret.encode() not in client.get("/account/tokens").content


def test_the_operator_console_login_is_locked_out_like_the_dashboard(client):
    make_user("root", staff=True)
    form = {"username": "root", "password": "wrong", "next": "/admin/"}
    codes = [client.post("/admin/login/", form).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 200, 429]
    right = {**form, "password": "a-long-test-password"}
    locked = client.post("/admin/login/", right)
    assert locked.status_code == 429 and b"Too many failed sign-ins" in locked.content
