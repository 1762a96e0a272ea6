"""The node's job keys: queued once, nonces held by one job, outbox kept until acknowledged."""

import json
import time

from nodeagent.jobstore import GROUP, JobStore, QueuedJob, connect


def _job(job_id: str = "j1", attempt: int = 1, script: str = "40 + 2") -> QueuedJob:
    return QueuedJob(
        job_id=job_id,
        attempt=attempt,
        owner=5,
        signer="ab" * 32,
        name="web",
        script=script,
        timeout=60,
    )


def _statuses(store: JobStore) -> list[tuple[str, int, str]]:
    return [
        (f["job_id"], int(f["attempt"]), f["status"])
        for _, f in store.outbox_after("0-0", count=100, block_ms=0)
    ]


def test_a_job_is_queued_exactly_once(store: JobStore):
    assert store.enqueue(_job()) is True
    assert store.enqueue(_job()) is False
    assert store.redis.xlen(store.jobs_key) == 1
    state = store.job_state("j1")
    assert state["state"] == "queued"
    assert (state["attempt"], state["owner"], state["signer"]) == ("1", "5", "ab" * 32)
    assert store.job_state("unknown") is None


def test_an_older_attempt_is_a_resend(store: JobStore):
    store.enqueue(_job(attempt=3))
    assert store.enqueue(_job(attempt=2)) is False
    assert store.redis.xlen(store.jobs_key) == 1


def test_a_newer_attempt_of_a_failed_job_runs_again(store: JobStore):
    store.ensure_group()
    store.enqueue(_job())
    claimed = store.claim_next("r1", block_ms=0, idle_ms=10_000)
    store.start("j1", "r1")
    store.finish("j1", claimed.entry_id, "failed", error="boom")
    assert store.enqueue(_job(attempt=2)) is True
    state = store.job_state("j1")
    assert (state["state"], state["attempt"], state["local_attempts"]) == ("queued", "2", "0")
    assert "error" not in state
    again = store.claim_next("r1", block_ms=0, idle_ms=10_000)
    assert again.job.attempt == 2


def test_a_newer_attempt_of_a_succeeded_job_is_not_rerun(store: JobStore):
    store.ensure_group()
    store.enqueue(_job())
    claimed = store.claim_next("r1", block_ms=0, idle_ms=10_000)
    store.start("j1", "r1")
    store.finish("j1", claimed.entry_id, "succeeded", result=42)
    assert store.enqueue(_job(attempt=2)) is False
    assert store.job_state("j1")["attempt"] == "2"
    assert store.claim_next("r1", block_ms=0, idle_ms=10_000) is None


def test_a_newer_attempt_of_a_running_job_takes_over_its_events(store: JobStore):
    store.ensure_group()
    store.enqueue(_job())
    claimed = store.claim_next("r1", block_ms=0, idle_ms=10_000)
    store.start("j1", "r1")
    assert store.enqueue(_job(attempt=2)) is True
    assert store.redis.xlen(store.jobs_key) == 1
    store.log("j1", "hello")
    store.finish("j1", claimed.entry_id, "succeeded", result=1)
    assert _statuses(store) == [("j1", 1, "running"), ("j1", 2, "running"), ("j1", 2, "succeeded")]


def test_a_nonce_belongs_to_one_job(store: JobStore):
    assert store.claim_nonce("n1", "j1", ttl=60) is True
    assert store.claim_nonce("n1", "j1", ttl=60) is True
    assert store.claim_nonce("n1", "j2", ttl=60) is False
    assert 0 < store.redis.ttl("zos:seen:n1") <= 60


def test_emit_encodes_results_as_json(store: JobStore):
    store.emit("j1", 2, "succeeded", result={"a": [1, "x"]})
    store.emit("j1", 2, "running", log="line")
    (_, done), (_, line) = store.outbox_after("0-0", count=10, block_ms=0)
    assert json.loads(done["result"]) == {"a": [1, "x"]}
    assert done["attempt"] == "2" and float(done["ts"]) > 0
    assert line["log"] == "line" and "result" not in line


def test_outbox_is_trimmed_only_by_acknowledged_ids(store: JobStore):
    ids = [store.emit("j1", 1, "running", log=str(i)) for i in range(5)]
    assert store.ack_outbox([ids[0], ids[2]]) == 2
    assert store.ack_outbox([]) == 0
    left = store.outbox_after("0-0", count=10, block_ms=0)
    assert [entry_id for entry_id, _ in left] == [ids[1], ids[3], ids[4]]
    assert [entry_id for entry_id, _ in store.outbox_after(ids[3], count=10, block_ms=0)] == [
        ids[4]
    ]
    assert store.outbox_after(ids[4], count=10, block_ms=50) == []


