"""A small JSON-over-HTTP client for the daemons the SALs drive, on a unix socket or loopback TCP.

cloud-hypervisor serves its API on the unix socket given by `--api-socket`, mycelium on
127.0.0.1:<port>. Both speak plain HTTP/1.1 with JSON bodies, so one client built on the standard
library's `http.client` covers both: no extra dependency on the node image, and a failure to
connect is told apart from an HTTP error status (the caller decides what a 404 or 405 means).
"""

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sal.command import SalError

DEFAULT_TIMEOUT = 10.0


class ApiUnavailable(SalError):
    """The daemon's API could not be reached at all (no socket, connection refused, timeout)."""


class ApiError(SalError):
    """The daemon answered with an error status the caller did not expect."""

    def __init__(self, what: str, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{what}: HTTP {status}{': ' + body if body else ''}")


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTPConnection whose transport is a unix stream socket instead of TCP."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class HttpApi:
    """One daemon's API. Give `socket_path` for a unix socket, or `host` and `port` for TCP.

    `prefix` is prepended to every path (`/api/v1`), so callers write the paths the spec lists.
    """

    def __init__(
        self,
        *,
        socket_path: str | None = None,
        host: str | None = None,
        port: int | None = None,
        prefix: str = "",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if (socket_path is None) == (host is None):
            raise ValueError("give either socket_path or host and port")
        self.socket_path = socket_path
        self.host = host
        self.port = port
        self.prefix = prefix
        self.timeout = timeout

    @property
    def where(self) -> str:
        return f"unix:{self.socket_path}" if self.socket_path else f"http://{self.host}:{self.port}"

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.socket_path is not None:
            return _UnixHTTPConnection(self.socket_path, timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        query: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> ApiResponse:
        """Send one request; return whatever status came back. Raise ApiUnavailable when the
        daemon cannot be reached or does not answer in time."""
        url = self.prefix + path
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": "application/json"}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connection(self.timeout if timeout is None else timeout)
        try:
            conn.request(method, url, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return ApiResponse(resp.status, data, resp.getheader("Content-Type", ""))
        except (OSError, http.client.HTTPException) as exc:
            raise ApiUnavailable(f"{method} {url} on {self.where} failed: {exc}") from exc
        finally:
            conn.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        query: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200, 204),
        timeout: float | None = None,
    ) -> ApiResponse:
        """Like `request`, but any status outside `ok` raises ApiError naming the call."""
        resp = self.request(method, path, json_body=json_body, query=query, timeout=timeout)
        if resp.status not in ok:
            raise ApiError(f"{method} {self.prefix}{path} on {self.where}", resp.status, resp.text)
        return resp
