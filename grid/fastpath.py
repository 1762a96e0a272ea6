"""What the request paths in front of Django share (ledger/ingest.py for nodes' reports and
registrations, coordinator/submit_ingest.py for token submits).

Each takes only requests it can answer exactly as the API would and hands everything else to
Django untouched: so a body it read must be replayed to Django, and Django's host check must
hold before a request is answered here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from django.conf import settings
from django.http.request import split_domain_port, validate_host

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

# The headers every JSON answer of the API carries (Django's security middleware adds the last
# two to the DRF views' answers).
JSON_REPLY_HEADERS = (
    (b"content-type", b"application/json"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
)


def host_allowed(headers: dict[bytes, bytes]) -> bool:
    """Django's ALLOWED_HOSTS check; False also where Django's other host rules apply."""
    if settings.USE_X_FORWARDED_HOST or settings.SECURE_SSL_REDIRECT:
        return False  # Django's rules for those: leave it to Django
    domain, _port = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


async def read_body(receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """The body (None: the client went away), and whether it is complete (False: larger than
    `limit`, the rest left unread for Django)."""
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
        if size > limit:
            return b"".join(chunks), False


def replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """`receive` for Django: the bytes already read first, then the rest of the stream."""
    replayed = False

    async def replay_then_receive() -> dict:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": not complete}

    return replay_then_receive
