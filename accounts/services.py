"""Every state change of an account: sign-up and API tokens (views only call these).

Secrets are returned once, at creation, and stored only as a hash, like enrollment tokens: a
leaked database does not leak working tokens.
"""

import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, hash_api_secret
from grid.errors import ServiceError

# Marks our secrets, so the authentication class looks up only these and leaves DRF's older
# 40-hex tokens to DRF (and costs no query for them).
API_TOKEN_PREFIX = "zos_"  # noqa: S105  (a marker, not a secret)
# last_used is written at most this often per token: a busy CLI must not turn reads into writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)
LOGIN_TOKEN_NAME = "zos login"  # noqa: S105  (a name, not a secret)


class AccountError(ServiceError):
    """A refused account change, with a code for the API and a message for people; a view that
    does not catch it answers the JSON error body (grid.api_errors), never a 500."""


def sign_up(*, username: str, email: str, password: str) -> AbstractBaseUser:
    """A new, ordinary (never staff) account; the password passes Django's validators."""
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise AccountError("username_taken", "this username is taken", http_status=409)
    candidate = User(username=username, email=email)
    password_validation.validate_password(password, user=candidate)
    candidate.set_password(password)
    candidate.save()
    return candidate


def create_api_token(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """A new token and its secret; the secret is never stored and cannot be shown again."""
    name = name.strip()
    if not name:
        raise AccountError("invalid", "a token needs a name")
    secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name[:64],
            prefix=secret[: len(API_TOKEN_PREFIX) + 4],
            secret_hash=hash_api_secret(secret),
        )
    return token, secret


def revoke_api_token(*, user: AbstractBaseUser, token_id: int) -> None:
    """Delete one of the user's tokens; another user's id is treated as missing (no oracle)."""
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    if not deleted:
        raise AccountError("not_found", "no such token", http_status=404)


def user_for_api_secret(secret: str) -> tuple[AbstractBaseUser, ApiToken] | None:
    """The active user a secret belongs to (marking the token used), or None."""
    if not secret.startswith(API_TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user").filter(secret_hash=hash_api_secret(secret)).first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used is None or now - token.last_used > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
        token.last_used = now
    return token.user, token
