"""HeroDB: a Redis-protocol database for one user, each its own `redis-server` (ARCHITECTURE §6).

Every database is a separate server process so one user's load, memory or crash never reaches
another's. The server is started with `daemonize yes` through `sal.command.run`: it forks into
its own session and is re-parented away from the agent, so restarting or upgrading the agent
does not take users' databases down. Everything needed to find or restart it lives in
`<state_root>/<db_id>/` (spec.json, redis.conf, redis.pid, redis.log, admin.secret); `adopt()`
and `ensure_running()` rebuild the picture from those directories alone.

Safety choices, each because the database is reachable over the overlay network:
- the `default` user (the one the customer's password belongs to) has `-@admin` and no
  MIGRATE/RESTORE, so CONFIG, SHUTDOWN, MODULE, DEBUG, ACL SETUSER, MONITOR, REPLICAOF, CLIENT
  KILL and outbound MIGRATE are refused; DEBUG and MODULE are also disabled server-wide;
- a separate `zos-admin` user, whose random secret stays in the state directory, is how the
  node itself asks INFO and SHUTDOWN;
- only password hashes are written to disk; there is no unix socket; protected mode stays on;
- `maxmemory-policy noeviction`: a full database refuses writes with an OOM error instead of
  silently dropping the user's keys; AOF (`appendfsync everysec`) makes data survive a crash.
"""

import base64
import contextlib
import fcntl
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sal.command import CommandFailed, SalError, run, wait_gone

log = logging.getLogger(__name__)

DB_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Printable ASCII without space, quotes or backslash: safe to type in any client and shell.
PASSWORD_PATTERN = re.compile(r"[A-Za-z0-9!#$%&()*+,./:;<=>?@\[\]^_{|}~-]+")
PASSWORD_MIN_LENGTH = 16
PASSWORD_MAX_LENGTH = 128
MEMORY_MIN_MB = 8  # an empty redis-server already uses about 1 MiB
MEMORY_MAX_MB = 1024 * 1024
DEFAULT_PORT_RANGE = (16380, 16899)
ADMIN_USER = "zos-admin"
CUSTOMER_ACL = "+@all -@admin -migrate -restore -restore-asking"
_LOG_TAIL_LINES = 20


class HeroDBError(SalError):
    """A database operation failed; the message says which database and why."""


class HeroDBNotFound(HeroDBError):
    """No database with that id on this node."""


class DbState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"  # no process: deleted by a reboot, crashed or killed
    UNRESPONSIVE = "unresponsive"  # the process exists but does not answer the node


@dataclass(frozen=True)
class DbInfo:
    """What `herodb_info` reports. Usage fields are None when the server cannot be asked."""

    db_id: str
    state: DbState
    bind: str
    port: int
    address: str  # host:port as a client writes it ([v6]:port for IPv6)
    pid: int | None
    max_memory_mb: int
    used_memory_bytes: int | None
    keys: int | None
    data_bytes: int  # the persistence files (AOF) on disk
    data_dir: str


