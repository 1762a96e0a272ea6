"""The node's job queue and outbox in Redis (docs/deployments.md §4).

One class owns every key so the state machine lives in one place: the supervisor queues verified
jobs and ships the outbox, runners claim, start and finish jobs. Every change of a job's state and
the event reporting it happen in one Lua script, so a crash can never leave a job `succeeded`
without its `succeeded` event in the outbox, or an event without its state.

Keys (prefix `zos:`): `jobs` stream with group `runners`, `job:<id>` hash, `outbox` stream,
`seen:<nonce>` strings with a TTL, `dead` stream, and `node` (the node's facts as JSON, for the
runners' `node_info()`).
"""

import json
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from contracts.node_job_states import NODE_FINAL_STATES, NodeJobState

GROUP = "runners"
DEFAULT_MAX_LOCAL_ATTEMPTS = 3
JOB_FIELDS = ("job_id", "attempt", "owner", "signer", "name", "script", "timeout")
AGENT_RESTARTED = "the agent restarted mid-job"
UNKNOWN_RESTART_REASON = "its previous run here was interrupted"


@dataclass
class QueuedJob:
    job_id: str
    attempt: int
    owner: int
    signer: str  # hex public key of the user key that signed the deployment
    name: str
    script: str
    timeout: int


@dataclass
class ClaimedJob:
    """A stream entry a runner now holds; `reclaimed` when another runner had it before."""

    entry_id: str
    job: QueuedJob
    reclaimed: bool


def connect(url: str, *, retry_for: float = 5.0) -> redis.Redis:
    """A client that rides out a short Redis restart instead of failing the first command."""
    retries = max(1, int(retry_for / 0.5))
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=30.0,
        socket_connect_timeout=2.0,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


# KEYS: job hash, jobs stream. ARGV: job_id attempt owner signer name script timeout now.
# Returns 1 when the job (or a newer attempt of it) will run, 0 when nothing changed.
_ENQUEUE = """
local state = redis.call('HGET', KEYS[1], 'state')
local attempt = tonumber(ARGV[2])
if state then
  local known = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0')
  if attempt <= known then return 0 end
  if state == 'queued' or state == 'running' then
    redis.call('HSET', KEYS[1], 'attempt', ARGV[2])
    return 1
  end
  if state ~= 'failed' then
    redis.call('HSET', KEYS[1], 'attempt', ARGV[2])
    return 0
  end
  redis.call('HDEL', KEYS[1], 'started_at', 'finished_at', 'result', 'error', 'cancel',
             'cancel_at', 'runner', 'restart_reason')
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempt', ARGV[2], 'owner', ARGV[3],
           'signer', ARGV[4], 'name', ARGV[5], 'timeout', ARGV[7], 'queued_at', ARGV[8],
           'local_attempts', 0)
redis.call('XADD', KEYS[2], '*', 'job_id', ARGV[1], 'attempt', ARGV[2], 'owner', ARGV[3],
           'signer', ARGV[4], 'name', ARGV[5], 'script', ARGV[6], 'timeout', ARGV[7])
return 1
"""

# KEYS: job hash, outbox. ARGV: job_id now. Returns 1 if the job was still queued (now cancelled).
_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'cancel', '1', 'cancel_at', ARGV[2])
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end
local attempt = redis.call('HGET', KEYS[1], 'attempt')
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[2],
           'error', 'cancelled before it started')
redis.call('XADD', KEYS[2], '*', 'job_id', ARGV[1], 'attempt', attempt, 'status', 'cancelled',
           'ts', ARGV[2], 'error', 'cancelled before it started')
