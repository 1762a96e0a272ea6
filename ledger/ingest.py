"""The uptime ingest: signed uptime reports answered in front of Django, stored in batches.

Every node sends a report every interval, so on a grid of thousands of nodes this one request
is most of the control plane's HTTP traffic. Through Django it cost ~12 ms of a worker's CPU:
the middleware chain (sessions, CSRF, auth, axes, CSP, WhiteNoise: all for browsers), DRF's
request, parser, serializer and renderer, five ORM statements in their own transaction, and
three to four hops between the event loop and a new thread per request (Django's ASGI handler
runs each request's sync parts in a thread of its own). What a report needs is a signature
check, a nonce, and a few rows written.

So `UptimeIngest` wraps the Django ASGI app and takes only `POST /api/v1/nodes/<id>/uptime`
with a well-formed, correctly signed, plainly valid body. It checks the clock window and the
signature in the event loop (ed25519 in C), then queues the report; one task per process takes
everything queued while the previous batch was being written and writes it in one thread hop:
the nonces in one Redis pipeline, then `ledger.services.record_uptime_batch` (one transaction,
a handful of statements for the whole batch). Each request is answered only after its batch
committed, so an acknowledged report is stored, exactly as before; the reply, the refusals
(replayed nonce, unknown, decommissioned or another node) and the ledger's state changes are
the same as the DRF view's (ledger/views.py), which shares the service and the reply.

Anything else — another path, no or a malformed signature, a body the strict check here does
not accept (DRF is more lenient: "12" for 12, whitespace around flags), a large body, a
disallowed Host — goes to Django untouched (its body replayed), before a nonce is spent, so
every error keeps the one answer the API gives (tests/security).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host

from grid.errors import ServiceError
from ledger import node_auth, services
from ledger.gateways import gateway_settings
from ledger.models import Node
from ops.metrics import REQUEST_SECONDS, REQUESTS
from signing import SignatureError
from signing.node_request import SCHEME, parse_authorization, verify_request

log = logging.getLogger(__name__)

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

_PATH = re.compile(r"^/api/v1/nodes/([0-9]+|[0-9a-fA-F]{64})/uptime$")
_FLAG = re.compile(r"[a-z][a-z0-9_]{0,63}")
_BODY_LIMIT = 64 * 1024  # a report is ~100 bytes; anything near this goes to Django's limits
_BATCH_MAX = 500
_HEALTH_MAX = 32  # ledger.serializers.HEALTH_FLAG_MAX
_USED_MAX = {"cru": 1_000_000, "mru": 2**62, "sru": 2**62, "hru": 2**62}
_VIEW_NAME = "node-uptime"  # the URL name the request metrics count the DRF view under


def uptime_reply(node: Node, status: str) -> dict:
    """What a node learns from each report: its state, when to report next, the agent version
    its farm wants, its gateway settings, and the server's clock."""
    return {
        "id": node.pk,
        "status": status,
        "interval": settings.ZOS_UPTIME_INTERVAL,
        "desired": {"agent_version": node.farm.desired_agent_version or None},
        "gateway": gateway_settings(node),
        "server_time": int(time.time()),
    }


@dataclass
class _Report:
    key: str
    nonce: str
    report: services.UptimeIn
    future: asyncio.Future = field(init=False)


def _plain_int(value: object, maximum: int) -> bool:
    return type(value) is int and 0 <= value <= maximum