@dataclass(frozen=True)
class _Spec:
    """The stored, comparable form of a create request; the password only as its SHA-256."""

    db_id: str
    password_sha256: str
    max_memory_mb: int
    data_dir: str
    bind: str
    port: int

    @property
    def address(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"{host}:{self.port}"


def _quote(value: str) -> str:
    """A redis.conf string argument: double-quoted, with backslash and quote escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _proc_argv(pid: int) -> list[str] | None:
    """The argv of a live (not zombie) process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"]):
        return None
    return raw.decode(errors="replace").rstrip("\0").split("\0")


def _directory_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total


class HeroDB:
    """The node's HeroDB SAL. Every method is synchronous and bounded in time; errors are
    HeroDBError. Safe to use from several processes: changes take a lock in `state_root`."""

    def __init__(
        self,
        state_root: Path | str,
        redis_binary: str = "redis-server",
        *,
        port_range: tuple[int, int] = DEFAULT_PORT_RANGE,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        command_timeout: float = 3.0,
    ) -> None:
        low, high = port_range
        if not 1024 <= low <= high <= 65535:
            raise HeroDBError(f"port range {low}-{high} must lie within 1024-65535, low <= high")
        self.state_root = Path(state_root)
        self.redis_binary = redis_binary
        self.port_range = (low, high)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.command_timeout = command_timeout

    # ---- public API -------------------------------------------------------------------------

    def create(
        self,
        db_id: str,
        password: str,
        max_memory_mb: int,
        data_dir: Path | str,
        bind: str,
        port: int | None = None,
    ) -> DbInfo:
        """Create and start a database, waiting until it answers AUTH+PING.

        Idempotent: the same request again returns the existing database (starting it if it is
        stopped); a different one for the same id is refused. `port=None` allocates a free port
        from the port range.
        """
        self._check_id(db_id)
        self._check_password(password)
        self._check_memory(max_memory_mb)
        data_path = self._check_data_dir(data_dir)
        address = self._check_bind(bind)
        if port is not None:
            self._check_port(port)
        password_sha256 = hashlib.sha256(password.encode()).hexdigest()
        with self._locked():
            existing = self._load_spec(db_id)
            if existing is not None:
                wanted = {
                    "password": password_sha256,
                    "max_memory_mb": max_memory_mb,
                    "data_dir": str(data_path),
                    "bind": address,
                    "port": existing.port if port is None else port,
                }
                have = {**asdict(existing), "password": existing.password_sha256}
                differs = [name for name, value in wanted.items() if have[name] != value]
                if differs:
                    raise HeroDBError(
                        f"herodb {db_id!r} already exists with a different "
                        f"{', '.join(differs)}; delete it first or choose another id"
                    )
                if self._pid(existing) is None:
                    self._start(existing)
                return self._info(existing)
            others = self._all_specs()
            for other in others:
                if other.data_dir == str(data_path):
                    raise HeroDBError(
                        f"data directory {data_path} is already used by herodb {other.db_id!r}"
                    )
                if port is not None and other.port == port:
                    raise HeroDBError(f"port {port} is already used by herodb {other.db_id!r}")
            if port is None:
                port = self._allocate_port(address, {o.port for o in others})
            spec = _Spec(db_id, password_sha256, max_memory_mb, str(data_path), address, port)
            state = self._dir(db_id)
            if state.exists():  # a create that died before writing spec.json
                shutil.rmtree(state)
            state.mkdir(parents=True, mode=0o700)
            # spec.json last and atomically: its presence is what makes the database exist.
            partial = state / "spec.json.partial"
            partial.write_text(json.dumps(asdict(spec), indent=2) + "\n")
            partial.replace(state / "spec.json")
            try:
                self._start(spec)
            except HeroDBError:
                self._stop(spec)
                shutil.rmtree(state, ignore_errors=True)
                raise
            log.info("herodb %s created at %s", db_id, spec.address)
            return self._info(spec)

    def generated_password(self, db_id: str, salt: str) -> str:
        """A password for a database whose owner chose none, derived from a node-local key, the
        id and `salt` (the workload's creation time).

        Derived rather than random so a create re-run after a crash asks for the same password
        (and can show it to the owner again), while no password is ever written down: only the
        key, in `<state_root>/password.key`, mode 0600.
        """
        self._check_id(db_id)
        key_path = self.state_root / "password.key"
        with self._locked():
            if not key_path.exists():
                partial = self.state_root / "password.key.partial"
                partial.touch(mode=0o600)
                partial.write_text(secrets.token_hex(32))
                partial.replace(key_path)
            key = bytes.fromhex(key_path.read_text().strip())
        digest = hmac.new(key, f"{db_id}\0{salt}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def has_password(self, db_id: str, password: str) -> bool:
        """True when `password` is the database's: its hash matches the one on record."""
        self._check_id(db_id)
        spec = self._load_spec(db_id)
        wanted = hashlib.sha256(password.encode()).hexdigest()
        return spec is not None and hmac.compare_digest(spec.password_sha256, wanted)

    def info(self, db_id: str) -> DbInfo:
        """State and usage, asked of the server itself. Unknown id → HeroDBNotFound."""
        self._check_id(db_id)
        spec = self._load_spec(db_id)
        if spec is None:
            raise HeroDBNotFound(f"no herodb {db_id!r} on this node")
        return self._info(spec)

    def delete(self, db_id: str) -> None:
        """Stop the server and remove its state directory; unknown id is a no-op.

        The data directory is the caller's (a subvolume it created) and is left for it to
        delete.
        """
        self._check_id(db_id)
        with self._locked():
            state = self._dir(db_id)
            spec = self._load_spec(db_id)
            if spec is not None:
                self._stop(spec)
            if state.exists():
                shutil.rmtree(state)
                log.info("herodb %s deleted", db_id)

    def list_dbs(self) -> list[DbInfo]:
        """Every database with a state directory, running or not, ordered by id."""
        return [self._info(spec) for spec in self._all_specs()]

    def adopt(self) -> list[DbInfo]:
        """After an agent restart: the databases whose servers are still running.

        Also clears the directories of creates that died before they were complete.
        """
        with self._locked():
            if self.state_root.is_dir():
                for entry in self.state_root.iterdir():
                    if entry.is_dir() and not (entry / "spec.json").exists():
                        log.warning("removing incomplete herodb state %s", entry)
                        shutil.rmtree(entry, ignore_errors=True)
        return [info for info in self.list_dbs() if info.state != DbState.STOPPED]

    def ensure_running(self) -> list[DbInfo]:
        """Restart every database whose process is gone (a crash, a reboot) from its stored spec.

        Returns the ones restarted. All are tried; if any could not be started, raises one
        HeroDBError naming each of them and why, after starting the others.
        """
        restarted, failures = [], []
        with self._locked():
            for spec in self._all_specs():
                if self._pid(spec) is not None:
                    continue
                try:
                    self._start(spec)
                except HeroDBError as exc:
                    failures.append(str(exc))
                    continue
                log.info("herodb %s restarted", spec.db_id)
                restarted.append(self._info(spec))
        if failures:
            raise HeroDBError(
                f"{len(failures)} herodb(s) could not be restarted:\n" + "\n".join(failures)
            )
        return restarted

    # ---- validation -------------------------------------------------------------------------

    @staticmethod
    def _check_id(db_id: str) -> None:
        if not isinstance(db_id, str) or not DB_ID_PATTERN.fullmatch(db_id):
            raise HeroDBError(
                f"invalid herodb id {db_id!r}: 1-64 characters of letters, digits, '_', '-', "
                "'.', starting with a letter or digit"
            )

    @staticmethod
    def _check_password(password: str) -> None:
        if not isinstance(password, str):
            raise HeroDBError("the password must be a string")
        if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
            raise HeroDBError(
                f"the password must be {PASSWORD_MIN_LENGTH}-{PASSWORD_MAX_LENGTH} characters "
                f"long (got {len(password)})"
            )
        if not PASSWORD_PATTERN.fullmatch(password):
            raise HeroDBError(
                "the password may only contain letters, digits and the printable symbols "
                "!#$%&()*+,-./:;<=>?@[]^_{|}~ (no spaces, quotes or backslashes)"
            )

    @staticmethod
    def _check_memory(max_memory_mb: int) -> None:
        if isinstance(max_memory_mb, bool) or not isinstance(max_memory_mb, int):
            raise HeroDBError(f"max_memory_mb must be a whole number, got {max_memory_mb!r}")
        if not MEMORY_MIN_MB <= max_memory_mb <= MEMORY_MAX_MB:
            raise HeroDBError(
                f"max_memory_mb must be between {MEMORY_MIN_MB} and {MEMORY_MAX_MB}, "
                f"got {max_memory_mb}"
            )

    @staticmethod
    def _check_data_dir(data_dir: Path | str) -> Path:
        path = Path(data_dir)
        if not path.is_absolute():
            raise HeroDBError(f"data directory {str(path)!r} must be an absolute path")
        if any(c in str(path) for c in "\n\r\0"):
            raise HeroDBError(f"data directory {str(path)!r} contains a control character")
        if not path.is_dir():
            raise HeroDBError(f"data directory {path} does not exist (is the volume created?)")
        return path.resolve()

    @staticmethod
    def _check_bind(bind: str) -> str:
        try:
            address = ipaddress.ip_address(bind)
        except ValueError as exc:
            raise HeroDBError(f"bind address {bind!r} is not an IP address") from exc
        if address.is_unspecified or address.is_multicast:
            raise HeroDBError(
                f"bind address {bind!r} must be one concrete address (the node's overlay "
                "address), not a wildcard or multicast address"
            )
        return str(address)

    def _check_port(self, port: int) -> None:
        low, high = self.port_range
        if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= high:
            raise HeroDBError(f"port {port!r} is outside this node's herodb range {low}-{high}")

    # ---- state directory --------------------------------------------------------------------

    def _dir(self, db_id: str) -> Path:
        return self.state_root / db_id

    def _secret_path(self, db_id: str) -> Path:
        return self._dir(db_id) / "admin.secret"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One change at a time across threads and processes (port allocation, create races)."""
        self.state_root.mkdir(parents=True, exist_ok=True)
        with open(self.state_root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load_spec(self, db_id: str) -> _Spec | None:
        try:
            raw = (self._dir(db_id) / "spec.json").read_text()
        except FileNotFoundError:
            return None
        try:
            return _Spec(**json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise HeroDBError(f"herodb {db_id!r} has an unreadable spec.json: {exc}") from exc

    def _all_specs(self) -> list[_Spec]:
        if not self.state_root.is_dir():
            return []
        specs = []
        for entry in sorted(self.state_root.iterdir()):
            if entry.is_dir() and DB_ID_PATTERN.fullmatch(entry.name):
                spec = self._load_spec(entry.name)
                if spec is not None:
                    specs.append(spec)
        return specs

    def _allocate_port(self, bind: str, taken: set[int]) -> int:
        """The lowest port in the range no database owns and nothing else listens on."""
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        low, high = self.port_range
        for port in range(low, high + 1):
            if port in taken:
                continue
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((bind, port))
                except OSError:
                    continue
            return port
        raise HeroDBError(f"no free port left in this node's herodb range {low}-{high}")

    def _config_text(self, spec: _Spec) -> str:
        state = self._dir(spec.db_id).resolve()
        admin_sha256 = hashlib.sha256(self._secret_path(spec.db_id).read_bytes()).hexdigest()
        return (
            "# written by the ZOS herodb SAL from spec.json at every start; edits are lost\n"
            "daemonize yes\n"
            "set-proc-title no\n"
            f"pidfile {_quote(str(state / 'redis.pid'))}\n"
            f"logfile {_quote(str(state / 'redis.log'))}\n"
            f"bind {spec.bind}\n"
            f"port {spec.port}\n"
            "protected-mode yes\n"
            f"dir {_quote(spec.data_dir)}\n"
            "appendonly yes\n"
            "appendfsync everysec\n"
            'save ""\n'
            f"maxmemory {spec.max_memory_mb}mb\n"
            "maxmemory-policy noeviction\n"
            "enable-debug-command no\n"
            "enable-module-command no\n"
            "enable-protected-configs no\n"
            f"user default reset on #{spec.password_sha256} ~* &* {CUSTOMER_ACL}\n"
            f"user {ADMIN_USER} reset on #{admin_sha256} ~* &* +@all\n"
        )

    # ---- the process ------------------------------------------------------------------------

    def _config_path(self, spec: _Spec) -> Path:
        return self._dir(spec.db_id).resolve() / "redis.conf"

    def _is_ours(self, pid: int, spec: _Spec) -> bool:
        argv = _proc_argv(pid)
        return argv is not None and str(self._config_path(spec)) in argv[1:]

    def _pid(self, spec: _Spec) -> int | None:
        """The live server process of this database (checked against its argv, so a stale pid
        file whose number was reused by another process is not mistaken for it)."""
        with contextlib.suppress(OSError, ValueError):
            pid = int((self._dir(spec.db_id) / "redis.pid").read_text().strip())
            if self._is_ours(pid, spec):
                return pid
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self._is_ours(int(entry.name), spec):
                return int(entry.name)
        return None

    def _log_tail(self, spec: _Spec) -> str:
        try:
            lines = (self._dir(spec.db_id) / "redis.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log written)"
        return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(log is empty)"

    def _admin_secret(self, spec: _Spec) -> str:
        try:
            return self._secret_path(spec.db_id).read_text()
        except OSError:
            return ""  # AUTH fails with a RedisError, which every caller handles

    def _admin(self, spec: _Spec) -> redis.Redis:
        return redis.Redis(
            host=spec.bind,
            port=spec.port,
            username=ADMIN_USER,
            password=self._admin_secret(spec),
            socket_timeout=self.command_timeout,
            socket_connect_timeout=self.command_timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def _start(self, spec: _Spec) -> None:
        """Start the server detached and wait until it answers AUTH+PING."""
        if not Path(spec.data_dir).is_dir():
            raise HeroDBError(
                f"cannot start herodb {spec.db_id!r}: its data directory {spec.data_dir} is "
                "missing (is the volume mounted?)"
            )
        secret = self._secret_path(spec.db_id)
        if not secret.exists():  # new, or lost: the config is rewritten below anyway
            secret.touch(mode=0o600)
            secret.write_text(secrets.token_hex(32))
        config = self._config_path(spec)
        config.touch(mode=0o600)
        config.write_text(self._config_text(spec))
        with contextlib.suppress(FileNotFoundError):
            (self._dir(spec.db_id) / "redis.pid").unlink()
        try:
            run([self.redis_binary, str(config)], timeout=self.start_timeout)
        except CommandFailed as exc:
            raise HeroDBError(f"cannot start herodb {spec.db_id!r}: {exc}") from exc
        deadline = time.monotonic() + self.start_timeout
        client = self._admin(spec)
        try:
            while True:
                if self._pid(spec) is None:
                    raise HeroDBError(
                        f"herodb {spec.db_id!r} exited while starting on {spec.address}; the "
                        f"end of its log:\n{self._log_tail(spec)}"
                    )
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self._stop(spec)
                    raise HeroDBError(
                        f"herodb {spec.db_id!r} did not answer AUTH+PING on {spec.address} "
                        f"within {self.start_timeout:g}s; the end of its log:\n"
                        f"{self._log_tail(spec)}"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def _wait_gone(self, pid: int, spec: _Spec, timeout: float) -> bool:
        return wait_gone(lambda: self._is_ours(pid, spec), timeout)

    def _stop(self, spec: _Spec) -> None:
        """SHUTDOWN as the admin user (the AOF is flushed), then SIGTERM, then SIGKILL."""
        pid = self._pid(spec)
        if pid is None:
            return
        client = self._admin(spec)
        try:
            client.shutdown()
        except (redis.RedisError, OSError) as exc:
            log.warning("herodb %s: SHUTDOWN failed (%s); sending SIGTERM", spec.db_id, exc)
        finally:
            client.close()
        if self._wait_gone(pid, spec, self.stop_timeout):
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if self._wait_gone(pid, spec, self.stop_timeout):
                return
        raise HeroDBError(f"herodb {spec.db_id!r} (pid {pid}) did not exit even after SIGKILL")

    def _info(self, spec: _Spec) -> DbInfo:
        pid = self._pid(spec)
        state = DbState.STOPPED if pid is None else DbState.RUNNING
        used = keys = None
        data_bytes = None
        if pid is not None:
            client = self._admin(spec)
            try:
                server = client.info()
            except (redis.RedisError, OSError) as exc:
                log.warning("herodb %s (pid %d) did not answer INFO: %s", spec.db_id, pid, exc)
                state = DbState.UNRESPONSIVE
            else:
                used = int(server["used_memory"])
                keys = sum(
                    int(value["keys"])
                    for name, value in server.items()
                    if name.startswith("db") and isinstance(value, dict)
                )
                data_bytes = server.get("aof_current_size")
            finally:
                client.close()
        if data_bytes is None:
            data_bytes = _directory_bytes(Path(spec.data_dir))
        return DbInfo(
            db_id=spec.db_id,
            state=state,
            bind=spec.bind,
            port=spec.port,
            address=spec.address,
            pid=pid,
            max_memory_mb=spec.max_memory_mb,
            used_memory_bytes=used,
            keys=keys,
            data_bytes=int(data_bytes),
            data_dir=spec.data_dir,
        )
