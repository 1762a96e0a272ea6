"""Caddy as the gateway's reverse proxy, driven through its admin API with JSON (ARCHITECTURE §6).

The architecture names Traefik, which no reachable registry carries; Debian's `caddy` (2.6) is
the stand-in. One Caddy per gateway node serves every gateway name: a route per workload, each
matching its hosts and proxying to its backends (overlay `[address]:port`s).

The node's registry is the source of truth, so the SAL never edits Caddy's config piecemeal:
`sync()` builds the whole config from the routes it is given and loads it with `POST /load`
(atomic in Caddy: the old config keeps serving if the new one is refused). The same JSON is
kept in `<state_dir>/caddy.json`, which is what Caddy starts from, so a restarted Caddy (a
crash, a reboot) serves the last applied routes before the agent has even re-applied them.

State directory (`state_dir`):
- `caddy.json`   the last config loaded (Caddy starts from it)
- `admin.sock`   the admin API; a unix socket, so nothing on the network can reconfigure it
- `caddy.pid`, `caddy.log`
- `data/`        Caddy's storage: certificates, ACME account, the internal CA
                 (`data/pki/authorities/local/root.crt` is the root clients must trust)
- `sync.lock`    held while a config is built and loaded (runners sync concurrently)

TLS: a route with `tls` is served on the HTTPS port with a certificate, and its plain HTTP
requests are redirected there (Caddy's automatic HTTPS). Certificates come from Caddy's
internal CA unless an ACME account is configured (`acme_email`, optional `acme_ca`): that is
the production setting (docs/sal/gateway.md). The internal CA is never installed into the
host's trust store. A route without `tls` is plain HTTP only, in a separate server on the HTTP
port, which Caddy's automatic HTTPS leaves alone.

Backend health: Caddy checks each backend actively (`HEALTH_URI` every `HEALTH_INTERVAL`) and
stops sending requests to one that fails; Caddy 2.6's admin API reports request and failure
counts but not that verdict, so `health()` also probes each backend with a TCP connect from
the namespace Caddy runs in and says whether it answered.
"""

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sal import net
from sal.command import SalError, child_setup, process_alive
from sal.unix_http import ApiUnavailable, HttpApi

BINARY = "caddy"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
HEALTH_URI = "/"
HEALTH_INTERVAL = "10s"
HEALTH_TIMEOUT = "3s"
PROBE_TIMEOUT = 2.0
# A DNS name as a gateway serves it: lowercase labels of letters, digits and inner '-'.
HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")
ROUTE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
MAX_BACKENDS = 16

# Run inside Caddy's namespace: connect to each backend, print {backend: null | error}.
_PROBE = """
import json, socket, sys
out = {}
for backend, timeout in ((b, float(sys.argv[1])) for b in sys.argv[2:]):
    host, _, port = backend.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        out[backend] = None
    except OSError as exc:
        out[backend] = exc.strerror or str(exc)
print(json.dumps(out))
"""


class CaddyError(SalError):
    """A gateway proxy operation failed; the message says what and why."""


@dataclass(frozen=True)
class Route:
    """One gateway workload as Caddy serves it."""

    route_id: str  # node-wide unique (the workload's local id)
    hosts: tuple[str, ...]
    backends: tuple[str, ...]  # dial addresses: `[v6]:port` or `v4:port`
    tls: bool = True


def check_hostname(host: Any) -> str:
    """A host name Caddy may match and get a certificate for; the message names the bad value."""
    if not isinstance(host, str) or not HOSTNAME.match(host):
        raise CaddyError(
            f"{host!r} is not a valid host name: lowercase labels of letters, digits and '-', "
            "separated by dots, e.g. blog.gw1.example.net"
        )
    return host


def parse_backend(backend: Any) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """`[v6]:port` or `v4:port` as (address, port); anything else is a clear error."""
    text = backend if isinstance(backend, str) else ""
    host, sep, port = text.rpartition(":")
    try:
        if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError
        if host.startswith("[") and host.endswith("]"):
            address = ipaddress.IPv6Address(host[1:-1])
        else:
            address = ipaddress.IPv4Address(host)
    except ValueError:
        raise CaddyError(
            f"backend {backend!r} is not an address and port: write [v6 address]:port "
            "(e.g. [400:1234::5]:8080) or ipv4:port"
        ) from None
    return address, int(port)


