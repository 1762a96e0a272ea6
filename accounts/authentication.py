"""`Authorization: Token zos_…` for the API: the named tokens of accounts/models.py.

Listed before DRF's TokenAuthentication; secrets without our prefix are left to DRF, whose
single per-user tokens made before named tokens existed keep working.
"""

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.services import API_TOKEN_PREFIX, user_for_api_secret


class ApiTokenAuthentication(authentication.TokenAuthentication):
    def authenticate(self, request: Request):
        header = authentication.get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != self.keyword.lower().encode():
            return None
        secret = header[1].decode("latin-1")
        if not secret.startswith(API_TOKEN_PREFIX):
            return None
        found = user_for_api_secret(secret)
        if found is None:
            raise exceptions.AuthenticationFailed("invalid or revoked token")
        return found