def test_cancelling_a_queued_job_ends_it_and_runners_skip_it(store: JobStore):
    store.ensure_group()
    store.enqueue(_job())
    assert store.request_cancel("j1") is True
    assert store.job_state("j1")["state"] == "cancelled"
    assert _statuses(store) == [("j1", 1, "cancelled")]
    claimed = store.claim_next("r1", block_ms=0, idle_ms=10_000)
    assert store.start("j1", "r1") is None
    store.finish("j1", claimed.entry_id, "failed", error="x")
    assert store.job_state("j1")["state"] == "cancelled"
    assert store.pending() == []


def test_cancelling_a_running_job_only_asks(store: JobStore):
    store.ensure_group()
    store.enqueue(_job())
    store.claim_next("r1", block_ms=0, idle_ms=10_000)
    store.start("j1", "r1")
    assert store.request_cancel("j1") is False
    assert store.cancel_requested("j1")
    assert store.job_state("j1")["state"] == "running"


def test_finish_is_atomic_and_first_wins(store: JobStore):
    store.ensure_group()
    store.enqueue(_job())
    claimed = store.claim_next("r1", block_ms=0, idle_ms=10_000)
    assert store.start("j1", "r1") == 1
    assert store.finish("j1", claimed.entry_id, "succeeded", result=[1, 2]) is True
    assert store.finish("j1", claimed.entry_id, "failed", error="late") is False
    state = store.job_state("j1")
    assert (state["state"], json.loads(state["result"])) == ("succeeded", [1, 2])
    assert store.pending() == []
    assert _statuses(store)[-1] == ("j1", 1, "succeeded")


def test_an_abandoned_entry_is_reclaimed_after_the_visibility_timeout(store: JobStore):
    store.ensure_group()
    store.enqueue(_job())
    first = store.claim_next("dead-runner", block_ms=0, idle_ms=200)
    assert first.reclaimed is False
    assert store.claim_next("r2", block_ms=0, idle_ms=200) is None
    time.sleep(0.3)
    again = store.claim_next("r2", block_ms=0, idle_ms=200)
    assert again.reclaimed is True and again.entry_id == first.entry_id
    assert store.pending()[0]["consumer"] == "r2"


def test_heartbeat_keeps_a_running_job_from_being_taken(store: JobStore):
    store.ensure_group()
    store.enqueue(_job())
    first = store.claim_next("r1", block_ms=0, idle_ms=300)
    for _ in range(3):
        time.sleep(0.15)
        store.heartbeat("r1", first.entry_id)
    assert store.claim_next("r2", block_ms=0, idle_ms=300) is None
    assert store.pending()[0]["times_delivered"] == 1


def test_a_job_claimed_too_often_goes_to_the_dead_stream(redis_server):
    store = JobStore(connect(redis_server.url), max_local_attempts=2)
    store.ensure_group()
    store.enqueue(_job())
    assert store.claim_next("r1", block_ms=0, idle_ms=0) is not None
    assert store.claim_next("r2", block_ms=0, idle_ms=0) is not None
    assert store.claim_next("r3", block_ms=0, idle_ms=0) is None
    state = store.job_state("j1")
    assert state["state"] == "failed"
    assert "gave up after 2 local attempts" in state["error"]
    ((_, dead),) = store.redis.xrange(store.dead_key)
    assert dead["job_id"] == "j1"
    assert store.pending() == []
    assert _statuses(store)[-1] == ("j1", 1, "failed")


def test_summary_counts_waiting_running_and_outbox(store: JobStore):
    store.ensure_group()
    store.enqueue(_job("a"))
    store.enqueue(_job("b"))
    store.claim_next("r1", block_ms=0, idle_ms=10_000)
    store.start("a", "r1")
    summary = store.summary()
    assert summary == {"queued": 1, "running": 1, "outbox": 1, "dead": 0}
    assert GROUP == "runners"


def test_a_handed_over_job_restarts_at_once_and_says_why_before_running_again(store: JobStore):
    store.ensure_group()
    store.enqueue(_job())
    first = store.claim_next("r1", block_ms=0, idle_ms=60_000)
    store.start("j1", "r1")
    store.hand_over(first.entry_id, "r2", 60_000, "runner 4711 was killed by SIGKILL mid-job")
    again = store.claim_next("r2", block_ms=0, idle_ms=60_000)  # no 60 s wait
    assert (again.entry_id, again.reclaimed) == (first.entry_id, True)
    assert store.start("j1", "r2") == 1
    assert _statuses(store) == [("j1", 1, "running"), ("j1", 1, "restarted"), ("j1", 1, "running")]
    restarted = store.outbox_after("0-0", count=100, block_ms=0)[1][1]
    assert restarted["log"] == (
        "restarted on the node: runner 4711 was killed by SIGKILL mid-job (run 2)"
    )
    assert "restart_reason" not in store.job_state("j1")


def test_a_first_start_is_not_a_restart(store: JobStore):
    store.ensure_group()
    store.enqueue(_job())
    store.claim_next("r1", block_ms=0, idle_ms=60_000)
    store.start("j1", "r1")
    assert _statuses(store) == [("j1", 1, "running")]
