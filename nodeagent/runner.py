"""Runner worker processes: claim a job from the stream, run its script, report, repeat.

Scripts run in separate processes so that nothing a script does -- a runaway loop, a native that
blocks, a crash -- can stop the agent. Each job gets a fresh engine with resource limits, bound to
the job's signer (nodeagent.functions). The pool in the agent process watches its workers:

- a worker that died is replaced, and the job it held is handed on at once: the pool is its
  parent and knows it is gone, so the entry is moved to a live worker, marked as idle for the
  visibility timeout (any worker looking for abandoned work takes it), and the re-run reports
  why it restarted. The same holds for every pending entry of a consumer that is not one of the
  pool's live workers: the workers of a previous agent died with it (PDEATHSIG). The visibility
  timeout remains the backstop for a worker the pool cannot see (workers heartbeat the job they
  run, so a live one never loses its job);
- a job past its timeout, or cancelled and not stopping, has its worker killed and is ended by the
  pool. That is the backstop: workers stop cooperatively first, since `log`, `sleep` and the
  engine's progress hook (every `progress_every` operations, so a CPU-bound `loop {}` too) end
  the script with ErrorTerminated and the worker goes on to its next job.

Two backstops keep a script from taking a worker (or the node) down with it: a soft address-space
limit (RLIMIT_AS, `memory_mb`) turns a runaway allocation into a MemoryError that fails the job,
and jobs run on a thread whose C stack is big enough for every Python frame the recursion limit
allows, so deep recursion ends in RecursionError, never in SIGSEGV. Only the soft limit is
lowered: sal.command lifts it again in the tools and daemons (QEMU, redis-server, btrfs) a job
starts, which must not live under a script's budget.
"""

import contextlib
import ctypes
import gc
import logging
import multiprocessing
import resource
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from contracts.catalog import offers_test_functions
from contracts.node_job_states import NodeJobState
from nodeagent import gateway, logring
from nodeagent.config import DEFAULT_RUNNER_MEMORY_MB
from nodeagent.functions import IMPLEMENTATIONS, bind
from nodeagent.functions.context import JobContext, SalFactory
from nodeagent.functions.gateways import GatewayFunctions
from nodeagent.functions.registry import WorkloadRegistry
from nodeagent.functions.resources import VmHost, node_resources
from nodeagent.functions.testing import MARKS_FILE, marker
from nodeagent.functions.vms import VmFunctions
from nodeagent.functions.workloads import WorkloadFunctions
from nodeagent.identity import NodeIdentity, seed_path
from nodeagent.image_fetch import ImageFetcher
from nodeagent.jobstore import AGENT_RESTARTED, ClaimedJob, JobStore, connect
from nodeagent.ledger_client import LedgerClient
from rhai import Engine, RhaiError, to_json_value

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
RESTART_BACKOFF_MAX = 30.0
CONSUMER_CLEANUP_EVERY = 30.0
HEALTHY_AFTER = 60.0  # a worker alive this long resets its restart backoff
# Deeply nested data is copied, compared and printed recursively, so workers allow 20,000 Python
# frames. A frame recursing through C builtins (map, sorted, str of a container) was measured to
# need up to ~3 KiB of C stack: 20,000 of them overflow the main thread's 8 MiB (SIGSEGV) but fit
# in JOB_STACK_BYTES with room to spare. The stack is address space, counted in `memory_mb`.
RECURSION_LIMIT = 20_000
JOB_STACK_BYTES = 128 * 2**20
# Per socket read while fetching an image part: the hub streams a multi-GiB disk from disk.
IMAGE_FETCH_TIMEOUT = 60.0


