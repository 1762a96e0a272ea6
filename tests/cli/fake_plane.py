"""A stand-in control plane on loopback that speaks the API shapes of ledger/ and coordinator/.

It lets the CLI's HTTP behaviour (auth header, paging, error rendering, the follow loop and its
exit codes) be tested fast and deterministically; tests/cli/test_e2e.py runs the real thing.
"""

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "test-token"
CREATED = "2026-11-25T06:00:00+00:00"


@dataclass
class FakePlane:
    """Routes are `(method, path) -> handler(query, body) -> (status, json)`."""

    routes: dict[tuple[str, str], Callable[[dict, Any], tuple[int, Any]]] = field(
        default_factory=dict
    )
    requests: list[dict] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, method: str, path: str, handler) -> None:
        self.routes[(method, path)] = handler

    def reply(self, method: str, path: str, status: int, body: Any) -> None:
        self.route(method, path, lambda query, data: (status, body))

    def start(self) -> None:
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                plane.requests.append(
                    {
                        "method": method,
                        "path": parts.path,
                        "query": parse_qs(parts.query),
                        "body": body,
                        "auth": self.headers.get("Authorization"),
                    }
                )
                handler = plane.routes.get((method, parts.path))
                if handler is None:
                    status, answer = 404, {"error": "not_found", "message": f"no {parts.path}"}
                elif parts.path != "/api/v1/auth/token" and self.headers.get(
                    "Authorization"
                ) not in (f"Token {TOKEN}", None):
                    status, answer = (
                        401,
                        {
                            "error": "authentication_failed",
                            "message": "Invalid token.",
                        },
                    )
                else:
                    status, answer = handler(parse_qs(parts.query), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def deployment(dep_id: int = 7, status: str = "queued", **job: Any) -> dict:
    return {
        "id": dep_id,
        "name": "hello",
        "owner": "alice",
        "status": status,
        "target": {"node": 1},
        "resources": {},
        "script_sha256": "0" * 64,
        "expires_at": "2026-11-25T07:00:00+00:00",
        "created": CREATED,
        "updated": CREATED,
        "job": {
            "id": "ab" * 16,
            "state": status,
            "attempt": 1,
            "max_attempts": 3,
            "node": 1,
            "deadline": None,
            "next_attempt_at": None,
            "result": None,
            "error": "",
            "finished_at": None,
            **job,
        },
    }


def event(seq: int, status: str, *, log: str = "", second: int = 0, **extra: Any) -> dict:
    return {
        "seq": seq,
        "attempt": extra.pop("attempt", 1),
        "status": status,
        "log": log,
        "result": extra.pop("result", None),
        "error": extra.pop("error", ""),
        "ts": f"2026-11-25T06:00:{second:02d}+00:00",
        "created": f"2026-11-25T06:00:{second:02d}+00:00",
    }


def scripted_events(steps: list[list[dict]], final_status: str) -> Callable:
    """An events handler that reveals one batch of events per poll, like a job progressing."""
    shown = {"batches": 0}

    def handler(query: dict, body: Any) -> tuple[int, Any]:
        after = int(query.get("after", ["0"])[0])
        revealed = [e for batch in steps[: shown["batches"] + 1] for e in batch]
        shown["batches"] = min(shown["batches"] + 1, len(steps))
        fresh = [e for e in revealed if e["seq"] > after]
        done = shown["batches"] >= len(steps)
        status = final_status if done else (revealed[-1]["status"] if revealed else "queued")
        return 200, {
            "status": status,
            "results": fresh,
            "next": fresh[-1]["seq"] if fresh else after,
        }

    return handler
