"""The node's own log, kept in a bounded ring so an operator can read it without a shell.

The agent, its supervisor thread and every runner process (separate processes) log through
`RingHandler`, which appends each formatted line to the capped Redis stream `zos:log` on the
node's Redis (MAXLEN ~ RING_LINES: the ring never grows past a few thousand lines, whatever the
node logs). One stream rather than one list per process, because the runners are processes and
the stream's ids give the coordinator a cursor for "lines after the last one I showed".

The launcher (nodeagent/launcher.py) logs through `DeferredRingHandler`: it runs before the
agent has started the node's Redis, and its most useful lines (the agent crashed, a release was
rolled back) come while the agent, and with it that Redis, is down. So its lines wait in a
bounded buffer until the Redis the agent last named answers, and then go to the ring in order
(each line carries its own time, so a late line still says when it happened).

Nothing leaves the node unredacted: lines are redacted when written (so the ring itself holds no
passwords) and again when read for the coordinator, that time also with the secrets only the
agent knows by value (its enrollment token). `redact` is pattern-based on purpose: a log line is
free text, and the patterns cover how secrets appear in it (key=value, JSON, URLs with
credentials, Authorization headers, PEM blocks, our `zet_` enrollment tokens).
"""

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

import redis

LOG_STREAM = "zos:log"
RING_LINES = 5000
MAX_LINE = 2000  # characters kept of one record (a traceback is cut, not the ring flooded)
MAX_TAIL = 1000  # lines one request may ask for
# After Redis failed to take a line, lines are dropped without trying for this long: a node whose
# Redis is down must not spend a connect timeout on every line it logs.
PAUSE_AFTER_FAILURE = 5.0
REDACTED = "[REDACTED]"
BUFFER_LINES = 500  # launcher lines kept while the ring is unreachable; the oldest go first
FLUSH_EVERY = 1.0  # seconds between the deferred handler's tries to hand its buffer over
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)", re.DOTALL
)
_AUTHORIZATION = re.compile(r"""(?i)(\bauthorization["']?\s*[:=]\s*["']?)[^"'\n]+""")
_BEARER = re.compile(r"\b(Bearer|Token|Basic)\s+[A-Za-z0-9._~+/=-]{16,}")
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@", re.IGNORECASE)
_ENROLL_TOKEN = re.compile(r"\bzet_[A-Za-z0-9_-]{4,}")
_SECRET_FIELD = re.compile(
    r"""(?ix)
    (\b[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|seed|private[_-]?key|enroll)[\w.-]*)
    (["']?\s*[=:]\s*["']?)          # key=value, key: value, "key": "value", 'key': 'value'
    (?!\[REDACTED\])([^\s"',;&}]+)
    """
)


def redact(line: str, known: Iterable[str] = ()) -> str:
    """`line` with every secret it carries replaced by [REDACTED].

    `known` are secret values the caller holds (the enrollment token from the kernel command
    line): replaced wherever they appear, whatever surrounds them.
    """
    for secret in known:
        if secret and len(secret) >= 6:
            line = line.replace(secret, REDACTED)
    line = _PRIVATE_KEY.sub(REDACTED, line)
    line = _AUTHORIZATION.sub(lambda m: m.group(1) + REDACTED, line)
    line = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", line)
    line = _URL_CREDENTIALS.sub(lambda m: m.group(1) + REDACTED + "@", line)
    line = _ENROLL_TOKEN.sub("zet_" + REDACTED, line)
    return _SECRET_FIELD.sub(lambda m: m.group(1) + m.group(2) + REDACTED, line)