@dataclass(frozen=True)
class RunnerSettings:
    """Everything a worker process needs; crosses the process boundary, so plain values only."""

    redis_url: str
    prefix: str = "zos:"
    visibility_ms: int = 30_000  # a pending job idle this long belongs to a dead runner
    block_ms: int = 1_000
    max_local_attempts: int = 3
    kill_grace: float = 2.0  # seconds past a timeout or cancel before the worker is killed
    # Counted as Rhai counts them (about ten per loop iteration): a million-iteration loop fits.
    max_operations: int = 100_000_000
    max_call_levels: int = 64
    max_expr_depth: int = 64
    max_string_size: int = 1 << 20
    max_array_size: int = 100_000
    max_map_size: int = 10_000
    # how often (in operations) a script checks for a cancel or its timeout; a check is a
    # clock read (and a Redis read every CANCEL_CHECK_EVERY), ~10,000 operations take ~1 ms
    progress_every: int = 10_000
    data_dir: str | None = None  # None: no workload SALs (jobs get log/sleep/now/node_info)
    storage: tuple[str, ...] = ()  # mounted pools; the first btrfs one holds workloads
    workload_bind: str = "127.0.0.1"  # where databases listen (the overlay address on a node)
    hypervisor: str = "qemu"
    workload_netns: str | None = None  # where VM taps and processes live (None: the host's)
    memory_mb: int = DEFAULT_RUNNER_MEMORY_MB  # a worker's soft address-space limit; 0: none
    ledger_url: str | None = None  # where images missing from the cache are fetched (None: never)
    image_cache_bytes: int = 0  # the image cache's limit; 0: a quarter of the pool
    gateway_proxy: gateway.ProxySettings = field(default_factory=gateway.ProxySettings)

    @property
    def heartbeat_every(self) -> float:
        return max(0.05, self.visibility_ms / 1000 / 4)


def new_engine(settings: RunnerSettings, on_progress: Callable[[int], Any]) -> Engine:
    """A fresh engine for one job: nothing a previous script defined can leak into the next.

    `on_progress` runs every `progress_every` operations; raising there ends the script, which
    is how a CPU-bound job is stopped for a cancel or its timeout without killing the worker.
    With `max_operations` 0 the engine counts no operations, so there is no hook: only the
    pool's kill stops a busy script then.
    """
    counted = settings.max_operations > 0
    return Engine(
        max_operations=settings.max_operations,
        max_call_levels=settings.max_call_levels,
        max_expr_depth=settings.max_expr_depth,
        max_string_size=settings.max_string_size,
        max_array_size=settings.max_array_size,
        max_map_size=settings.max_map_size,
        on_progress=on_progress if counted else None,
        progress_every=settings.progress_every,
    )