return 1
"""

# KEYS: job hash, outbox. ARGV: job_id now runner.
# Returns the attempt now running, or false when the job is final (nothing to run).
# A job that already started here (or was claimed before: its runner died first) gets a
# `restarted` event before its new `running`, saying why, so the re-run's log lines read as a
# new run and not as repeats. The pool leaves the reason in `restart_reason` when it hands a
# dead runner's job on.
_START = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return false end
local attempt = redis.call('HGET', KEYS[1], 'attempt')
local runs = tonumber(redis.call('HGET', KEYS[1], 'local_attempts') or '0')
if redis.call('HEXISTS', KEYS[1], 'started_at') == 1 or runs > 1 then
  local why = redis.call('HGET', KEYS[1], 'restart_reason') or ARGV[4]
  redis.call('XADD', KEYS[2], '*', 'job_id', ARGV[1], 'attempt', attempt, 'status', 'restarted',
             'ts', ARGV[2], 'log', 'restarted on the node: ' .. why .. ' (run ' .. runs .. ')')
  redis.call('HDEL', KEYS[1], 'restart_reason')
end
redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[2], 'runner', ARGV[3])
redis.call('XADD', KEYS[2], '*', 'job_id', ARGV[1], 'attempt', attempt, 'status', 'running',
           'ts', ARGV[2])
return attempt
"""

# KEYS: job hash, outbox. ARGV: job_id now message. Logs carry the job's current attempt.
_LOG = """
local attempt = redis.call('HGET', KEYS[1], 'attempt')
if not attempt then return false end
return redis.call('XADD', KEYS[2], '*', 'job_id', ARGV[1], 'attempt', attempt,
                  'status', 'running', 'ts', ARGV[2], 'log', ARGV[3])
"""

# KEYS: job hash, outbox, jobs stream. ARGV: job_id now state field value entry_id group.
# Returns 1 if this call ended the job, 0 if it had already ended (the entry is acked either way).
_FINISH = """
if ARGV[6] ~= '' then redis.call('XACK', KEYS[3], ARGV[7], ARGV[6]) end
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'succeeded' or state == 'failed' or state == 'cancelled' then
  return 0
end
local attempt = redis.call('HGET', KEYS[1], 'attempt')
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'finished_at', ARGV[2], ARGV[4], ARGV[5])
redis.call('XADD', KEYS[2], '*', 'job_id', ARGV[1], 'attempt', attempt, 'status', ARGV[3],
           'ts', ARGV[2], ARGV[4], ARGV[5])
return 1
"""


def _now() -> str:
    return f"{time.time():.6f}"


def _job_from_fields(fields: dict[str, str]) -> QueuedJob:
    return QueuedJob(
        job_id=fields["job_id"],
        attempt=int(fields["attempt"]),
        owner=int(fields["owner"]),
        signer=fields["signer"],
        name=fields["name"],
        script=fields["script"],
        timeout=int(fields["timeout"]),
    )