def dial_address(backend: Any) -> str:
    """The canonical form of a backend, as Caddy dials it and as it is compared."""
    address, port = parse_backend(backend)
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _check_route(route: Route) -> None:
    if not ROUTE_ID.match(route.route_id):
        raise CaddyError(f"route id {route.route_id!r} is not valid")
    if not route.hosts:
        raise CaddyError(f"route {route.route_id}: no host names")
    for host in route.hosts:
        check_hostname(host)
    if not 1 <= len(route.backends) <= MAX_BACKENDS:
        raise CaddyError(f"route {route.route_id}: give 1 to {MAX_BACKENDS} backends")
    for backend in route.backends:
        if dial_address(backend) != backend:
            raise CaddyError(f"route {route.route_id}: backend {backend!r} is not canonical")


class Caddy:
    """One Caddy process and its config, in `state_dir`, optionally in a network namespace."""

    def __init__(
        self,
        state_dir: Path,
        *,
        netns: str | None = None,
        http_port: int = 80,
        https_port: int = 443,
        acme_email: str | None = None,
        acme_ca: str | None = None,
        binary: str = BINARY,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.netns = net.validate_netns_name(netns) if netns else None
        self.http_port = http_port
        self.https_port = https_port
        self.acme_email = acme_email
        self.acme_ca = acme_ca
        self.binary = binary
        self.api = HttpApi(socket_path=str(self.admin_socket))

    # --- files ----------------------------------------------------------------------------

    @property
    def admin_socket(self) -> Path:
        return self.state_dir / "admin.sock"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "caddy.json"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "caddy.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "caddy.log"

    @property
    def root_certificate(self) -> Path:
        """The internal CA's root: what a client trusts to verify this gateway in tests."""
        return self.state_dir / "data" / "pki" / "authorities" / "local" / "root.crt"

    # --- the config -----------------------------------------------------------------------

    def config(self, routes: Iterable[Route]) -> dict:
        """The whole Caddy config for `routes` (sorted, so the same routes give the same JSON)."""
        routes = sorted(routes, key=lambda r: r.route_id)
        for route in routes:
            _check_route(route)
        secure = [self._route_json(r) for r in routes if r.tls]
        plain = [self._route_json(r) for r in routes if not r.tls]
        servers: dict[str, dict] = {}
        if secure:
            servers["https"] = {"listen": [f":{self.https_port}"], "routes": secure}
        if plain:
            servers["http"] = {"listen": [f":{self.http_port}"], "routes": plain}
        if self.acme_email:
            issuer: dict[str, Any] = {"module": "acme", "email": self.acme_email}
            if self.acme_ca:
                issuer["ca"] = self.acme_ca
        else:
            issuer = {"module": "internal"}
        return {
            # `origins`: the Host the admin client sends (HttpApi says "localhost").
            "admin": {
                "listen": f"unix/{self.admin_socket}",
                "origins": ["localhost"],
                "config": {"persist": False},
            },
            "storage": {"module": "file_system", "root": str(self.state_dir / "data")},
            "logging": {"logs": {"default": {"level": "WARN"}}},
            "apps": {
                "pki": {"certificate_authorities": {"local": {"install_trust": False}}},
                "tls": {"automation": {"policies": [{"issuers": [issuer]}]}},
                "http": {
                    "http_port": self.http_port,
                    "https_port": self.https_port,
                    "servers": servers,
                },
            },
        }

    @staticmethod
    def _route_json(route: Route) -> dict:
        return {
            "@id": route.route_id,
            "match": [{"host": list(route.hosts)}],
            "handle": [
                {
                    "handler": "reverse_proxy",
                    "upstreams": [{"dial": b} for b in route.backends],
                    "health_checks": {
                        "active": {
                            "uri": HEALTH_URI,
                            "interval": HEALTH_INTERVAL,
                            "timeout": HEALTH_TIMEOUT,
                        }
                    },
                }
            ],
            "terminal": True,
        }

    # --- the process ----------------------------------------------------------------------

    def pid(self) -> int | None:
        """Caddy's pid if it runs (from the pid file, checked against /proc)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not process_alive(pid):
            return None
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if any(Path(a.decode(errors="replace")).name == "caddy" for a in argv) else None

    def running(self) -> bool:
        return self.pid() is not None

    def answering(self) -> bool:
        try:
            return self.api.request("GET", "/config/", timeout=2.0).status == 200
        except ApiUnavailable:
            return False

    def ensure_running(self) -> None:
        """Start Caddy from the saved config unless it already runs (idempotent)."""
        with self._locked():
            self._ensure_running()

    def _ensure_running(self) -> None:
        if self.running() and self.answering():
            return
        if self.running():  # alive but deaf: start a fresh one rather than wait on it
            self._stop()
        if shutil.which(self.binary) is None:
            raise CaddyError(f"{self.binary} is not installed on this node: a gateway needs it")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.config_file.exists():
            self._write(self.config(()))
        self.admin_socket.unlink(missing_ok=True)
        argv = [self.binary, "run", "--config", str(self.config_file)]
        argv += ["--pidfile", str(self.pid_file)]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(self.state_dir),
            "XDG_DATA_HOME": str(self.state_dir / "xdg-data"),
            "XDG_CONFIG_HOME": str(self.state_dir / "xdg-config"),
        }
        # `setsid -f` forks Caddy into its own session and returns at once: Caddy outlives the
        # agent (and its restarts) and is never left a zombie of ours.
        with self.log_file.open("ab") as log:
            try:
                subprocess.run(
                    ["setsid", "-f", *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    check=True,
                    timeout=10,
                    preexec_fn=child_setup(),
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise CaddyError(f"cannot start {' '.join(argv)}: {exc}") from exc
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answering():
            if time.monotonic() > deadline:
                raise CaddyError(
                    f"caddy did not answer on {self.admin_socket} within {START_TIMEOUT:g}s: "
                    + self._log_tail()
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop Caddy (its routes stop being served); the saved config stays for the next start."""
        with self._locked():
            self._stop()

    def _stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)
        deadline = time.monotonic() + STOP_TIMEOUT
        while process_alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
                break
            time.sleep(0.05)

    # --- applying routes ------------------------------------------------------------------

    def sync(self, routes: Callable[[], Iterable[Route]]) -> None:
        """Make Caddy serve exactly `routes()`: called under the sync lock, so two runners
        syncing at once cannot load each other's stale view of the registry."""
        with self._locked():
            config = self.config(routes())
            self._ensure_running()
            response = self.api.request("POST", "/load", json_body=config, timeout=30.0)
            if response.status != 200:
                raise CaddyError(f"caddy refused the gateway config: {response.text.strip()}")
            self._write(config)

    def loaded(self) -> dict:
        """The config Caddy runs now (what `sync` loaded, or what it started from)."""
        return self.api.call("GET", "/config/").json() or {}

    def _write(self, config: dict) -> None:
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=1, sort_keys=True))
        tmp.replace(self.config_file)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / "sync.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # --- health ---------------------------------------------------------------------------

    def health(self, backends: Iterable[str]) -> list[dict]:
        """Per backend: `up` (it accepted a TCP connection from Caddy's namespace just now),
        the error if not, and Caddy's own request and failure counts for it."""
        backends = list(backends)
        if not backends:
            return []
        argv = [sys.executable, "-c", _PROBE, str(PROBE_TIMEOUT), *backends]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT * len(backends) + 10,
                check=True,
                preexec_fn=child_setup(),
            )
            probed = json.loads(done.stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            raise CaddyError(f"cannot probe the gateway's backends: {exc}") from exc
        counts = {}
        with contextlib.suppress(SalError, ValueError):
            answer = self.api.request("GET", "/reverse_proxy/upstreams", timeout=5.0)
            if answer.status == 200:
                counts = {u["address"]: u for u in answer.json() or []}
        return [
            {
                "backend": b,
                "up": probed.get(b) is None,
                "error": probed.get(b) or "",
                "requests": int(counts.get(b, {}).get("num_requests", 0)),
                "fails": int(counts.get(b, {}).get("fails", 0)),
            }
            for b in backends
        ]

    def _log_tail(self, lines: int = 10) -> str:
        try:
            return " | ".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
