"""The control plane's HTTP API as `zos` and `python -m image` use it, errors made actionable.

Every 4xx/5xx answer is `{"error": code, "message": text, ...details}` (grid/api_errors.py); the
code picks the hint shown under the message, the details (line/column, fields, functions) are
rendered as they are.
"""

import time
from collections.abc import Iterator
from typing import Any

import requests
from nacl.signing import SigningKey

from client import __version__
from client.errors import EXIT_FAILED, EXIT_USAGE, CliError
from contracts.key_proof import sign_key_proof
from signing.keys import public_key_hex

DEFAULT_TIMEOUT = 15.0

# What to do next, by error code. `{url}` is the control plane's address.
HINTS = {
    "unreachable": "is the control plane running at {url}? Set --url or ZOS_URL "
    "(`./scripts/up` starts one locally)",
    "not_authenticated": "set ZOS_TOKEN or run `zos login`",
    "authentication_failed": "the API token was refused: run `zos login` again or fix ZOS_TOKEN",
    "permission_denied": "this account may not do that; ask an operator",
    "no_keys": "run `zos keygen` then `zos key register`",
    "signature_invalid": "the signing key is not registered (or revoked) for this account: run "
    "`zos key register` for it, or pick a registered key with --key (see `zos key list`)",
    "expired": "check this machine's clock, then deploy again (a new envelope is signed each time)",
    "not_yet_valid": "this machine's clock is ahead of the server's; fix it and deploy again",
    "nonce_reused": "deploy again: every run signs a fresh nonce",
    "script_parse": "fix the script at the position shown and run `zos validate` on it",
    "unknown_function": "scripts may call only catalog functions (`zos catalog` lists them); "
    "`zos validate` checks a script without deploying it",
    "script_too_large": "scripts are limited to 64 KiB",
    "unknown_node": "list nodes with `zos nodes`",
    "node_not_online": "pick an online node: `zos nodes --status online`, or target a farm with "
    "--farm",
    "unknown_farm": "list nodes and their farms with `zos nodes`",
    "no_capacity": "ask for less (--cru/--mru/--sru/--hru) or pick another node or farm: "
    "`zos nodes --status online`",
    "already_finished": "nothing to cancel; see `zos status`",
    "key_exists": "this key is already registered (see `zos key list`)",
    "key_name_taken": "pick another --name, or see `zos key list`",
    "not_found": "check the id; `zos status` lists your deployments",
    "digest_mismatch": "the file changed while it was sent: run `zos image push` again",
    "length_mismatch": "the file changed while it was sent: run `zos image push` again",
    "part_missing": "run `zos image push` again: it uploads the missing parts",
    "version_exists": "versions are never reused: pass another --version",
    "public_needs_staff": "publish it without --public, or ask an operator to publish it",
    "manifest_invalid": "fix the image directory's image.json or the --name/--version given",
    "blob_too_large": "ask the operator to raise ZOS_MAX_BLOB_BYTES",
    "throttled": "wait a little and try again",
    "server_error": "the server failed; try again, and tell the operator if it persists",
}