def error_text(exc: RhaiError) -> str:
    """`ErrorKind: line L, column C: message`, the form the coordinator stores and shows."""
    return f"{exc.kind}: {exc}"


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Worker:
    """The loop inside one worker process."""

    def __init__(self, settings: RunnerSettings, consumer: str) -> None:
        self.settings = settings
        self.consumer = consumer
        self.store = JobStore(
            connect(settings.redis_url, retry_for=10.0),
            settings.prefix,
            max_local_attempts=settings.max_local_attempts,
        )
        self.current: str | None = None  # the stream entry being run, for the heartbeat
        self.functions = {**IMPLEMENTATIONS, **self._workload_functions()}

    def _workload_functions(self) -> dict[str, SalFactory]:
        if self.settings.data_dir is None:
            return {}
        testing = {"test_mark": marker(Path(self.settings.data_dir) / MARKS_FILE)}
        resources = node_resources(
            Path(self.settings.data_dir),
            tuple(Path(p) for p in self.settings.storage),
            self.settings.workload_bind,
            hypervisor=self.settings.hypervisor,
            netns=self.settings.workload_netns,
        )
        registry = WorkloadRegistry(self.store.redis)
        if resources.vms is not None:
            resources.vms.fetcher = image_fetcher(self.settings, resources.vms, registry)
        proxy = gateway.proxy(
            Path(self.settings.data_dir), self.settings.gateway_proxy, self.settings.workload_netns
        )
        return {
            **WorkloadFunctions(resources, registry).table(),
            **VmFunctions(resources, registry).table(),
            **GatewayFunctions(resources, registry, proxy, control_plane(self.settings)).table(),
            **(testing if offers_test_functions() else {}),
        }

    def serve(self, stop: threading.Event) -> None:
        threading.Thread(target=self._heartbeat, args=(stop,), daemon=True).start()
        while not stop.is_set():
            try:
                self.store.ensure_group()
                claimed = self.store.claim_next(
                    self.consumer, self.settings.block_ms, self.settings.visibility_ms
                )
                if claimed is not None:
                    self.run(claimed)
            except redis.RedisError as exc:
                # The job, if any, stays pending and is claimed again once Redis is back.
                log.warning("%s: redis unavailable (%s); waiting", self.consumer, exc)
                self.current = None
                stop.wait(1.0)

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.heartbeat_every):
            entry = self.current
            if entry is None:
                continue
            with contextlib.suppress(redis.RedisError):
                self.store.heartbeat(self.consumer, entry)

    def run(self, claimed: ClaimedJob) -> None:
        job = claimed.job
        self.current = claimed.entry_id
        try:
            if self.store.start(job.job_id, self.consumer) is None:
                # already final (cancelled while queued): this only acks the entry
                self.store.finish(job.job_id, claimed.entry_id, NodeJobState.CANCELLED)
                return
            ctx = JobContext(
                job_id=job.job_id,
                owner=job.owner,
                signer=job.signer,
                name=job.name,
                timeout=job.timeout,
                events=self.store,
                workloads=WorkloadRegistry(self.store.redis),
            )
            state, outcome = self._execute(job.script, ctx)
            if state == NodeJobState.SUCCEEDED:
                self.store.finish(job.job_id, claimed.entry_id, state, result=outcome)
            else:
                self.store.finish(job.job_id, claimed.entry_id, state, error=outcome)
        finally:
            self.current = None

    def _execute(self, script: str, ctx: JobContext) -> tuple[NodeJobState, Any]:
        try:
            engine = new_engine(self.settings, on_progress=lambda _ops: ctx.check())
            bind(engine, ctx, self.functions)
            value = engine.eval(script)
            return NodeJobState.SUCCEEDED, to_json_value(value)
        except RhaiError as exc:
            if ctx.stop_reason == "cancelled":
                return NodeJobState.CANCELLED, "cancelled while running"
            if ctx.stop_reason == "timeout":
                return (
                    NodeJobState.FAILED,
                    f"timeout: the job ran longer than its {ctx.timeout:g}s limit",
                )
            if exc.details.get("what") == "Memory":  # the engine's word for a MemoryError
                return NodeJobState.FAILED, self._out_of_memory()
            return NodeJobState.FAILED, error_text(exc)
        except MemoryError:
            return NodeJobState.FAILED, self._out_of_memory()
        except RecursionError:
            return NodeJobState.FAILED, "ErrorStackOverflow: the script nested too deeply"
        except redis.RedisError:
            raise
        except Exception as exc:
            log.exception("job %s: a native function failed", ctx.job_id)
            return NodeJobState.FAILED, f"ErrorSystem: internal error in a node function: {exc}"

    def _out_of_memory(self) -> str:
        if self.settings.memory_mb:
            return f"the script ran out of memory (limit {self.settings.memory_mb} MiB)"
        return "the script ran out of memory"


def control_plane(settings: RunnerSettings, timeout: float = 15.0) -> LedgerClient | None:
    """A client signing requests to the control plane with the node's key (the agent made it);
    None when the runner has no control plane (tests of the functions alone)."""
    if not (settings.ledger_url and settings.data_dir):
        return None
    seed = seed_path(Path(settings.data_dir))
    if not seed.exists():
        return None
    return LedgerClient(settings.ledger_url, NodeIdentity(seed.read_bytes()), timeout=timeout)


def image_fetcher(
    settings: RunnerSettings, host: VmHost, registry: WorkloadRegistry
) -> ImageFetcher:
    """The worker's image fetcher: it signs hub requests with the node's key (the agent made it)."""
    hub = control_plane(settings, timeout=IMAGE_FETCH_TIMEOUT)

    def in_use() -> set[str]:
        return {
            str(record.details.get("image_key") or record.spec.get("image"))
            for record in registry.all(kind="vm")
        } | {host.machine_image}

    return ImageFetcher(
        lambda: host.images, hub, in_use=in_use, limit_bytes=settings.image_cache_bytes
    )


