"""The node's HTTP client for the ledger: every request signed per ARCHITECTURE §4.

The client learns the ledger's clock from a `timestamp_skew` refusal and signs with the corrected
time from then on, so a node with a wrong clock (common on fresh hardware) still gets in.
"""

import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from nodeagent.identity import NodeIdentity
from signing.node_request import sign_request

log = logging.getLogger(__name__)


class LedgerUnavailable(Exception):
    """The ledger could not be reached or answered 5xx: try again later."""


class LedgerRefused(Exception):
    """The ledger answered 4xx: `code` says why (e.g. `enroll_token_expired`)."""

    def __init__(self, status: int, code: str, message: str, body: dict) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class LedgerClient:
    def __init__(self, base_url: str, identity: NodeIdentity, *, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.identity = identity
        self.timeout = timeout
        self.clock_offset = 0.0
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "zos-nodeagent"

    def request(self, method: str, path: str, payload: Any = None) -> dict:
        try:
            return self._send(method, path, payload)
        except LedgerRefused as exc:
            self._learn_clock(exc)
            return self._send(method, path, payload)

    def _learn_clock(self, exc: LedgerRefused) -> None:
        """Take the ledger's clock from a `timestamp_skew` refusal (the caller then tries once
        more); re-raise any other refusal."""
        if exc.code != "timestamp_skew" or type(exc.body.get("server_time")) not in (int, float):
            raise exc
        self.clock_offset = exc.body["server_time"] - time.time()
        log.warning(
            "this node's clock is %s the ledger's by %.0f s; signing with the ledger's time "
            "(fix the node's clock: NTP)",
            "behind" if self.clock_offset > 0 else "ahead of",
            abs(self.clock_offset),
        )

    def _headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        split = urlsplit(url)
        path_and_query = split.path + (f"?{split.query}" if split.query else "")
        return {
            "Authorization": sign_request(
                self.identity.signing_key,
                method,
                path_and_query,
                body,
                ts=int(time.time() + self.clock_offset),
            ),
            "Content-Type": "application/json",
        }

    def _send(self, method: str, path: str, payload: Any) -> dict:
        url = self.base_url + path
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        try:
            response = self.session.request(
                method,
                url,
                data=body or None,
                headers=self._headers(method, url, body),
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise LedgerUnavailable(f"{method} {url}: {exc}") from exc
        if response.status_code >= 500:
            raise LedgerUnavailable(f"{method} {url}: HTTP {response.status_code}")
        return self._json(method, url, response)

    def download(self, path: str) -> requests.Response:
        """A signed GET whose body is streamed (an image part): the caller reads and closes it.

        Refusals are raised as for `request`, and a clock refusal is corrected as there.
        """
        try:
            return self._download(path)
        except LedgerRefused as exc:
            self._learn_clock(exc)
            return self._download(path)

    def _download(self, path: str) -> requests.Response:
        url = self.base_url + path
        try:
            response = self.session.get(
                url, headers=self._headers("GET", url, b""), timeout=self.timeout, stream=True
            )
        except requests.RequestException as exc:
            raise LedgerUnavailable(f"GET {url}: {exc}") from exc
        if response.status_code >= 400:
            with response:
                if response.status_code >= 500:
                    raise LedgerUnavailable(f"GET {url}: HTTP {response.status_code}")
                self._json("GET", url, response)
        return response

    @staticmethod
    def _json(method: str, url: str, response: requests.Response) -> dict:
        try:
            data = response.json()
        except ValueError:
            raise LedgerUnavailable(
                f"{method} {url}: HTTP {response.status_code} with a non-JSON body"
            ) from None
        if response.status_code >= 400:
            raise LedgerRefused(
                response.status_code,
                str(data.get("error", "error")),
                str(data.get("message", "")),
                data,
            )
        return data

    def register(self, registration: dict) -> dict:
        return self.request("POST", "/api/v1/nodes", registration)

    def report_uptime(self, node_id: int, report: dict) -> dict:
        return self.request("POST", f"/api/v1/nodes/{node_id}/uptime", report)

    def user_keys(self, user_id: int) -> dict:
        return self.request("GET", f"/api/v1/users/{user_id}/keys")
