"""A strict HTTP stub that serves an OpenAPI 3.0 spec and refuses anything the spec does not allow.

cloud-hypervisor and mycelium cannot be installed here, so their drivers are tested against fakes
built on this stub. The stub is the guard that keeps the fakes honest: every request is checked
against the published spec (path, method, query parameters, path parameters, content type, JSON
body against the schema) before a handler sees it, and every reply a handler gives is checked
against the spec too (2xx status declared, body matching the response schema). Anything that
does not conform is recorded as a violation and, for requests, answered with 400. Tests assert
that the violation list is empty, so a driver that sends one request the real daemon would not
accept fails its tests here.

Strictness beyond the letter of the spec, on purpose:
- object schemas refuse properties they do not list (`forbid_unknown_properties`), so a typo in
  a field name (`boot_vcpu`) is caught instead of silently ignored;
- integer formats (int8 … uint32, int64) and string formats (ipv6, byte, hex) are enforced;
- an operation without a `requestBody` must be sent without a body, unless the fake registers
  a documented supplement for it (`extra_bodies`, for the places where a spec omits a body the
  real daemon requires).

The stub runs in-process (`serve_unix`/`serve_tcp` in a thread) or as the main loop of a fake
binary that a driver spawns exactly like the real daemon (`make_fake_binary`). A fake binary
writes one JSON line per request and per violation to the file named by `ZOS_STUB_LOG`, which
the tests read back with `read_log`.
"""

import base64
import binascii
import ipaddress
import json
import os
import re
import signal
import socketserver
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPECS_DIR = Path(os.environ.get("ZOS_SPECS_DIR", Path(__file__).parents[2] / "sal" / "specs"))
REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_ENV = "ZOS_STUB_LOG"
_SPEC_URI = "urn:zos:spec"
_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
}
_HEX = re.compile(r"^[0-9a-fA-F]*$")


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())

    for name, (low, high) in _INT_RANGES.items():

        def in_range(value: Any, low: int = low, high: int = high) -> bool:
            return not isinstance(value, int) or isinstance(value, bool) or low <= value <= high

        checker.checks(name)(in_range)

    @checker.checks("ipv6")
    def is_ipv6(value: Any) -> bool:
        if not isinstance(value, str):
            return True
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return False
        return True

    @checker.checks("byte")
    def is_base64(value: Any) -> bool:
        if not isinstance(value, str):
            return True
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        return True

    @checker.checks("hex")
    def is_hex(value: Any) -> bool:
        return not isinstance(value, str) or bool(_HEX.match(value))

    return checker


def _to_json_schema(node: Any, *, forbid_unknown: bool) -> Any:
    """OpenAPI 3.0 schema objects → draft-4 JSON Schema (nullable, closed objects)."""
    if isinstance(node, list):
        return [_to_json_schema(item, forbid_unknown=forbid_unknown) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: _to_json_schema(value, forbid_unknown=forbid_unknown) for key, value in node.items()
    }
    if out.pop("nullable", False) is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if (
        forbid_unknown
        and isinstance(out.get("properties"), dict)
        and "additionalProperties" not in out
    ):
        out["additionalProperties"] = False
    return out


@dataclass
class StubRequest:
    method: str
    path: str  # the raw path as sent, without the query
    template: str  # the spec path it matched, e.g. /api/v1/admin/peers/{endpoint}
    path_params: dict[str, str]
    query: dict[str, Any]
    body: Any  # parsed JSON, or None when the request had no body


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serialisable, or str for text/plain
    content_type: str = "application/json"


@dataclass
class Violation:
    method: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}: {self.reason}"


Handler = Callable[[StubRequest], Reply]


@dataclass
class _Operation:
    method: str
    template: str
    regex: re.Pattern
    spec: dict
    params: dict[tuple[str, str], dict] = field(default_factory=dict)  # (in, name) → param
    param_validators: dict[tuple[str, str], Draft4Validator] = field(default_factory=dict)
    body_validator: Draft4Validator | None = None
    body_required: bool = False
    body_types: tuple[str, ...] = ()
    responses: dict[int, Draft4Validator | None] = field(default_factory=dict)
    declared: set[int] = field(default_factory=set)