class RingHandler(logging.Handler):
    """A logging handler that appends redacted lines to the node's log ring.

    Logging must never hold up or break the agent: the handler has its own Redis client with
    short timeouts and no retries, drops a line when Redis does not answer (counted in
    `dropped`) and every line for PAUSE_AFTER_FAILURE seconds after, and ignores records logged
    by the Redis client itself while it writes.
    """

    def __init__(self, redis_url: str, *, source: str, maxlen: int = RING_LINES) -> None:
        super().__init__()
        self.source = source
        self.maxlen = maxlen
        self.dropped = 0
        self._redis = redis.Redis.from_url(
            redis_url, decode_responses=True, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self._busy = threading.local()
        self._paused_until = 0.0
        self.setFormatter(logging.Formatter(LINE_FORMAT, "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._busy, "on", False):
            return
        if time.monotonic() < self._paused_until:
            self.dropped += 1
            return
        self._busy.on = True
        try:
            line = redact(self.format(record))[:MAX_LINE]
            self._redis.xadd(
                LOG_STREAM,
                {"source": self.source, "line": line},
                maxlen=self.maxlen,
                approximate=True,
            )
        except (redis.RedisError, OSError):
            self.dropped += 1
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        finally:
            self._busy.on = False

    def close(self) -> None:
        self._redis.close()
        super().close()


class DeferredRingHandler(logging.Handler):
    """A ring handler for a process that outlives the node's Redis (the launcher).

    `redis_url()` says where the ring is now (None: not known yet); it is asked again after
    every failure, since the agent may come back with another Redis. Lines are redacted when
    logged and kept, at most `buffer` of them (the oldest dropped first, counted in `dropped`),
    until they are written; a background thread retries every FLUSH_EVERY seconds, so lines
    logged while the agent was down reach the ring soon after it is back, without waiting for
    the next line. A failed write pauses tries for PAUSE_AFTER_FAILURE seconds, as RingHandler.
    """

    def __init__(
        self,
        redis_url: Callable[[], str | None],
        *,
        source: str,
        maxlen: int = RING_LINES,
        buffer: int = BUFFER_LINES,
        flush_every: float = FLUSH_EVERY,
    ) -> None:
        super().__init__()
        self.source = source
        self.maxlen = maxlen
        self.dropped = 0
        self._redis_url = redis_url
        self._url: str | None = None
        self._redis: redis.Redis | None = None
        self._lines: deque[str] = deque()
        self._buffer = buffer
        self._busy = threading.local()
        self._write = threading.Lock()
        self._paused_until = 0.0
        self._closed = threading.Event()
        self.setFormatter(logging.Formatter(LINE_FORMAT, "%H:%M:%S"))
        self._flusher = threading.Thread(
            target=self._flush_loop, args=(flush_every,), name="log-ring", daemon=True
        )
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._busy, "on", False):
            return  # the Redis client's own records while it writes
        with self.lock:
            if len(self._lines) >= self._buffer:
                self._lines.popleft()
                self.dropped += 1
            self._lines.append(redact(self.format(record))[:MAX_LINE])
        self.flush()

    def flush(self) -> None:
        """Write the buffered lines, oldest first; keep what could not be written."""
        if time.monotonic() < self._paused_until or not self._write.acquire(blocking=False):
            return
        self._busy.on = True
        try:
            while self._lines:
                client = self._client()
                if client is None:
                    return
                line = self._lines[0]
                client.xadd(
                    LOG_STREAM,
                    {"source": self.source, "line": line},
                    maxlen=self.maxlen,
                    approximate=True,
                )
                with self.lock:
                    if self._lines and self._lines[0] is line:
                        self._lines.popleft()
        except (redis.RedisError, OSError):
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
            self._forget_client()
        finally:
            self._busy.on = False
            self._write.release()

    def _client(self) -> redis.Redis | None:
        url = self._redis_url()
        if url != self._url:
            self._forget_client()
            self._url = url
        if url is not None and self._redis is None:
            self._redis = redis.Redis.from_url(
                url, decode_responses=True, socket_timeout=0.5, socket_connect_timeout=0.5
            )
        return self._redis

    def _forget_client(self) -> None:
        if self._redis is not None:
            self._redis.close()
        self._redis, self._url = None, None

    def _flush_loop(self, every: float) -> None:
        while not self._closed.wait(every):
            if self._lines:
                self.flush()

    def close(self) -> None:
        self._closed.set()
        self._flusher.join(timeout=5)
        self._paused_until = 0.0
        self.flush()  # a last try: the launcher's final lines
        self._forget_client()
        super().close()


def install(redis_url: str, *, source: str) -> RingHandler:
    """Send this process's log records (INFO and up, as configured) to the ring as well."""
    handler = RingHandler(redis_url, source=source)
    logging.getLogger().addHandler(handler)
    return handler


def tail(
    client: redis.Redis, *, lines: int = 200, after: str = "", known: Iterable[str] = ()
) -> dict:
    """The last `lines` lines (or those after the stream id `after`), redacted, oldest first.

    Returns `{"lines": [{"id", "source", "line"}], "cursor": <last id or the one given>}`; a
    follower passes the cursor back as `after` and gets only what was logged since.
    """
    count = max(1, min(int(lines), MAX_TAIL))
    known = list(known)
    if after:
        entries = client.xrange(LOG_STREAM, min=f"({after}", count=count)
    else:
        entries = list(reversed(client.xrevrange(LOG_STREAM, count=count)))
    out = [
        {"id": entry_id, "source": fields.get("source", ""), "line": redact(fields["line"], known)}
        for entry_id, fields in entries
        if "line" in fields
    ]
    return {"lines": out, "cursor": out[-1]["id"] if out else after}
