"""Runner processes on a real redis-server: scripts run, report in order, stop when told or out
of time, and no job is lost when a runner or Redis itself is killed mid-job."""

import json
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

import rhai
from contracts.node_job_states import NODE_FINAL_STATES
from nodeagent.functions.registry import Workload, WorkloadRegistry
from nodeagent.jobstore import JobStore, QueuedJob, connect
from nodeagent.redis_server import RedisServer
from nodeagent.runner import RunnerPool, RunnerSettings

if not hasattr(rhai, "Engine"):
    pytest.skip(
        "rhai.Engine is not available yet: runners cannot run scripts", allow_module_level=True
    )

FAST = {"visibility_ms": 1000, "block_ms": 200, "kill_grace": 0.5, "max_operations": 300_000}
_counter = iter(range(1_000_000))


def _wait(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def submit(store: JobStore, script: str, *, timeout: int = 60) -> str:
    job_id = f"job{next(_counter)}"
    job = QueuedJob(job_id, 1, owner=9, signer="cd" * 32, name="t", script=script, timeout=timeout)
    assert store.enqueue(job)
    return job_id


def final(store: JobStore, job_id: str, timeout: float = 20) -> dict:
    return _wait(
        lambda: (s := store.job_state(job_id)) and s["state"] in NODE_FINAL_STATES and s,
        timeout,
        f"job {job_id} to end",
    )


def events(store: JobStore, job_id: str) -> list[dict]:
    return [f for _, f in store.outbox_after("0-0", 10_000, 0) if f["job_id"] == job_id]


def logs(store: JobStore, job_id: str) -> list[str]:
    """The script's own log lines (a `restarted` event carries a `log` sentence too)."""
    return [e["log"] for e in events(store, job_id) if "log" in e and e["status"] == "running"]


def timeline(store: JobStore, job_id: str) -> list[str]:
    """The job's events as a reader of its feed sees them: status, or the log line."""
    return [
        e.get("log", e["status"]) if e["status"] == "running" else e["status"]
        for e in events(store, job_id)
    ]


@pytest.fixture
def start_pool(redis_server: RedisServer) -> Iterator[Callable[..., RunnerPool]]:
    pools: list[RunnerPool] = []

    def start(workers: int = 2, **settings) -> RunnerPool:
        merged = {**FAST, **settings}
        pool = RunnerPool(
            RunnerSettings(redis_url=redis_server.url, **merged), workers=workers, watch_every=0.1
        )
        pools.append(pool.start())
        return pool

    yield start
    for pool in pools:
        pool.stop(timeout=2)


def _worker_pid(pool: RunnerPool, store: JobStore, job_id: str) -> int:
    runner = store.job_state(job_id)["runner"]
    return next(s.process.pid for s in pool.slots if s.consumer == runner)


def test_logs_in_order_then_the_result(store: JobStore, start_pool):
    start_pool()
    job = submit(store, 'log("one"); log("two"); let x = 40; x + 2')
    state = final(store, job)
    assert state["state"] == "succeeded", state
    assert json.loads(state["result"]) == 42
    assert [(e["status"], e.get("log")) for e in events(store, job)] == [
        ("running", None),
        ("running", "one"),
        ("running", "two"),
        ("succeeded", None),
    ]
    assert json.loads(events(store, job)[-1]["result"]) == 42
    assert store.pending() == []


def test_results_are_json(store: JobStore, start_pool):
    start_pool(workers=1)
    job = submit(store, """#{a: [1, 2.5, true, 'c', ()], s: "x", f: Fn("foo")}""")
    state = final(store, job)
    assert json.loads(state["result"]) == {
        "a": [1, 2.5, True, "c", None],
        "s": "x",
        "f": "foo",
    }


def test_script_errors_fail_the_job_with_kind_and_position(store: JobStore, start_pool):
    start_pool(workers=1)
    job = submit(store, "let a = [1];\na[5]")
    state = final(store, job)
    assert state["state"] == "failed"
    assert state["error"].startswith("ErrorArrayBounds: line 2")


def test_catalog_functions_without_a_sal_say_so(store: JobStore, start_pool):
    start_pool(workers=1)
    job = submit(store, 'vm_create(#{name: "web"})')
    state = final(store, job)
    assert state["state"] == "failed"
    assert "vm_create is not available on this node yet (no hypervisor SAL)" in state["error"]


def test_node_info_and_now(store: JobStore, start_pool):
    store.publish_node_info({"capacity": {"cru": 4, "mru": 8 << 30}, "health": []})
    WorkloadRegistry(store.redis).reserve(
        Workload(owner=9, kind="vm", name="held", spec={}, reserved={"cru": 1, "mru": 2 << 30})
    )
    start_pool(workers=1)
    job = submit(store, "let i = node_info(); [i.capacity.cru, i.free.cru, i.free.mru, now()]")
    cru, free_cru, free_mru, now = json.loads(final(store, job)["result"])
    assert (cru, free_cru, free_mru) == (4, 3, 6 << 30)
    assert abs(now - time.time()) < 10


def test_cancel_stops_a_sleeping_job_without_killing_its_runner(store: JobStore, start_pool):
    pool = start_pool(workers=1)
    job = submit(store, 'log("start"); sleep(30000); "never"')
    _wait(lambda: logs(store, job) == ["start"], 10, "the job to start")
    pid = _worker_pid(pool, store, job)
    store.request_cancel(job)
    state = final(store, job, timeout=5)
    assert state["state"] == "cancelled"
    assert events(store, job)[-1]["status"] == "cancelled"
    assert pool.slots[0].process.pid == pid
    assert final(store, submit(store, "7"))["result"] == "7"


def test_cancel_stops_a_cpu_bound_job_without_killing_its_runner(store: JobStore, start_pool):
    # No operation limit in sight: only the engine's progress hook can stop `loop {}` in time.
    pool = start_pool(workers=1, max_operations=10**15)
    job = submit(store, 'log("spin"); loop {}')
    _wait(lambda: logs(store, job) == ["spin"], 10, "the job to start")
    pid = _worker_pid(pool, store, job)
    cancelled = time.monotonic()
    store.request_cancel(job)
    state = final(store, job, timeout=5)
    assert state["state"] == "cancelled"
    assert time.monotonic() - cancelled < 2
    assert state["error"] == "cancelled while running"
    assert final(store, submit(store, "7"))["result"] == "7"
    assert pool.slots[0].process.pid == pid
    assert pool.restarts == 0


def test_a_cpu_bound_job_past_its_timeout_fails_without_killing_its_runner(
    store: JobStore, start_pool
):
    pool = start_pool(workers=1, max_operations=10**15)
    pid = pool.slots[0].process.pid
    started = time.monotonic()
    job = submit(store, "loop {}", timeout=1)
    state = final(store, job, timeout=10)
    assert state["state"] == "failed"
    assert state["error"] == "timeout: the job ran longer than its 1s limit"
    assert time.monotonic() - started < 5
    assert final(store, submit(store, '"next"'))["result"] == '"next"'
    assert pool.slots[0].process.pid == pid
    assert pool.restarts == 0


def test_cancel_of_a_busy_script_kills_its_runner_if_it_must(store: JobStore, start_pool):
    pool = start_pool(workers=1, max_operations=0)
    job = submit(store, 'log("spin"); let n = 0; loop { n += 1; }')
    _wait(lambda: logs(store, job) == ["spin"], 10, "the job to start")
    store.request_cancel(job)
    assert final(store, job, timeout=10)["state"] == "cancelled"
    assert final(store, submit(store, "1 + 1"))["result"] == "2"
    assert pool.restarts <= 1


def test_a_job_past_its_timeout_fails(store: JobStore, start_pool):
    start_pool(workers=1)
    started = time.monotonic()
    job = submit(store, "sleep(20000)", timeout=1)
    state = final(store, job, timeout=10)
    assert state["state"] == "failed"
    assert state["error"].startswith("timeout")
    assert time.monotonic() - started < 5


def test_a_runaway_loop_hits_the_operations_limit_and_the_runner_lives_on(
    store: JobStore, start_pool
):
    pool = start_pool(workers=1)
    pid = pool.slots[0].process.pid
    job = submit(store, "let n = 0; loop { n += 1; }")
    state = final(store, job, timeout=60)
    assert state["state"] == "failed"
    assert state["error"].startswith("ErrorTooManyOperations")
    assert final(store, submit(store, '"next"'))["result"] == '"next"'
    assert pool.slots[0].process.pid == pid


def test_deep_recursion_hits_the_call_limit_and_the_runner_lives_on(store: JobStore, start_pool):
    pool = start_pool(workers=1)
    pid = pool.slots[0].process.pid
    job = submit(store, "fn f(n) { f(n + 1) } f(0)")
    state = final(store, job, timeout=30)
    assert state["state"] == "failed"
    assert "ErrorStackOverflow" in state["error"]
    assert final(store, submit(store, "3"))["result"] == "3"
    assert pool.slots[0].process.pid == pid


@pytest.mark.parametrize(
    "script",
    [
        "fn f(n){ if n == 0 { 0 } else { f(n-1) + 1 } } f(100000)",
        "fn f(n){ if n == 0 { 0 } else { [n-1].map(f)[0] + 1 } } f(100000)",  # via a native
    ],
    ids=["direct", "through-map"],
)
def test_deep_recursion_never_crashes_a_runner(store: JobStore, start_pool, script: str):
    pool = start_pool(workers=1)
    process = pool.slots[0].process
    job = submit(store, script)
    state = final(store, job, timeout=60)
    assert state["state"] == "failed"
    assert state["error"].startswith("ErrorStackOverflow"), state["error"]
    assert process.is_alive() and process.exitcode is None  # not -11 (SIGSEGV)
    assert pool.restarts == 0


def test_a_script_out_of_memory_fails_clearly_and_its_runner_lives_on(store: JobStore, start_pool):
    # 600 MiB of address space: the worker itself maps ~450 MiB (most of it its jobs thread's
    # stack and malloc arenas, reserved, not used), so the script gets ~150 MiB.
    pool = start_pool(workers=1, memory_mb=600, max_operations=0)
    pid = pool.slots[0].process.pid
    job = submit(store, "let a = []; a.pad(90000, 0); let b = []; loop { b.push(a); b += [a]; }")
    state = final(store, job, timeout=60)
    assert state["state"] == "failed"
    assert state["error"] == "the script ran out of memory (limit 600 MiB)"
    assert final(store, submit(store, '"next"'))["result"] == '"next"'
    assert pool.slots[0].process.pid == pid


def test_a_runner_killed_mid_job_is_replaced_and_the_job_finishes(store: JobStore, start_pool):
    pool = start_pool(workers=2)
    job = submit(store, 'log("begin"); sleep(1500); log("end"); "done"')
    _wait(lambda: logs(store, job) == ["begin"], 10, "the job to start")
    os.kill(_worker_pid(pool, store, job), signal.SIGKILL)
    state = final(store, job, timeout=20)
    assert state["state"] == "succeeded"
    assert json.loads(state["result"]) == "done"
    assert state["local_attempts"] == "2"
    assert logs(store, job) == ["begin", "begin", "end"]  # the rerun starts again
    _wait(
        lambda: pool.restarts == 1 and all(s.process.is_alive() for s in pool.slots), 5, "restart"
    )


def test_a_runner_killed_mid_job_is_rerun_at_once_behind_a_restarted_event(
    store: JobStore, start_pool
):
    # A 60 s visibility timeout: only the pool's immediate hand-over can re-run it in time.
    pool = start_pool(workers=2, visibility_ms=60_000)
    job = submit(store, 'log("line 1"); log("line 2"); sleep(2000); "done"')
    _wait(lambda: logs(store, job) == ["line 1", "line 2"], 10, "the job to log twice")
    pid = _worker_pid(pool, store, job)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    _wait(lambda: len(logs(store, job)) > 2, 30, "the job to run again")
    assert time.monotonic() - killed < 30  # well before the 60 s visibility timeout
    state = final(store, job, timeout=30)
    assert state["state"] == "succeeded"
    assert timeline(store, job) == [
        "running", "line 1", "line 2",
        "restarted",
        "running", "line 1", "line 2",
        "succeeded",
    ]  # fmt: skip
    restarted = next(e for e in events(store, job) if e["status"] == "restarted")
    assert restarted["log"] == (
        f"restarted on the node: runner {pid} was killed by SIGKILL mid-job (run 2)"
    )
    assert restarted["attempt"] == "1"  # the coordinator's attempt, unchanged
    # The dead runner is forgotten: every consumer left is a live worker.
    assert {c["name"] for c in store.consumers()} <= set(pool.live_consumers())


def test_a_job_cut_short_by_an_agent_restart_runs_again_at_once_and_says_so(
    redis_server: RedisServer, store: JobStore, start_pool
):
    first = start_pool(workers=1, visibility_ms=60_000)
    job = submit(store, 'log("begin"); sleep(3000); "done"')
    _wait(lambda: logs(store, job) == ["begin"], 10, "the job to start")
    first.stop(timeout=0.2)  # the agent stops; its runner is killed mid-job
    assert not first.slots[0].process.is_alive()
    start_pool(workers=1, visibility_ms=60_000)  # the agent is back
    state = final(store, job, timeout=30)
    assert state["state"] == "succeeded"
    assert timeline(store, job) == [
        "running", "begin", "restarted", "running", "begin", "succeeded"
    ]  # fmt: skip
    restarted = next(e for e in events(store, job) if e["status"] == "restarted")
    assert restarted["log"] == "restarted on the node: the agent restarted mid-job (run 2)"


def test_a_job_whose_runner_keeps_dying_goes_to_the_dead_stream(redis_server, start_pool):
    store = JobStore(connect(redis_server.url), max_local_attempts=2)
    pool = start_pool(workers=1, max_local_attempts=2)
    job = submit(store, 'log("try"); sleep(30000)')
    for attempt in (1, 2):
        _wait(lambda a=attempt: len(logs(store, job)) == a, 15, f"attempt {attempt}")
        os.kill(_worker_pid(pool, store, job), signal.SIGKILL)
    state = final(store, job, timeout=20)
    assert state["state"] == "failed"
    assert "gave up after 2 local attempts" in state["error"]
    assert [f["job_id"] for _, f in store.redis.xrange(store.dead_key)] == [job]


def test_no_accepted_job_is_lost_when_redis_restarts_mid_stream(
    redis_server: RedisServer, store: JobStore, start_pool
):
    jobs = [submit(store, f"sleep(300); {n}") for n in range(12)]
    start_pool(workers=2)
    _wait(lambda: any(store.job_state(j)["state"] != "queued" for j in jobs), 10, "a job to run")
    time.sleep(1.1)  # appendfsync everysec
    assert sum(store.job_state(j)["state"] == "succeeded" for j in jobs) < 10
    os.kill(redis_server.process.pid, signal.SIGKILL)
    _wait(lambda: redis_server.restarts == 1 and not redis_server.down, 15, "redis to restart")
    more = [submit(store, f"{n}") for n in range(12, 15)]
    results = [final(store, j, timeout=60) for j in jobs + more]
    assert [s["state"] for s in results] == ["succeeded"] * 15
    assert sorted(int(json.loads(s["result"])) for s in results) == list(range(15))
