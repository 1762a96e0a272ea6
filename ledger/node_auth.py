"""DRF authentication for signed node requests (ARCHITECTURE §4).

Order matters: header syntax, clock window, signature, and only then the nonce is recorded, so
an unsigned request can never burn a nonce or fill the replay cache.
"""

import time
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.core.cache import caches
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from grid.api_errors import ApiError, signature_error
from grid.redis_cache import SharedPoolRedisCache
from ledger.choices import NodeStatus
from ledger.models import Node
from ledger.states import APPROVED_STATUSES
from signing import SignatureError
from signing.node_request import (
    NONCE_TTL_SECONDS,
    SCHEME,
    SignedHeader,
    parse_authorization,
    verify_request,
)


@dataclass(frozen=True)
class SignedNodeRequest:
    """What a verified request proves: who signed it, and the ledger's node for that key, if any."""

    public_key: str
    node: Node | None


def _auth_error(code: str, message: str, http_status: int) -> ApiError:
    return ApiError(code, message, http_status=http_status, server_time=int(time.time()))


class NodeSignatureAuthentication(BaseAuthentication):
    """Returns None for other schemes, so user auth can follow on endpoints that accept both."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, SignedNodeRequest] | None:
        value = request.META.get("HTTP_AUTHORIZATION", "")
        if not value.startswith(SCHEME + " "):
            return None
        body = request._request.body  # exact bytes; raises RequestDataTooBig past the limit
        try:
            header = parse_authorization(value)
            verify_request(header, request.method, request.get_full_path(), body)
        except SignatureError as exc:
            raise signature_error(exc) from exc
        self._remember_nonce(header)
        node = Node.objects.filter(public_key=header.key).first()
        return AnonymousUser(), SignedNodeRequest(public_key=header.key, node=node)

    def authenticate_header(self, request: Request) -> str:
        return SCHEME

    @staticmethod
    def _remember_nonce(header: SignedHeader) -> None:
        if not remember_nonces([(header.key, header.nonce)])[0]:
            raise nonce_replayed()


def nonce_replayed() -> ApiError:
    return _auth_error(
        "nonce_replayed", "this nonce was already used; sign each request afresh", 401
    )


def remember_nonces(seen: list[tuple[str, str]]) -> list[bool]:
    """Record each (key, nonce) as used for NONCE_TTL_SECONDS: True where it was fresh.

    The one owner of the replay cache's keys, for the DRF path (one at a time) and the uptime
    ingest (a batch in one Redis round trip, ledger/ingest.py); a nonce twice in one batch is
    fresh the first time only.
    """
    cache = caches["nonces"]
    keys = [f"nonce:{key}:{nonce}" for key, nonce in seen]
    if isinstance(cache, SharedPoolRedisCache):
        return cache.add_each(keys, 1, NONCE_TTL_SECONDS)
    return [cache.add(key, 1, NONCE_TTL_SECONDS) for key in keys]


def _require_signed(request: Request) -> SignedNodeRequest:
    if not isinstance(request.auth, SignedNodeRequest):
        raise _auth_error(
            "missing_signature", f"node requests need an Authorization: {SCHEME} header", 401
        )
    return request.auth


class IsSignedByAnyKey(BasePermission):
    """Registration: the one call a key the ledger does not know yet may make."""

    def has_permission(self, request: Request, view) -> bool:
        return bool(_require_signed(request))


class IsRegisteredNode(BasePermission):
    def has_permission(self, request: Request, view) -> bool:
        auth = _require_signed(request)
        if auth.node is None:
            raise _auth_error("unknown_node", "no node is registered with this key", 403)
        if auth.node.status == NodeStatus.DECOMMISSIONED:
            raise _auth_error("node_decommissioned", "this node was decommissioned", 403)
        return True


class IsApprovedNode(IsRegisteredNode):
    """Reads that only a node let into the grid may make: anyone can register a pending node."""

    def has_permission(self, request: Request, view) -> bool:
        super().has_permission(request, view)
        node = request.auth.node
        if node.status not in APPROVED_STATUSES:
            raise _auth_error(
                "node_not_approved",
                f"node {node.pk} is {node.status}; only approved nodes may make this request",
                403,
            )
        return True
