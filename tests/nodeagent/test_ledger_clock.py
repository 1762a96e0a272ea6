"""A node whose clock is off: the ledger client learns the ledger's time from a `timestamp_skew`
refusal and signs with it, for plain requests and for streamed downloads (image parts) alike.

A real HTTP server on loopback stands in for the ledger: it refuses any request signed more than
300 s from its clock, as the ledger does, with `server_time` in the reply.
"""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nodeagent.identity import NodeIdentity
from nodeagent.ledger_client import LedgerClient, LedgerRefused
from signing.node_request import parse_authorization

SKEW = 7 * 60  # the ledger's clock is this far ahead of the node's


class Ledger(BaseHTTPRequestHandler):
    signed_at: list[int] = []

    def do_GET(self) -> None:
        ts = parse_authorization(self.headers["Authorization"]).ts
        self.signed_at.append(ts)
        now = int(time.time()) + SKEW
        if abs(now - ts) > 300:
            self._reply(401, {"error": "timestamp_skew", "message": "clock", "server_time": now})
        elif self.path == "/missing":
            self._reply(404, {"error": "not_found", "message": "no such part"})
        else:
            self._reply(200, {"ok": True})

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def ledger() -> Iterator[str]:
    Ledger.signed_at = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ledger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("call", ["request", "download"])
def test_a_skew_refusal_is_corrected_once_and_remembered(ledger, call):
    client = LedgerClient(ledger, NodeIdentity(b"\x01" * 32), timeout=5)
    fetch = (
        (lambda: client.request("GET", "/thing"))
        if call == "request"
        else (lambda: client.download("/thing").json())
    )
    assert fetch() == {"ok": True}
    first, corrected = Ledger.signed_at
    assert abs(corrected - first - SKEW) <= 2
    assert fetch() == {"ok": True}  # signed right the first time now
    assert len(Ledger.signed_at) == 3


def test_other_refusals_are_not_retried(ledger):
    client = LedgerClient(ledger, NodeIdentity(b"\x01" * 32), timeout=5)
    client.request("GET", "/thing")
    with pytest.raises(LedgerRefused, match="not_found"):
        client.download("/missing")
    assert len(Ledger.signed_at) == 3