class SpecStub:
    """The spec, compiled into validators, plus the handlers a fake registers per operation."""

    def __init__(
        self,
        spec_path: Path,
        *,
        forbid_unknown_properties: bool = True,
        extra_bodies: dict[tuple[str, str], dict] | None = None,
        log_path: Path | None = None,
    ) -> None:
        raw = yaml.safe_load(Path(spec_path).read_text())
        self.spec_path = Path(spec_path)
        self.prefix = urlsplit(raw["servers"][0]["url"]).path.rstrip("/")
        doc = _to_json_schema(raw, forbid_unknown=forbid_unknown_properties)
        self._fragments: dict[str, Any] = {}
        doc.setdefault("components", {})["x-stub"] = self._fragments
        self._doc = doc
        self._format_checker = _format_checker()
        self._registry = Registry().with_resource(
            _SPEC_URI, Resource.from_contents(doc, default_specification=DRAFT4)
        )
        extra_bodies = {
            (m.upper(), t): _to_json_schema(s, forbid_unknown=forbid_unknown_properties)
            for (m, t), s in (extra_bodies or {}).items()
        }
        self.operations: list[_Operation] = []
        self.spec_gaps: list[str] = []
        for template, item in doc["paths"].items():
            full = self.prefix + template
            for method, op in item.items():
                if method not in {"get", "put", "post", "delete", "patch", "head", "options"}:
                    continue
                self.operations.append(self._compile(method.upper(), full, item, op, extra_bodies))
        unknown = set(extra_bodies) - {(o.method, o.template) for o in self.operations}
        if unknown:
            raise ValueError(f"extra_bodies name operations the spec lacks: {sorted(unknown)}")
        self.handlers: dict[tuple[str, str], Handler] = {}
        self.violations: list[Violation] = []
        self.lock = threading.RLock()  # handlers and timers of a fake share it
        self.log_path = log_path

    def _validator(self, schema: dict) -> Draft4Validator:
        key = f"s{len(self._fragments)}"
        self._fragments[key] = schema
        return Draft4Validator(
            {"$ref": f"{_SPEC_URI}#/components/x-stub/{key}"},
            registry=self._registry,
            format_checker=self._format_checker,
        )

    def _compile(self, method: str, full: str, item: dict, op: dict, extra: dict) -> _Operation:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(full))
        compiled = _Operation(method, full, re.compile(f"^{pattern}$"), op)
        for param in [*item.get("parameters", []), *op.get("parameters", [])]:
            key = (param["in"], param["name"])
            compiled.params[key] = param
            compiled.param_validators[key] = self._validator(param.get("schema", {}))
        for name in re.findall(r"\{(\w+)\}", full):
            if ("path", name) not in compiled.params:
                # The spec forgot to declare it (mycelium's DELETE /admin/peers/{endpoint}):
                # a path segment is a string, and the gap is listed for the docs.
                self.spec_gaps.append(f"{method} {full}: path parameter {name} undeclared")
                compiled.params[("path", name)] = {"in": "path", "name": name}
                compiled.param_validators[("path", name)] = self._validator({"type": "string"})
        body = op.get("requestBody")
        if body is not None:
            compiled.body_types = tuple(body.get("content", {}))
            compiled.body_required = bool(body.get("required", False))
            schema = next(iter(body.get("content", {}).values()), {}).get("schema")
            if schema is not None:
                compiled.body_validator = self._validator(schema)
        elif (method, full) in extra:
            compiled.body_types = ("application/json",)
            compiled.body_required = True
            compiled.body_validator = self._validator(extra[(method, full)])
        for status, response in op.get("responses", {}).items():
            code = int(status)
            compiled.declared.add(code)
            json_content = response.get("content", {}).get("application/json")
            compiled.responses[code] = (
                self._validator(json_content["schema"]) if json_content else None
            )
        return compiled

    # -- handlers -------------------------------------------------------------------------------

    def on(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """Register the handler for one operation; `path` as the spec writes it (no prefix)."""
        key = (method.upper(), self.prefix + path)
        if not any((o.method, o.template) == key for o in self.operations):
            raise ValueError(f"{method} {path} is not an operation of {self.spec_path.name}")

        def register(handler: Handler) -> Handler:
            self.handlers[key] = handler
            return handler

        return register

    # -- validation and dispatch ----------------------------------------------------------------

    def _record(self, method: str, path: str, reason: str) -> None:
        violation = Violation(method, path, reason)
        self.violations.append(violation)
        self._log({"method": method, "path": path, "violation": reason})

    def _log(self, entry: dict) -> None:
        if self.log_path is not None:
            with open(self.log_path, "a") as log:
                log.write(json.dumps(entry) + "\n")

    def _errors(self, validator: Draft4Validator, instance: Any) -> list[str]:
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(instance)
        ]

    def _check_request(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[StubRequest | None, str | None]:
        split = urlsplit(raw_path)
        path = split.path
        matches = [o for o in self.operations if o.regex.match(path)]
        if not matches:
            return None, "unknown path"
        op = next((o for o in matches if o.method == method), None)
        if op is None:
            allowed = ", ".join(sorted({o.method for o in matches}))
            return None, f"method {method} not allowed (spec allows {allowed})"
        match = op.regex.match(path)
        path_params = {name: unquote(value) for name, value in match.groupdict().items()}
        for name, value in path_params.items():
            if ("path", name) not in op.params:
                return None, f"path parameter {name} is not declared"
            errors = self._errors(op.param_validators[("path", name)], value)
            if errors:
                return None, f"path parameter {name}={value!r}: {'; '.join(errors)}"
        query, reason = self._check_query(op, split.query)
        if reason:
            return None, reason
        parsed, reason = self._check_body(op, headers, body)
        if reason:
            return None, reason
        return StubRequest(method, path, op.template, path_params, query, parsed), None

    def _check_query(self, op: _Operation, raw_query: str) -> tuple[dict, str | None]:
        values = parse_qs(raw_query, keep_blank_values=True)
        query: dict[str, Any] = {}
        for name, given in values.items():
            param = op.params.get(("query", name))
            if param is None:
                return {}, f"query parameter {name!r} is not declared"
            if len(given) > 1:
                return {}, f"query parameter {name!r} given {len(given)} times"
            value, reason = _coerce(given[0], param.get("schema", {}))
            if reason:
                return {}, f"query parameter {name}: {reason}"
            errors = self._errors(op.param_validators[("query", name)], value)
            if errors:
                return {}, f"query parameter {name}: {'; '.join(errors)}"
            query[name] = value
        for (where, name), param in op.params.items():
            if where == "query" and param.get("required") and name not in query:
                return {}, f"required query parameter {name!r} missing"
        return query, None

    def _check_body(
        self, op: _Operation, headers: dict[str, str], body: bytes
    ) -> tuple[Any, str | None]:
        if not op.body_types:
            if body:
                return None, "the spec declares no request body for this operation"
            return None, None
        if not body:
            if op.body_required:
                return None, "request body required"
            return None, None
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in op.body_types:
            return None, f"content type {content_type or '<none>'!r}, spec wants {op.body_types}"
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            return None, f"body is not JSON: {exc}"
        if op.body_validator is not None:
            errors = self._errors(op.body_validator, parsed)
            if errors:
                return None, "body does not match the schema: " + "; ".join(errors)
        return parsed, None

    def _check_reply(self, op: _Operation, reply: Reply) -> str | None:
        if 200 <= reply.status < 300:
            if reply.status not in op.declared:
                return f"handler answered {reply.status}, spec declares {sorted(op.declared)}"
            validator = op.responses.get(reply.status)
            if validator is None:
                if reply.body is not None:
                    return f"handler sent a body with {reply.status}, the spec declares none"
                return None
            errors = self._errors(validator, reply.body)
            if errors:
                return "handler reply does not match the schema: " + "; ".join(errors)
        return None

    def dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Validate one request, run its handler, validate the reply. Usable without sockets."""
        method = method.upper()
        headers = {k.lower(): v for k, v in headers.items()}
        path = urlsplit(raw_path).path
        with self.lock:
            request, reason = self._check_request(method, raw_path, headers, body)
            if request is None:
                self._record(method, raw_path, reason)
                return Reply(400, f"spec violation: {reason}", "text/plain")
            handler = self.handlers.get((method, request.template))
            if handler is None:
                reason = "operation valid but the fake does not implement it"
                self._record(method, path, reason)
                return Reply(501, reason, "text/plain")
            try:
                reply = handler(request)
            except Exception as exc:
                self._record(method, path, f"handler crashed: {exc!r}")
                return Reply(500, f"fake crashed: {exc!r}", "text/plain")
            op = next(
                o for o in self.operations if (o.method, o.template) == (method, request.template)
            )
            reason = self._check_reply(op, reply)
            if reason:
                self._record(method, path, reason)
            self._log(
                {"method": method, "path": raw_path, "body": request.body, "status": reply.status}
            )
            return reply

    # -- serving --------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    reply = Reply(400, "chunked bodies are not supported by the stub", "text/plain")
                    stub._record(self.command, self.path, "chunked request body")
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length) if length else b""
                    reply = stub.dispatch(self.command, self.path, dict(self.headers), body)
                payload = b""
                if reply.body is not None:
                    if reply.content_type == "application/json":
                        payload = json.dumps(reply.body).encode()
                    else:
                        payload = str(reply.body).encode()
                self.send_response(reply.status)
                if payload:
                    self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)
                self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

            def address_string(self) -> str:
                return "stub-client"

            def log_message(self, format: str, *args: Any) -> None:
                """Requests are logged as JSON by the stub itself; keep stderr quiet."""

        return RequestHandler

    def serve_unix(self, socket_path: Path) -> socketserver.BaseServer:
        """Listen on a unix socket (the way cloud-hypervisor's `--api-socket` does)."""
        server = _UnixHTTPServer(str(socket_path), self._handler_class())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def serve_tcp(self, host: str, port: int) -> socketserver.BaseServer:
        """Listen on host:port (the way mycelium's `--api-addr` does)."""
        server = ThreadingHTTPServer((host, port), self._handler_class())
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        socketserver.UnixStreamServer.server_bind(self)
        self.server_name = "localhost"
        self.server_port = 0


def _coerce(text: str, schema: dict) -> tuple[Any, str | None]:
    """A query string value → the type its schema declares (the wire only carries text)."""
    kind = schema.get("type", "string")
    if kind == "boolean":
        if text not in ("true", "false"):
            return None, f"{text!r} is not a boolean (true or false)"
        return text == "true", None
    if kind == "integer":
        try:
            return int(text), None
        except ValueError:
            return None, f"{text!r} is not an integer"
    return text, None


# -- running a fake as a binary ---------------------------------------------------------------


def log_path_from_env() -> Path | None:
    value = os.environ.get(LOG_ENV)
    return Path(value) if value else None


def wait_for_termination(on_stop: Callable[[], None] | None = None) -> None:
    """Block the fake's main thread until SIGTERM/SIGINT (like the daemons it stands in for)."""
    stop = threading.Event()

    def handle(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    stop.wait()
    if on_stop is not None:
        on_stop()


def make_fake_binary(
    directory: Path, name: str, module: str, *, log_path: Path, env: dict[str, str] | None = None
) -> Path:
    """Write an executable `directory/name` that runs `python -m module "$@"`.

    The driver under test spawns it exactly as it would spawn the real daemon (same argv), and
    the fake's request log and violations land in `log_path`.
    """
    variables = {"PYTHONPATH": str(REPO_ROOT), LOG_ENV: str(log_path), **(env or {})}
    exports = "".join(f"export {k}='{v}'\n" for k, v in variables.items())
    script = directory / name
    script.write_text(f'#!/bin/sh\n{exports}exec {sys.executable} -m {module} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def read_log(log_path: Path) -> list[dict]:
    if not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]


def violations_in(log_path: Path) -> list[dict]:
    return [entry for entry in read_log(log_path) if "violation" in entry]


def load_spec_stub(name: str, **kwargs: Any) -> SpecStub:
    """A stub for one of the published specs in sal/specs (`cloud-hypervisor.yaml`)."""
    return SpecStub(SPECS_DIR / name, **kwargs)
