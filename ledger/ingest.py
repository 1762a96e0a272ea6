"""The node ingest: signed uptime reports (stored in batches) and registrations answered in
front of Django.

Every node sends a report every interval, so on a grid of thousands of nodes this one request
is most of the control plane's HTTP traffic. Through Django it cost ~12 ms of a worker's CPU:
the middleware chain (sessions, CSRF, auth, axes, CSP, WhiteNoise: all for browsers), DRF's
request, parser, serializer and renderer, five ORM statements in their own transaction, and
three to four hops between the event loop and a new thread per request (Django's ASGI handler
runs each request's sync parts in a thread of its own). What a report needs is a signature
check, a nonce, and a few rows written.

So `NodeIngest` wraps the Django ASGI app and takes `POST /api/v1/nodes/<id>/uptime`
with a well-formed, correctly signed, plainly valid body. It checks the clock window and the
signature in the event loop (ed25519 in C), then queues the report; one task per process takes
everything queued while the previous batch was being written and writes it in one thread hop:
the nonces in one Redis pipeline, then `ledger.services.record_uptime_batch` (one transaction,
a handful of statements for the whole batch). Each request is answered only after its batch
committed, so an acknowledged report is stored, exactly as before; the reply, the refusals
(replayed nonce, unknown, decommissioned or another node) and the ledger's state changes are
the same as the DRF view's (ledger/views.py), which shares the service and the reply.

Registrations (`POST /api/v1/nodes`) take the same way for the same reason: a node registers
once a day, but a fleet rebooting after a power cut registers all at once, and through Django a
registration cost ~13 ms of a worker's CPU, mostly the middleware chain and its thread hops
(docs/performance.md). A correctly signed, plainly valid one is checked here, then its nonce
and `ledger.services.register_node` (the DRF view's service) run in one hop to a thread; the
reply is the view's (NodeSerializer and the report interval), a refusal is the service's error
as the API renders it, and a database or Redis outage the API's 503.

Anything else — another path, no or a malformed signature, a body the strict checks here do
not accept (DRF is more lenient: "12" for 12, whitespace around text, unknown fields ignored),
a large body, a disallowed Host — goes to Django untouched (its body replayed), before a nonce
is spent, so every error keeps the one answer the API gives (tests/security).
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

from grid import json_input
from grid.api_errors import RETRY_AFTER, unavailable
from grid.errors import ServiceError
from ledger import node_auth, services
from ledger.gateways import gateway_settings
from ledger.models import Node
from ledger.serializers import HEALTH_FLAG_MAX, MAX_INTERFACES, NodeSerializer
from ops.metrics import REQUEST_SECONDS, REQUESTS
from signing import SignatureError
from signing.node_request import SCHEME, SignedHeader, parse_authorization, verify_request

log = logging.getLogger(__name__)

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

_PATH = re.compile(r"^/api/v1/nodes/([0-9]+|[0-9a-fA-F]{64})/uptime$")
_REGISTER_PATH = "/api/v1/nodes"
_REGISTER_VIEW_NAME = "node-list"  # the URL name the request metrics count the DRF view under
_REGISTER_THREADS = 4  # registrations written at once per worker (each is its own transaction)
_FLAG = re.compile(r"[a-z][a-z0-9_]{0,63}")
_BODY_LIMIT = 64 * 1024  # a report is ~100 bytes, a registration ~1 KB; larger: Django's
_BATCH_MAX = 500
_CAPACITY_MAX = {"cru": 1_000_000, "mru": 2**62, "sru": 2**62, "hru": 2**62}  # CapacitySerializer
_UPTIME_VIEW_NAME = "node-uptime"


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


_Answer = tuple[int, dict]  # an HTTP status and the JSON body


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
    if not used.keys() <= _CAPACITY_MAX.keys():
        return None
    if not all(_plain_int(v, _CAPACITY_MAX[k]) for k, v in used.items()):
        return None
    if not isinstance(health, list) or len(health) > HEALTH_FLAG_MAX:
        return None
    if not all(isinstance(f, str) and _FLAG.fullmatch(f) for f in health):
        return None
    # As the serializer stores it: all four used figures once any is given.
    full_used = {k: used.get(k, 0) for k in _CAPACITY_MAX} if "used" in data else {}
    return uptime, full_used, health


# RegistrationSerializer's fields, as (type, limit): text up to `limit` characters (blank
# allowed), or a flag. Its IntegerFields and nested shapes are checked in _parse_registration.
_REGISTRATION_TEXT = {
    "enroll_token": 128,
    "serial": 128,
    "agent_version": 64,
    "image_version": 64,
    "mycelium_address": 64,
}
_REGISTRATION_FLAGS = ("secure_boot", "virtualized")
_REGISTRATION_FIELDS = {"farm", "capacity", "interfaces", *_REGISTRATION_TEXT, *_REGISTRATION_FLAGS}


def _plain_text(value: object, limit: int, *, blank: bool = True) -> bool:
    """Text the CharField stores as sent: no surrounding whitespace (it would trim it), no NUL
    (it refuses those), within its length; blank only where allowed."""
    return (
        type(value) is str
        and len(value) <= limit
        and value == value.strip()
        and "\x00" not in value
        and (blank or value != "")
    )


def _plain_interface(value: object) -> dict | None:
    if not isinstance(value, dict) or value.keys() != {"name", "mac", "ips"}:
        return None
    name, mac, ips = value["name"], value["mac"], value["ips"]
    if not _plain_text(name, 32, blank=False) or not _plain_text(mac, 32):
        return None
    if not isinstance(ips, list) or len(ips) > 64:
        return None
    if not all(_plain_text(ip, 64, blank=False) for ip in ips):
        return None
    return {"name": name, "mac": mac, "ips": ips}  # the serializer's order of fields


def _parse_registration(body: bytes) -> tuple[int, str | None, services.NodeReport] | None:
    """(farm, enrollment token, report) if RegistrationSerializer would take the body as is;
    else None."""
    try:
        data = json_input.loads(body)
    except json_input.MalformedJSON:
        return None
    if not isinstance(data, dict) or not data.keys() <= _REGISTRATION_FIELDS:
        return None
    farm, capacity, interfaces = data.get("farm"), data.get("capacity"), data.get("interfaces")
    if not _plain_int(farm, 2**62) or farm < 1:
        return None
    if not isinstance(capacity, dict) or capacity.keys() != _CAPACITY_MAX.keys():
        return None
    if not all(_plain_int(capacity[k], limit) for k, limit in _CAPACITY_MAX.items()):
        return None
    if not isinstance(interfaces, list) or len(interfaces) > MAX_INTERFACES:
        return None
    plain_interfaces = [_plain_interface(i) for i in interfaces]
    if None in plain_interfaces:
        return None
    if not all(_plain_text(data.get(k, ""), limit) for k, limit in _REGISTRATION_TEXT.items()):
        return None
    if not all(type(data.get(k, False)) is bool for k in _REGISTRATION_FLAGS):
        return None
    report = services.NodeReport(
        capacity={k: capacity[k] for k in _CAPACITY_MAX},
        interfaces=plain_interfaces,
        serial=data.get("serial", ""),
        secure_boot=data.get("secure_boot", False),
        virtualized=data.get("virtualized", False),
        agent_version=data.get("agent_version", ""),
        image_version=data.get("image_version", ""),
        mycelium_address=data.get("mycelium_address", ""),
    )
    return farm, data.get("enroll_token") or None, report


def _write_registration(
    header: SignedHeader, farm: int, enroll_token: str | None, report: services.NodeReport
) -> _Answer:
    """Runs in a registration thread: the nonce, then the DRF view's service and reply."""
    close_old_connections()
    try:
        if not node_auth.remember_nonces([(header.key, header.nonce)])[0]:
            refusal = node_auth.nonce_replayed()
            return refusal.http_status, refusal.as_body()
        node, created = services.register_node(
            public_key=header.key, farm_id=farm, enroll_token=enroll_token, report=report
        )
        return (201 if created else 200), registration_reply(node)
    except ServiceError as refusal:
        return refusal.http_status, refusal.as_body()
    except Exception as exc:  # the database or Redis down: the API's 503, as DRF answers it
        if (down := unavailable(exc)) is None:
            raise
        return down.http_status, down.as_body()
    finally:
        close_old_connections()


