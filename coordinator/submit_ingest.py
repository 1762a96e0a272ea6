"""Deployment submits answered in front of Django: the same service, one thread hop.

A signed submit through Django cost the ASGI worker about 13 ms of CPU beyond the service
itself (docs/performance.md "Deployments"): the middleware chain (sessions, CSRF, axes, CSP,
WhiteNoise: all for browsers), DRF's request, authenticators, parser and serializers, and three
to four crossings between the event loop and threads — Django's handler runs the sync view in a
thread, and the view's channel messages hop back to the loop (async_to_sync) before it answers.

So `SubmitIngest` wraps the Django ASGI app, as the uptime ingest does (ledger/ingest.py), and
takes only `POST /api/v1/deployments` from an API token (`Authorization: Token …`, no cookie)
whose body is plainly `{"envelope": {...}}`. In ONE hop to a thread it authenticates the token
(the same functions as DRF's authenticators), runs `services.submit_deployment` — every check,
every refusal and every row are the service's — and renders the reply with the DRF view's
serializer and renderer; the messages the submit announces are sent from the event loop
(`notify.collecting`), before the answer, as the view sends them.

Anything else goes to Django untouched (its body replayed): a session login, a token the quick
check does not find (so DRF answers the 401), a body DRF would parse differently or refuse
(malformed or deeply nested JSON, other keys), a large body, another Accept type, a disallowed
host. A service refusal is answered with the API's error body and status (grid/api_errors.py),
so both paths answer the same (tests/coordinator/test_submit_ingest.py runs both).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from django.contrib.auth.models import AbstractBaseUser
from django.db import close_old_connections
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer

from accounts.services import API_TOKEN_PREFIX, user_for_api_secret
from coordinator import notify, services
from coordinator.serializers import DeploymentSerializer
from grid import json_input
from grid.api_errors import RETRY_AFTER, unavailable
from grid.errors import ServiceError
from ledger.ingest import _host_allowed, _read_body, _replay
from ops.metrics import REQUEST_SECONDS, REQUESTS

log = logging.getLogger(__name__)

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

PATH = "/api/v1/deployments"
_BODY_LIMIT = 256 * 1024  # a script is at most SCRIPT_MAX_CHARS; larger goes to Django's limits
_ACCEPTED = (b"", b"*/*", b"application/json")
_VIEW_NAME = "deployment-list"  # the URL name the request metrics count the DRF view under
# Submits run in their own threads, a few at once per worker: each spends most of its time
# waiting for PostgreSQL, and each thread keeps its own database connection.
_THREADS = 4
_RENDERER = JSONRenderer()
# One serializer for every reply, as services._EVENT_SHAPE: a ModelSerializer builds its fields
# anew per instance; to_representation keeps no state between calls.
_DEPLOYMENT_SHAPE = DeploymentSerializer()
_SERVER_ERROR = {"error": "server_error", "message": "internal error; it has been logged"}

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


def _token_user(secret: str) -> AbstractBaseUser | None:
    """The active user of an API token, as DRF's authenticators would find them; None when
    they would not (Django then answers, with DRF's own 401)."""
    if secret.startswith(API_TOKEN_PREFIX):
        found = user_for_api_secret(secret)
        return found[0] if found else None
    token = services.first_or_none(Token.objects.select_related("user").filter(key=secret))
    return token.user if token is not None and token.user.is_active else None


def _render(status: int, data: dict, headers: list | None = None) -> Answer:
    return status, _RENDERER.render(data), headers or []


def _submit(secret: str, envelope: dict) -> tuple[Answer | None, list[notify.Message]]:
    """Runs in a submit thread: the answer (None: leave the request to Django), and the messages
    to send before it."""
    close_old_connections()
    try:
        user = _token_user(secret)
        if user is None:
            return None, []
        try:
            deployment, messages = notify.collecting(services.submit_deployment)(
                owner=user, envelope=envelope
            )
        except ServiceError as exc:
            return _render(exc.http_status, exc.as_body()), []
        return _render(201, _DEPLOYMENT_SHAPE.to_representation(deployment)), messages
    except Exception as exc:
        if (down := unavailable(exc)) is not None:
            return _render(503, down.as_body(), [(b"retry-after", str(RETRY_AFTER).encode())]), []
        log.exception("a deployment submit failed")  # a bug: answered as Django's handler500
        return _render(500, _SERVER_ERROR), []
    finally:
        close_old_connections()


def _plain_envelope(body: bytes) -> dict | None:
    """The envelope if the body is plainly `{"envelope": {...}}` as DRF would parse it."""
    try:
        data = json_input.loads(body)
    except json_input.MalformedJSON:
        return None
    if not isinstance(data, dict) or data.keys() != {"envelope"}:
        return None
    envelope = data["envelope"]
    return envelope if isinstance(envelope, dict) else None


def _secret(headers: dict[bytes, bytes]) -> str | None:
    """The API token of a request this path may take, else None."""
    if b"cookie" in headers or headers.get(b"content-type") != b"application/json":
        return None  # with a session cookie DRF may authenticate the session user instead
    if headers.get(b"accept", b"") not in _ACCEPTED or not _host_allowed(headers):
        return None
    words = headers.get(b"authorization", b"").split()
    if len(words) != 2 or words[0].lower() != b"token":
        return None
    return words[1].decode("latin-1")


class SubmitIngest:
    """ASGI app: plain token submits here (see the module docstring), everything else to `app`."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="submit")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != PATH
            or scope.get("query_string")
            or scope.get("root_path")
        ):
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        secret = _secret(headers)
        if secret is None or not length.isdigit() or int(length) > _BODY_LIMIT:
            return await self.app(scope, receive, send)
        body, complete = await _read_body(receive)
        if body is None:
            return None  # the client went away
        envelope = _plain_envelope(body) if complete else None
        answer = None
        if envelope is not None:
            loop = asyncio.get_running_loop()
            # Shielded: a client gone mid-submit still has its deployment stored and announced.
            answer, messages = await asyncio.shield(
                loop.run_in_executor(self.executor, _submit, secret, envelope)
            )
            await notify.send_all(messages)
        if answer is None:
            return await self.app(scope, _replay(body, complete, receive), send)
        status, payload, extra = answer
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        REQUESTS.labels(_VIEW_NAME, "POST", str(status)).inc()
        REQUEST_SECONDS.labels(_VIEW_NAME).observe(time.perf_counter() - started)
        return None
