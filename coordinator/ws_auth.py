"""Who is on the other end of `/ws/deployments/`: a browser session, or a CLI's API token.

Browsers send their session cookie automatically, so for them the origin must be ours. A CLI sends
`Authorization: Token …` and no cookie; a page on another origin cannot set that header, so the
origin check is not needed (and a CLI sends no Origin at all).
"""

from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token

from accounts.services import user_for_api_secret
from coordinator.link_db import db_call


def _token_from(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "token" and token.strip():
                return token.strip()
    return None


@db_call
def _user_for(token: str):
    if named := user_for_api_secret(token):
        return named[0]
    found = Token.objects.select_related("user").filter(key=token).first()
    return found.user if found and found.user.is_active else AnonymousUser()


class SessionOrTokenAuth:
    def __init__(self, inner) -> None:
        self.inner = inner
        self.browser = AllowedHostsOriginValidator(inner)

    async def __call__(self, scope, receive, send):
        token = _token_from(scope.get("headers", []))
        if token is None:
            return await self.browser(scope, receive, send)
        return await self.inner(dict(scope, user=await _user_for(token)), receive, send)