def registration_reply(node: Node) -> dict:
    """What a node learns when it registers: its ledger entry and when to report."""
    return {**NodeSerializer(node).data, "interval": settings.ZOS_UPTIME_INTERVAL}


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

    async def submit(self, report: _Report) -> _Answer:
        report.future = self.loop.create_future()
        self.queue.append(report)
        self.wake.set()
        # Not shielded: a request cancelled while it waits (its client gone) leaves its report
        # in the batch, which stores it all the same; `_run` skips the cancelled future.
        return await report.future

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


class NodeIngest:
    """ASGI app: uptime reports and registrations here (see the module docstring), everything
    else to `app`."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self._batcher: _Batcher | None = None
        self._registrations: ThreadPoolExecutor | None = None

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
        ):
            return await self.app(scope, receive, send)
        if _PATH.match(scope["path"]):
            take, view = self._uptime, _UPTIME_VIEW_NAME
        elif scope["path"] == _REGISTER_PATH:
            take, view = self._register, _REGISTER_VIEW_NAME
        else:
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if not length.isdigit() or int(length) > _BODY_LIMIT:
            return await self.app(scope, receive, send)
        body, complete = await _read_body(receive)
        if body is None:
            return None  # the client went away
        header = complete and _signed(scope, headers, body)
        answer = header and await take(scope["path"], header, body)
        if not answer:
            return await self.app(scope, _replay(body, complete, receive), send)
        status, reply = answer
        await _send_json(send, status, reply)
        REQUESTS.labels(view, "POST", str(status)).inc()
        REQUEST_SECONDS.labels(view).observe(time.perf_counter() - started)
        return None

    async def _uptime(self, path: str, header: SignedHeader, body: bytes) -> _Answer | None:
        """The report's answer once its batch is stored; None if the body is Django's."""
        parsed = _parse_report(body)
        if parsed is None:
            return None
        uptime, used, health = parsed
        path_id = _PATH.match(path).group(1)
        report = services.UptimeIn(header.key, path_id, uptime, used, health)
        return await self.batcher().submit(_Report(header.key, header.nonce, report))

    async def _register(self, path: str, header: SignedHeader, body: bytes) -> _Answer | None:
        """The registration's answer once it is written; None if the body is Django's."""
        parsed = _parse_registration(body)
        if parsed is None:
            return None
        if self._registrations is None:
            self._registrations = ThreadPoolExecutor(
                max_workers=_REGISTER_THREADS, thread_name_prefix="node-register"
            )
        loop = asyncio.get_running_loop()
        # Shielded: a request cancelled (its client gone) does not cancel a registration that
        # has not started yet; one that has runs to its end in any case.
        return await asyncio.shield(
            loop.run_in_executor(self._registrations, _write_registration, header, *parsed)
        )


def _signed(scope: Scope, headers: dict[bytes, bytes], body: bytes) -> SignedHeader | None:
    """The request's verified signature header (clock window and signature checked, nonce not
    yet spent), or None: then it is Django's to answer."""
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
    return header


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


_REPLY_HEADERS = (
    (b"content-type", b"application/json"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
)


async def _send_json(send: Send, status: int, answer: dict) -> None:
    body = json.dumps(answer, separators=(",", ":")).encode()
    headers = [*_REPLY_HEADERS, (b"content-length", b"%d" % len(body))]
    if status == 503:  # a backing service down: when to try again, as the API says it
        headers.append((b"retry-after", str(RETRY_AFTER).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