def limit_memory(memory_mb: int) -> None:
    """Lower this process's soft RLIMIT_AS to `memory_mb` MiB (0: leave it). The hard limit is
    kept so that sal.command can give children started from here their full limit back."""
    if memory_mb <= 0:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = memory_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def worker_main(settings: RunnerSettings, consumer: str) -> None:
    """Entry point of a worker process. SIGTERM asks it to stop after the job it runs.

    (A signal, not a multiprocessing.Event: a worker killed while waiting on a shared Event
    leaves it unusable, and the pool kills workers as a matter of course.) The work happens on
    a thread with a JOB_STACK_BYTES stack (see RECURSION_LIMIT); the main thread only waits,
    so it stays free to run the signal handler.
    """
    _die_with_parent()
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the agent, which stops us
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sys.setrecursionlimit(RECURSION_LIMIT)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s {consumer}: %(message)s"
    )
    logring.install(settings.redis_url, source=consumer)
    limit_memory(settings.memory_mb)
    worker = Worker(settings, consumer)
    gc.freeze()  # the runner's code and engine live as long as it: no full collection walks them
    crashed = threading.Event()

    def serve() -> None:
        try:
            worker.serve(stop)
        except BaseException:
            log.exception("runner %s stopped on an unexpected error", consumer)
            crashed.set()

    threading.stack_size(JOB_STACK_BYTES)
    jobs = threading.Thread(target=serve, name="jobs")
    jobs.start()
    threading.stack_size(0)  # only the jobs thread needs the deep stack
    while jobs.is_alive():
        jobs.join(timeout=0.5)
    if crashed.is_set():
        sys.exit(1)  # the pool sees a dead worker and starts another


@dataclass
class _Slot:
    index: int
    process: Any = None
    consumer: str = ""
    started_at: float = 0.0
    failures: int = 0  # deaths in a row, for the restart backoff
    restart_at: float | None = None  # set once the worker is seen dead
    killed: bool = False  # the pool killed it (a timeout or cancel): restart at once