class JobStore:
    """Every read and write of the node's job keys. The client must use `decode_responses`."""

    def __init__(
        self,
        redis_client: redis.Redis,
        prefix: str = "zos:",
        *,
        max_local_attempts: int = DEFAULT_MAX_LOCAL_ATTEMPTS,
    ) -> None:
        self.redis = redis_client
        self.prefix = prefix
        self.max_local_attempts = max_local_attempts
        self.jobs_key = prefix + "jobs"
        self.outbox_key = prefix + "outbox"
        self.dead_key = prefix + "dead"
        self.node_key = prefix + "node"
        self._enqueue = self.redis.register_script(_ENQUEUE)
        self._cancel = self.redis.register_script(_CANCEL)
        self._start = self.redis.register_script(_START)
        self._log = self.redis.register_script(_LOG)
        self._finish = self.redis.register_script(_FINISH)

    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    # --- supervisor side ---------------------------------------------------------------------

    def claim_nonce(self, nonce: str, job_id: str, ttl: int) -> bool:
        """Reserve an envelope nonce for one job; the same job may claim it again (a re-send)."""
        key = f"{self.prefix}seen:{nonce}"
        if self.redis.set(key, job_id, nx=True, ex=max(1, int(ttl))):
            return True
        return self.redis.get(key) == job_id

    def enqueue(self, job: QueuedJob) -> bool:
        """Queue a job once per job id; False when this attempt (or a newer one) is known.

        A newer attempt of a job still queued or running here takes over its reporting (events
        carry the new attempt); a newer attempt of a job that failed here runs again; a newer
        attempt of a job that succeeded or was cancelled is not re-run (the supervisor reports
        the outcome again).
        """
        return bool(
            self._enqueue(
                keys=[self.job_key(job.job_id), self.jobs_key],
                args=[
                    job.job_id,
                    job.attempt,
                    job.owner,
                    job.signer,
                    job.name,
                    job.script,
                    job.timeout,
                    _now(),
                ],
            )
        )

    def job_state(self, job_id: str) -> dict[str, str] | None:
        fields = self.redis.hgetall(self.job_key(job_id))
        return fields or None

    def emit(self, job_id: str, attempt: int, status: str, **fields: Any) -> str:
        """Append one event to the outbox; `result` is JSON-encoded, everything else a string."""
        event = {"job_id": job_id, "attempt": attempt, "status": status, "ts": _now()}
        for name, value in fields.items():
            if value is None:
                continue
            event[name] = json.dumps(value) if name == "result" else str(value)
        return self.redis.xadd(self.outbox_key, event)

    def request_cancel(self, job_id: str) -> bool:
        """Ask for a job to stop. A queued job is cancelled at once; True when that happened."""
        return (
            self._cancel(keys=[self.job_key(job_id), self.outbox_key], args=[job_id, _now()]) == 1
        )

    def outbox_after(self, last_id: str, count: int, block_ms: int) -> list[tuple[str, dict]]:
        """Outbox entries after `last_id`, waiting up to `block_ms` for one if there are none."""
        block = block_ms if block_ms > 0 else None  # XREAD BLOCK 0 would wait forever
        reply = self.redis.xread({self.outbox_key: last_id}, count=count, block=block)
        if not reply:
            return []
        return [(entry_id, fields) for entry_id, fields in reply[0][1]]

    def ack_outbox(self, ids: list[str]) -> int:
        """Delete exactly the entries the coordinator acknowledged; the rest stay to be re-sent."""
        if not ids:
            return 0
        return self.redis.xdel(self.outbox_key, *ids)

    # --- runner side --------------------------------------------------------------------------

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.jobs_key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def claim_next(self, consumer: str, block_ms: int, idle_ms: int) -> ClaimedJob | None:
        """The next job for `consumer`: first one abandoned by a dead runner, else a new one.

        Every claim counts a local attempt; a job claimed more than `max_local_attempts` times
        (its runner died each time) goes to the `dead` stream, fails, and is skipped.
        """
        while True:
            claimed = self._next_entry(consumer, block_ms, idle_ms)
            if claimed is None:
                return None
            entry_id, fields, reclaimed = claimed
            if set(JOB_FIELDS) - fields.keys():
                self.redis.xack(self.jobs_key, GROUP, entry_id)
                continue
            job = _job_from_fields(fields)
            key = self.job_key(job.job_id)
            attempts = self.redis.hincrby(key, "local_attempts", 1)
            if (
                attempts > self.max_local_attempts
                and self.redis.hget(key, "state") not in NODE_FINAL_STATES
            ):
                self.dead_letter(entry_id, job, attempts - 1)
                continue
            return ClaimedJob(entry_id, job, reclaimed)

    def _next_entry(
        self, consumer: str, block_ms: int, idle_ms: int
    ) -> tuple[str, dict, bool] | None:
        cursor = "0-0"
        while True:
            cursor, entries, *_ = self.redis.xautoclaim(
                self.jobs_key, GROUP, consumer, min_idle_time=idle_ms, start_id=cursor, count=1
            )
            entries = [e for e in entries if e and e[1]]
            if entries:
                return entries[0][0], entries[0][1], True
            if cursor == "0-0":
                break
        reply = self.redis.xreadgroup(
            GROUP, consumer, {self.jobs_key: ">"}, count=1, block=block_ms if block_ms > 0 else None
        )
        if not reply or not reply[0][1]:
            return None
        entry_id, fields = reply[0][1][0]
        return entry_id, fields, False

    def dead_letter(self, entry_id: str, job: QueuedJob, attempts: int) -> None:
        self.redis.xadd(
            self.dead_key,
            {"job_id": job.job_id, "attempt": job.attempt, "entry": entry_id, "ts": _now()},
        )
        self.finish(
            job.job_id,
            entry_id,
            NodeJobState.FAILED,
            error=f"gave up after {attempts} local attempts: the runner died each time",
        )

    def heartbeat(self, consumer: str, entry_id: str) -> None:
        """Reset the entry's idle time so no other runner takes a job that is still running."""
        self.redis.xclaim(self.jobs_key, GROUP, consumer, 0, [entry_id], justid=True)

    def start(self, job_id: str, runner: str = "") -> int | None:
        """Mark the job running and emit `running`; None if it already ended (e.g. cancelled).

        A re-run (the job started here before) first emits `restarted` with a `log` sentence
        saying why; `attempt` stays the coordinator's attempt.
        """
        attempt = self._start(
            keys=[self.job_key(job_id), self.outbox_key],
            args=[job_id, _now(), runner, UNKNOWN_RESTART_REASON],
        )
        return None if attempt is None else int(attempt)

    def log(self, job_id: str, message: str) -> str | None:
        return self._log(
            keys=[self.job_key(job_id), self.outbox_key], args=[job_id, _now(), message]
        )

    def cancel_requested(self, job_id: str) -> bool:
        return self.redis.hget(self.job_key(job_id), "cancel") == "1"

    def finish(
        self,
        job_id: str,
        entry_id: str,
        state: NodeJobState,
        *,
        result: Any = None,
        error: str | None = None,
    ) -> bool:
        """End the job, emit its final event and ack its stream entry, all at once.

        False when the job had already ended (then only the ack happens): a runner and the pool
        may race to end the same job, and the first one wins.
        """
        if state not in NODE_FINAL_STATES:
            raise ValueError(f"{state!r} is not a final job state")
        if state == NodeJobState.SUCCEEDED:
            field, value = "result", json.dumps(result)
        else:
            field, value = "error", error or state
        return (
            self._finish(
                keys=[self.job_key(job_id), self.outbox_key, self.jobs_key],
                args=[job_id, _now(), state, field, value, entry_id, GROUP],
            )
            == 1
        )

    def pending(self, count: int = 1000) -> list[dict]:
        """Entries runners hold: `message_id`, `consumer`, `time_since_delivered` (ms)."""
        try:
            return self.redis.xpending_range(self.jobs_key, GROUP, "-", "+", count)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                return []
            raise

    def forget_consumer(self, consumer: str) -> None:
        self.redis.xgroup_delconsumer(self.jobs_key, GROUP, consumer)

    def hand_over(self, entry_id: str, consumer: str, idle_ms: int, reason: str) -> None:
        """Move a dead runner's pending entry to `consumer`, already `idle_ms` idle, so the next
        runner to look for abandoned work takes it at once instead of after the visibility
        timeout; `reason` (a phrase: "runner 4711 was killed by SIGKILL mid-job") becomes the
        re-run's `restarted` event."""
        entries = self.redis.xrange(self.jobs_key, entry_id, entry_id)
        with self.redis.pipeline() as pipe:
            if entries and entries[0][1].get("job_id"):
                pipe.hset(self.job_key(entries[0][1]["job_id"]), "restart_reason", reason)
            pipe.xclaim(self.jobs_key, GROUP, consumer, 0, [entry_id], idle=idle_ms, justid=True)
            pipe.execute()

    def consumers(self) -> list[dict]:
        try:
            return self.redis.xinfo_consumers(self.jobs_key, GROUP)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                return []
            raise

    # --- node facts and status ----------------------------------------------------------------

    def publish_node_info(self, info: dict) -> None:
        self.redis.set(self.node_key, json.dumps(info))

    def node_info(self) -> dict | None:
        raw = self.redis.get(self.node_key)
        return json.loads(raw) if raw else None

    def summary(self) -> dict:
        """Counts for `python -m nodeagent status`."""
        waiting = running = 0
        groups = []
        if self.redis.exists(self.jobs_key):
            groups = [g for g in self.redis.xinfo_groups(self.jobs_key) if g["name"] == GROUP]
        if groups:
            waiting = int(groups[0].get("lag") or 0)
            running = int(groups[0].get("pending") or 0)
        else:
            waiting = self.redis.xlen(self.jobs_key)
        return {
            NodeJobState.QUEUED.value: waiting,
            NodeJobState.RUNNING.value: running,
            "outbox": self.redis.xlen(self.outbox_key),
            "dead": self.redis.xlen(self.dead_key),
        }