def _parse_report(body: bytes) -> tuple[int, dict[str, int], list[str]] | None:
    """The report if it is plainly valid (UptimeSerializer would take it as is), else None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not data.keys() <= {"uptime", "used", "health"}:
        return None
    uptime, used, health = data.get("uptime"), data.get("used", {}), data.get("health", [])
    if not _plain_int(uptime, 2**62) or not isinstance(used, dict):
        return None
    if not used.keys() <= _USED_MAX.keys():
        return None
    if not all(_plain_int(v, _USED_MAX[k]) for k, v in used.items()):
        return None
    if not isinstance(health, list) or len(health) > _HEALTH_MAX:
        return None
    if not all(isinstance(f, str) and _FLAG.fullmatch(f) for f in health):
        return None
    # As the serializer stores it: all four used figures once any is given.
    full_used = {k: used.get(k, 0) for k in _USED_MAX} if "used" in data else {}
    return uptime, full_used, health


def _host_allowed(headers: dict[bytes, bytes]) -> bool:
    if settings.USE_X_FORWARDED_HOST or settings.SECURE_SSL_REDIRECT:
        return False  # Django's rules for those: leave it to Django
    domain, _port = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def _write(batch: list[_Report]) -> list[tuple[int, dict]]:
    """Runs in the ingest thread: nonces, then the reports of the fresh ones, in one go."""
    close_old_connections()
    try:
        fresh = node_auth.remember_nonces([(r.key, r.nonce) for r in batch])
        stored = [r.report for r, ok in zip(batch, fresh, strict=True) if ok]
        outcomes = iter(services.record_uptime_batch(stored))
        answers = []
        for ok in fresh:
            if not ok:
                refusal = node_auth.nonce_replayed()
                answers.append((refusal.http_status, refusal.as_body()))
                continue
            outcome = next(outcomes)
            if isinstance(outcome, ServiceError):
                answers.append((outcome.http_status, outcome.as_body()))
            else:
                answers.append((200, uptime_reply(*outcome)))
        return answers
    finally:
        close_old_connections()


class _Batcher:
    """Reports of one event loop, written one batch at a time by one thread."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: list[_Report] = []
        self.wake = asyncio.Event()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uptime-ingest")
        self.task = self.loop.create_task(self._run())

    async def submit(self, report: _Report) -> tuple[int, dict]:
        report.future = self.loop.create_future()
        self.queue.append(report)
        self.wake.set()
        return await asyncio.shield(report.future)  # a client gone still has its report stored

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.queue = self.queue[:_BATCH_MAX], self.queue[_BATCH_MAX:]
            if self.queue:
                self.wake.set()
            try:
                answers = await self.loop.run_in_executor(self.executor, _write, batch)
            except Exception:
                log.exception("storing a batch of %d uptime reports failed", len(batch))
                body = {
                    "error": "ingest_unavailable",
                    "message": "the report could not be stored; send it again",
                }
                answers = [(503, body)] * len(batch)
            for report, answer in zip(batch, answers, strict=True):
                if not report.future.done():
                    report.future.set_result(answer)


class UptimeIngest:
    """ASGI app: uptime reports here (see the module docstring), everything else to `app`."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self._batcher: _Batcher | None = None

    def batcher(self) -> _Batcher:
        if self._batcher is None or self._batcher.loop is not asyncio.get_running_loop():
            self._batcher = _Batcher()
        return self._batcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope.get("query_string")
            or scope.get("root_path")
            or not _PATH.match(scope["path"])
        ):
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if not length.isdigit() or int(length) > _BODY_LIMIT:
            return await self.app(scope, receive, send)
        body, complete = await _read_body(receive)
        if body is None:
            return None  # the client went away
        pending = complete and self._prepare(scope, headers, body)
        if not pending:
            return await self.app(scope, _replay(body, complete, receive), send)
        status, answer = await self.batcher().submit(pending)
        await _send_json(send, status, answer)
        REQUESTS.labels(_VIEW_NAME, "POST", str(status)).inc()
        REQUEST_SECONDS.labels(_VIEW_NAME).observe(time.perf_counter() - started)
        return None

    @staticmethod
    def _prepare(scope: Scope, headers: dict[bytes, bytes], body: bytes) -> _Report | None:
        """The report if it is one to take here: signed and valid; else None (Django's)."""
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        content_type = headers.get(b"content-type", b"")
        if not authorization.startswith(SCHEME + " ") or content_type != b"application/json":
            return None
        if not _host_allowed(headers):
            return None
        try:
            header = parse_authorization(authorization)
            verify_request(header, "POST", scope["path"], body)
        except SignatureError:
            return None
        parsed = _parse_report(body)
        if parsed is None:
            return None
        uptime, used, health = parsed
        path_id = _PATH.match(scope["path"]).group(1)
        report = services.UptimeIn(header.key, path_id, uptime, used, health)
        return _Report(header.key, header.nonce, report)


async def _read_body(receive: Receive) -> tuple[bytes | None, bool]:
    """The body, and whether it is complete (False: larger than the limit, rest unread)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), True
        if size > _BODY_LIMIT:
            return b"".join(chunks), False


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """`receive` for Django: the bytes already read first, then the rest of the stream."""
    replayed = False

    async def replay() -> dict:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": not complete}

    return replay


async def _send_json(send: Send, status: int, answer: dict) -> None:
    body = json.dumps(answer, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"x-frame-options", b"DENY"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
