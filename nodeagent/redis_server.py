"""The node's own `redis-server`: the durable home of its job queue and outbox.

A node keeps accepted jobs and unacknowledged events across crashes, so Redis runs with an
append-only file (`appendfsync everysec`) and never evicts (`noeviction`): a full Redis refuses
writes rather than silently dropping a job. The server listens on a unix socket in the data
directory when the path is short enough (no TCP port at all), else on 127.0.0.1 at a free port.

If the server dies, a watcher thread starts it again from the same AOF; while it is down `down`
is True and the agent reports the `redis_down` health flag. The server is tied to the agent's
life (PR_SET_PDEATHSIG), so an agent killed with SIGKILL does not leave it behind.
"""

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

import redis

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_UNIX_SOCKET_PATH = 100
RESTART_BACKOFF_MAX = 30.0


class RedisStartError(Exception):
    pass


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the agent's thread dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """Start, watch and stop one `redis-server` whose data lives in `data_dir`.

    Use as a context manager; `url` is what `redis.Redis.from_url` takes.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        binary: str = "redis-server",
        start_timeout: float = 10.0,
        watch_every: float = 0.5,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.binary = binary
        self.start_timeout = start_timeout
        self.watch_every = watch_every
        self.socket_path = self.data_dir / "redis.sock"
        self.port: int | None = None
        if len(str(self.socket_path.resolve())) > MAX_UNIX_SOCKET_PATH:
            self.port = _free_port()
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._down = threading.Event()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        if self.port is None:
            return f"unix://{self.socket_path.resolve()}"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def down(self) -> bool:
        return self._down.is_set()

    def _config(self) -> str:
        listen = (
            f"port 0\nunixsocket {self.socket_path.resolve()}\nunixsocketperm 700\n"
            if self.port is None
            else f"port {self.port}\nbind 127.0.0.1\n"
        )
        return (
            "# written by the ZOS node agent at every start; edits are overwritten\n"
            f"{listen}"
            f"dir {self.data_dir.resolve()}\n"
            f"logfile {self.log_path.resolve()}\n"
            "daemonize no\n"
            "protected-mode no\n"
            "appendonly yes\n"
            "appendfsync everysec\n"
            "maxmemory-policy noeviction\n"
            'save ""\n'
        )

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=1.0, socket_connect_timeout=1.0)

    def _log_tail(self, lines: int = 15) -> str:
        """The end of the server's log, and anything it printed before opening its log."""
        tail = []
        for path in (self.data_dir / "redis.stderr", self.log_path):
            try:
                tail += path.read_text(errors="replace").splitlines()
            except OSError:
                continue
        return "\n".join(tail[-lines:]) or "(no log written)"

    def _launch(self) -> None:
        """Start the process and wait until it answers PING, or raise RedisStartError."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "redis.conf"
        config.write_text(self._config())
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        try:
            with open(self.data_dir / "redis.stderr", "wb") as output:
                self.process = subprocess.Popen(
                    [self.binary, str(config.resolve())],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,  # only prctl: safe between fork and exec
                    start_new_session=True,  # a Ctrl-C meant for the agent must not reach it
                )
        except OSError as exc:
            raise RedisStartError(f"cannot run {self.binary!r}: {exc}") from exc
        deadline = time.monotonic() + self.start_timeout
        client = self._client()
        try:
            while True:
                if self.process.poll() is not None:
                    raise RedisStartError(
                        f"redis-server exited with code {self.process.returncode} at start; "
                        f"its output and the end of {self.log_path}:\n{self._log_tail()}"
                    )
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self._kill()
                    raise RedisStartError(
                        f"redis-server did not answer PING within {self.start_timeout:.0f}s; "
                        f"its output and the end of {self.log_path}:\n{self._log_tail()}"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def _kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def start(self) -> "RedisServer":
        self._stopping.clear()
        self._launch()
        self._down.clear()
        log.info("redis-server %d listening at %s", self.process.pid, self.url)
        self._watcher = threading.Thread(target=self._watch, name="redis-watch", daemon=True)
        self._watcher.start()
        return self

    def _watch(self) -> None:
        """Restart the server whenever it exits without being asked to."""
        failures = 0
        while not self._stopping.wait(self.watch_every):
            with self._lock:
                if self._stopping.is_set() or self.process.poll() is None:
                    continue
                self._down.set()
                log.error(
                    "redis-server exited with code %s; restarting. The end of its log:\n%s",
                    self.process.returncode,
                    self._log_tail(),
                )
                try:
                    self._launch()
                except RedisStartError as exc:
                    failures += 1
                    delay = min(RESTART_BACKOFF_MAX, 2.0**failures)
                    log.error("%s; trying again in %.0fs", exc, delay)
                    self._stopping.wait(delay)
                    continue
                failures = 0
                self.restarts += 1
                self._down.clear()
                log.info("redis-server restarted (pid %d)", self.process.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """SHUTDOWN via SIGTERM (Redis flushes the AOF), SIGKILL if it takes too long."""
        self._stopping.set()
        if self._watcher:
            self._watcher.join(timeout=timeout)
        with self._lock:
            if self.process and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    log.warning("redis-server ignored SIGTERM for %.0fs; killing it", timeout)
                    self._kill()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
