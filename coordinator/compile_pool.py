"""Scripts are compiled in a small pool of worker processes, never in the server process.

The Rhai compiler is pure Python. Run inside the ASGI server, a pathological script took the
GIL for seconds (every other request and node link crawled), grew the server to 3.3 GB and left
2.7 GB behind. Django already gives each request its own thread for sync code
(ThreadSensitiveContext per request), so the thread was never the problem: the process was.
Here:

- each compile runs in a worker process (forkserver, with `contracts.scripts` preloaded so a new
  worker starts quickly) under an address-space limit (ZOS_COMPILE_MEMORY_MB, as RLIMIT_AS)
  and a time limit (ZOS_COMPILE_TIMEOUT); the request's thread only waits on a pipe;
- a worker past the time limit is killed and replaced; one that hit the memory limit, grew by
  more than RETIRE_GROWTH, or served ZOS_COMPILE_MAX_TASKS compiles is retired, so no worker
  keeps a big compile's memory either;
- at most ZOS_COMPILE_WORKERS compiles run at once; a request that finds none free within the
  time limit is told to retry (429 `compile_busy`) rather than queue without bound.

Workers stay up between requests (a compile costs one pipe round trip, not a process start),
and the pool remembers the last CACHE_ENTRIES answers by the script's SHA-256: the check is a
pure function of the source, so the same script checked again (the editor's Check, then Deploy;
one script deployed to many nodes) is answered without a compile or a hop to another process.
Only the check's own answers are remembered, never a refusal for time, memory or a busy pool.
The function a worker runs is named by ZOS_SCRIPT_CHECK (contracts.scripts.check_script), resolved
in the worker, so tests can substitute a deliberately slow or greedy one.
"""

import dataclasses
import hashlib
import logging
import multiprocessing
import queue
import resource
import threading
from collections import OrderedDict
from multiprocessing.connection import Connection

from django.conf import settings
from django.utils.module_loading import import_string

from contracts.scripts import ScriptRejected

log = logging.getLogger(__name__)

RETIRE_GROWTH = 64 * 2**20  # bytes of peak RSS a worker may gain before it is replaced
CACHE_ENTRIES = 1024  # answers remembered, by script hash (a few hundred bytes each)
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(["contracts.scripts"])


class CompileBusy(ScriptRejected):
    """Every worker stayed busy for the whole time limit: the client should retry (429)."""


def http_status(exc: ScriptRejected) -> int:
    """The API status for a refused script: 429 when only the pool was busy, else 400."""
    return 429 if isinstance(exc, CompileBusy) else 400


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _serve(conn: Connection) -> None:
    """A worker's loop: (check, source, memory limit) in, (kind, value, peak RSS) out."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    while True:
        try:
            check, source, memory = conn.recv()
        except (EOFError, OSError):
            return
        resource.setrlimit(resource.RLIMIT_AS, (memory, hard))
        try:
            reply = ("ok", import_string(check)(source))
        except ScriptRejected as exc:
            reply = ("rejected", dataclasses.asdict(exc))
        except MemoryError:
            reply = ("memory", None)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        conn.send((*reply, _peak_rss()))


class _Worker:
    def __init__(self) -> None:
        self.conn, child = _context.Pipe()
        self.process = _context.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.tasks = 0
        self.baseline_rss = 0

    def stop(self) -> None:
        self.conn.close()
        self.process.kill()
        self.process.join(timeout=5)


class CompilePool:
    """At most `size` worker processes, each compiling one script at a time."""

    def __init__(self, size: int) -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._answers: OrderedDict[tuple[str, bytes], tuple[str, object]] = OrderedDict()
        self._answers_lock = threading.Lock()

    def check(self, source: str) -> list[str]:
        key = (
            settings.ZOS_SCRIPT_CHECK,
            hashlib.sha256(source.encode("utf-8", "surrogatepass")).digest(),
        )
        with self._answers_lock:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
        if answer is None:
            answer = self._compile(source)
            with self._answers_lock:
                self._answers[key] = answer
                if len(self._answers) > CACHE_ENTRIES:
                    self._answers.popitem(last=False)
        kind, value = answer
        if kind == "rejected":
            raise ScriptRejected(**value)
        return list(value)

    def _compile(self, source: str) -> tuple[str, object]:
        timeout = settings.ZOS_COMPILE_TIMEOUT
        if not self._slots.acquire(timeout=timeout):
            raise CompileBusy(
                "compile_busy", "every script compiler is busy; try again in a few seconds"
            )
        try:
            return self._run(source, timeout)
        finally:
            self._slots.release()

    def _take(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return _Worker()

    def _run(self, source: str, timeout: float) -> tuple[str, object]:
        """("ok", functions) or ("rejected", the refusal's fields): the check's own answer."""
        worker = self._take()
        memory = settings.ZOS_COMPILE_MEMORY_MB * 2**20
        try:
            worker.conn.send((settings.ZOS_SCRIPT_CHECK, source, memory))
            if not worker.conn.poll(timeout):
                raise TimeoutError
            kind, value, peak = worker.conn.recv()
        except TimeoutError:
            worker.stop()
            raise ScriptRejected(
                "script_too_complex",
                f"compiling the script took longer than {timeout:g}s; simplify it",
            ) from None
        except (EOFError, OSError):
            worker.stop()
            log.warning("a script compiler process died (exit code %s)", worker.process.exitcode)
            raise ScriptRejected(
                "script_too_complex", "compiling the script exhausted the compiler's resources"
            ) from None
        worker.tasks += 1
        worker.baseline_rss = worker.baseline_rss or peak
        if (
            kind == "memory"
            or peak - worker.baseline_rss > RETIRE_GROWTH
            or worker.tasks >= settings.ZOS_COMPILE_MAX_TASKS
        ):
            worker.stop()
        else:
            self._idle.put(worker)
        if kind == "memory":
            raise ScriptRejected(
                "script_too_complex",
                f"compiling the script needed more than {settings.ZOS_COMPILE_MEMORY_MB} MB; "
                "simplify it",
            )
        return kind, value


_pool: CompilePool | None = None
_pool_lock = threading.Lock()


def check_script(source: str) -> list[str]:
    """contracts.scripts.check_script, run in the compile pool: the same answers and errors, plus
    `script_too_complex` past the limits and `compile_busy` when the pool is saturated."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = CompilePool(settings.ZOS_COMPILE_WORKERS)
    return _pool.check(source)