class RunnerPool:
    """N worker processes, kept alive and kept to their jobs' timeouts and cancels."""

    def __init__(
        self,
        settings: RunnerSettings,
        *,
        workers: int = 2,
        watch_every: float = 0.2,
        start_method: str = "spawn",
    ) -> None:
        if workers < 1:
            raise ValueError("a runner pool needs at least one worker")
        self.settings = settings
        self.watch_every = watch_every
        self.ctx = multiprocessing.get_context(start_method)
        self.slots = [_Slot(i) for i in range(workers)]
        self.store = JobStore(connect(settings.redis_url), settings.prefix)
        self.restarts = 0
        self._halt = threading.Event()
        self._watcher: threading.Thread | None = None
        self._last_cleanup = 0.0
        self._stop_timeout = 5.0
        self._deaths: dict[str, str] = {}  # consumer of a dead worker → how it died

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "RunnerPool":
        with contextlib.suppress(redis.RedisError):  # workers create it too, once Redis is up
            self.store.ensure_group()
        started = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch, args=(started,), name="runner-pool", daemon=True
        )
        self._watcher.start()
        started.wait(timeout=30)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask workers to stop after their job; kill those still busy after `timeout`.

        A job cut short this way stays pending and runs again when the agent is back.
        """
        self._stop_timeout = timeout
        self._halt.set()
        if self._watcher:
            self._watcher.join(timeout=timeout + 10)

    def __enter__(self) -> "RunnerPool":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- watching -----------------------------------------------------------------------------

    def _spawn(self, slot: _Slot) -> None:
        slot.consumer = f"w{slot.index}-{secrets.token_hex(4)}"
        slot.started_at = time.monotonic()
        slot.restart_at = None
        slot.killed = False
        slot.process = self.ctx.Process(
            target=worker_main,
            args=(self.settings, slot.consumer),
            name=f"zos-runner-{slot.index}",
            daemon=True,
        )
        slot.process.start()
        log.info("runner %s started (pid %d)", slot.consumer, slot.process.pid)

    def live_consumers(self) -> dict[str, _Slot]:
        return {s.consumer: s for s in self.slots if s.process and s.process.is_alive()}

    def _watch(self, started: threading.Event) -> None:
        """The pool's one thread: workers die with the thread that started them (PDEATHSIG),
        so this thread starts every worker and is the last to stop them."""
        for slot in self.slots:
            self._spawn(slot)
        started.set()
        while not self._halt.wait(self.watch_every):
            try:
                self._replace_dead()
                self._hand_over_orphans()
                self._enforce_limits()
                self._cleanup_consumers()
            except redis.RedisError as exc:
                log.warning("runner pool: redis unavailable (%s)", exc)
            except Exception:
                log.exception("runner pool watch failed; continuing")
        self._stop_workers()

    def _stop_workers(self) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                slot.process.terminate()
        deadline = time.monotonic() + self._stop_timeout
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
                if slot.process.is_alive():
                    log.warning("runner %s still busy; killing it", slot.consumer)
                    slot.process.kill()
                    slot.process.join(timeout=5)

    def _replace_dead(self) -> None:
        """Start a new worker for each dead one; one that keeps dying is restarted ever slower."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.process.is_alive():
                if slot.failures and now - slot.started_at > HEALTHY_AFTER:
                    slot.failures = 0
                continue
            if slot.restart_at is None:
                slot.process.join(timeout=0)
                self._deaths[slot.consumer] = _death_of(slot.process)
                if slot.killed:
                    delay = 0.0
                else:
                    log.warning(
                        "runner %s (pid %d) died with exit code %s; starting a new one",
                        slot.consumer,
                        slot.process.pid,
                        slot.process.exitcode,
                    )
                    delay = min(RESTART_BACKOFF_MAX, 0.5 * 2**slot.failures - 0.5)
                    slot.failures += 1
                slot.restart_at = now + delay
            if now >= slot.restart_at:
                self._spawn(slot)
                self.restarts += 1

    def _hand_over_orphans(self) -> None:
        """Give every job held by a consumer that is not a live worker to a live one, at once,
        and forget that consumer: nothing else will ever run or ack its entries."""
        live = self.live_consumers()
        if not live:
            return  # every worker is down: the next round, once one is back
        heir = next(iter(live))
        orphaned: set[str] = set()
        for entry in self.store.pending():
            consumer = entry["consumer"]
            if consumer in live:
                continue
            slot = next((s for s in self.slots if s.consumer == consumer), None)
            if slot is not None and consumer not in self._deaths:  # died since _replace_dead
                self._deaths[consumer] = _death_of(slot.process)
            reason = self._deaths.get(consumer, AGENT_RESTARTED)
            log.warning(
                "job entry %s of %s: %s; running it again", entry["message_id"], consumer, reason
            )
            self.store.hand_over(entry["message_id"], heir, self.settings.visibility_ms, reason)
            orphaned.add(consumer)
        for consumer in orphaned:
            self.store.forget_consumer(consumer)
            self._deaths.pop(consumer, None)

    def _enforce_limits(self) -> None:
        live = self.live_consumers()
        for entry in self.store.pending():
            slot = live.get(entry["consumer"])
            if slot is None:
                continue
            job_id = self._job_of(entry["message_id"])
            state = self.store.job_state(job_id) if job_id else None
            if (
                not state
                or state.get("state") != NodeJobState.RUNNING
                or state.get("runner") != slot.consumer
            ):
                continue
            now = time.time()
            grace = self.settings.kill_grace
            if state.get("cancel") == "1" and now > float(state.get("cancel_at", now)) + grace:
                self._kill(
                    slot,
                    job_id,
                    entry["message_id"],
                    NodeJobState.CANCELLED,
                    "cancelled while running",
                )
            elif now > float(state["started_at"]) + float(state.get("timeout", 0)) + grace:
                self._kill(
                    slot,
                    job_id,
                    entry["message_id"],
                    NodeJobState.FAILED,
                    f"timeout: the job ran longer than its {state.get('timeout')}s limit "
                    "(its runner was killed)",
                )

    def _job_of(self, entry_id: str) -> str | None:
        entries = self.store.redis.xrange(self.store.jobs_key, entry_id, entry_id)
        return entries[0][1].get("job_id") if entries else None

    def _kill(
        self, slot: _Slot, job_id: str, entry_id: str, state: NodeJobState, error: str
    ) -> None:
        log.warning("job %s: killing runner %s (%s)", job_id, slot.consumer, error)
        slot.killed = True
        slot.process.kill()
        slot.process.join(timeout=5)
        self.store.finish(job_id, entry_id, state, error=error)

    def _cleanup_consumers(self) -> None:
        """Forget consumers of dead workers once nothing is pending under their name."""
        now = time.monotonic()
        if now - self._last_cleanup < CONSUMER_CLEANUP_EVERY:
            return
        self._last_cleanup = now
        live = self.live_consumers()
        known = self.store.consumers()
        for consumer in known:
            if consumer["name"] not in live and int(consumer["pending"]) == 0:
                self.store.forget_consumer(consumer["name"])
        names = {c["name"] for c in known}
        self._deaths = {c: how for c, how in self._deaths.items() if c in names}


def _death_of(process: Any) -> str:
    """How a worker process ended, as the phrase a `restarted` event shows."""
    code = process.exitcode
    if code is not None and code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    return f"runner {process.pid} {how} mid-job"