class ApiError(CliError):
    """A refused request: the server's code, message and details."""

    def __init__(
        self,
        status: int,
        code: str,
        text: str,
        details: dict[str, Any] | None = None,
        *,
        url: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.text = text
        self.details = dict(details or {})
        exit_code = EXIT_USAGE if code == "unreachable" else EXIT_FAILED
        super().__init__(
            self.describe(), hint=HINTS.get(code, "").format(url=url), exit_code=exit_code
        )

    def describe(self) -> str:
        where = f" (HTTP {self.status})" if self.status else ""
        lines = [f"{self.code}{where}: {self.text}"]
        details = dict(self.details)
        if "line" in details:
            position = f"line {details.pop('line')}, column {details.pop('column', '?')}"
            lines.append(f"  at {position}")
        if details.get("functions"):
            lines.append(f"  functions: {', '.join(map(str, details.pop('functions')))}")
        if isinstance(details.get("fields"), dict):
            lines.extend(_field_lines(details.pop("fields")))
        lines.extend(f"  {k}: {v}" for k, v in details.items())
        return "\n".join(lines)


def _field_lines(fields: dict, prefix: str = "") -> list[str]:
    out = []
    for name, value in fields.items():
        if isinstance(value, dict):
            out.extend(_field_lines(value, f"{prefix}{name}."))
        else:
            messages = value if isinstance(value, list) else [value]
            out.append(f"  {prefix}{name}: {'; '.join(map(str, messages))}")
    return out


class Api:
    """One control plane, one optional token; methods return parsed JSON or raise ApiError."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"zos-cli/{__version__}"
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._parse(self._send(method, path, **kwargs))

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        target = path if path.startswith("http") else f"{self.url}{path}"
        try:
            return self.session.request(method, target, timeout=self.timeout, **kwargs)
        except requests.ConnectionError as exc:
            raise ApiError(0, "unreachable", f"cannot connect to {self.url}", url=self.url) from exc
        except requests.Timeout as exc:
            raise ApiError(
                0, "unreachable", f"{self.url} did not answer in {self.timeout:g}s", url=self.url
            ) from exc

    def _parse(self, response: requests.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.ok:
            if body is None and response.content:
                raise ApiError(
                    response.status_code,
                    "bad_response",
                    f"{response.url} answered with something that is not JSON; is --url the "
                    "ZOS control plane?",
                    url=self.url,
                )
            return body
        if isinstance(body, dict) and "error" in body:
            details = {k: v for k, v in body.items() if k not in ("error", "message")}
            raise ApiError(
                response.status_code,
                str(body["error"]),
                str(body.get("message", "")),
                details,
                url=self.url,
            )
        raise ApiError(
            response.status_code,
            "server_error" if response.status_code >= 500 else "http_error",
            f"{response.request.method} {response.url} failed: "
            f"{response.status_code} {response.reason}",
            url=self.url,
        )

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {})

    def paginate(self, path: str, **params: Any) -> Iterator[dict]:
        """Every item of a LimitOffset-paginated list, following `next` links."""
        page = self.get(path, **params)
        while True:
            if isinstance(page, list):
                yield from page
                return
            yield from page.get("results", [])
            if not page.get("next"):
                return
            page = self.request("GET", page["next"])

    # The endpoints, one line each so the API surface the CLI relies on is visible here.

    def obtain_token(self, username: str, password: str) -> str:
        return self.post("/api/v1/auth/token", {"username": username, "password": password})[
            "token"
        ]

    def keys(self) -> list[dict]:
        return list(self.paginate("/api/v1/keys"))

    def add_key(self, name: str, signing_key: SigningKey) -> dict:
        """Register a key with proof of possession: sign the ledger's fresh challenge with it."""
        challenge = self.post("/api/v1/keys/challenge")
        proof = sign_key_proof(
            signing_key,
            user=challenge["user"],
            challenge=challenge["challenge"],
            issued_at=int(time.time()),
        )
        return self.post(
            "/api/v1/keys",
            {"name": name, "public_key": public_key_hex(signing_key), "proof": proof},
        )

    def revoke_key(self, key_id: int) -> dict:
        return self.post(f"/api/v1/keys/{key_id}/revoke")

    def nodes(self, *, farm: int | None = None, status: list[str] | None = None) -> list[dict]:
        return list(self.paginate("/api/v1/nodes", farm=farm, status=status or None))

    def deployments(self) -> list[dict]:
        return list(self.paginate("/api/v1/deployments"))

    def deployment(self, deployment_id: int) -> dict:
        return self.get(f"/api/v1/deployments/{deployment_id}")

    def submit(self, envelope: dict) -> dict:
        return self.post("/api/v1/deployments", {"envelope": envelope})

    def cancel(self, deployment_id: int) -> dict:
        return self.post(f"/api/v1/deployments/{deployment_id}/cancel")

    def events(self, deployment_id: int, after: int = 0) -> dict:
        return self.get(f"/api/v1/deployments/{deployment_id}/events", after=after)

    def validate(self, script: str) -> dict:
        return self.post("/api/v1/scripts/validate", {"script": script})

    def has_blob(self, sha256: str) -> bool:
        """Whether this account uploaded these bytes already (HEAD: a re-push sends nothing)."""
        response = self._send("HEAD", f"/api/v1/blobs/{sha256}")
        if response.status_code == 404:
            return False
        self._parse(response)
        return True

    def upload_blob(self, sha256: str, body: Any) -> dict:
        """Stream `body` (a file-like object with a length) as the blob named `sha256`."""
        headers = {"Content-Type": "application/octet-stream"}
        return self.request("PUT", f"/api/v1/blobs/{sha256}", data=body, headers=headers)

    def publish_image(self, envelope: dict, *, public: bool = False) -> dict:
        return self.post("/api/v1/images", {"envelope": envelope, "public": public})

    def images(self, *, name: str | None = None) -> list[dict]:
        return list(self.paginate("/api/v1/images", name=name))

    def delete_image(self, image_id: int) -> None:
        self.request("DELETE", f"/api/v1/images/{image_id}")

    def catalog(self) -> dict:
        """The functions scripts may call (`GET /api/v1/catalog`, public)."""
        return self.get("/api/v1/catalog")
