"""Requests through the whole ASGI application (grid.asgi), as a worker serves them.

The ledger's ingest (ledger/ingest.py) answers some node requests in front of Django; Django's
test client would never reach it. `AsgiClient` has the test client's `generic()` and a response
with the same reading methods, so a test module can run its requests through both paths.
"""

import asyncio
import json
from dataclasses import dataclass, field

from django.utils.datastructures import CaseInsensitiveMapping

from grid.asgi import application


@dataclass
class AsgiResponse:
    status_code: int = 0
    headers: CaseInsensitiveMapping = field(default_factory=lambda: CaseInsensitiveMapping({}))
    content: bytes = b""
    raw_headers: dict[bytes, bytes] = field(default_factory=dict)  # as sent, names lowercased

    def json(self):
        return json.loads(self.content)


async def asgi_request(method: str, path: str, body: bytes, headers: dict[str, str]):
    """One HTTP request through grid.asgi; the client stays connected until answered."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    response = AsgiResponse()

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the client stays connected

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            response.status_code = message["status"]
            response.raw_headers = {k.lower(): v for k, v in message["headers"]}
            headers = {k.decode(): v.decode() for k, v in message["headers"]}
            response.headers = CaseInsensitiveMapping(headers)
        elif message["type"] == "http.response.body":
            response.content += message.get("body", b"")

    await application(scope, receive, send)
    return response


class AsgiClient:
    """Django's test client's `generic()`, through grid.asgi instead of straight to Django."""

    def generic(self, method: str, path: str, body: bytes, content_type: str, **extra: str):
        headers = {
            "Host": "127.0.0.1",
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
        }
        if "HTTP_AUTHORIZATION" in extra:
            headers["Authorization"] = extra["HTTP_AUTHORIZATION"]
        return asyncio.run(asgi_request(method, path, body, headers))


async def asgi_answer(method: str, path: str, body: bytes, headers: dict[str, str]) -> dict:
    """`asgi_request` as the ingest tests read it: status, raw headers and the JSON body."""
    response = await asgi_request(method, path, body, headers)
    return {
        "status": response.status_code,
        "headers": response.raw_headers,
        "json": response.json(),
    }
