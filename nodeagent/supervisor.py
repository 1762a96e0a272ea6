"""The node's link to the coordinator: one WebSocket, dispatches in, outbox events out.

Every dispatch is verified here (nodeagent.verification) and the script checked against the SAL
catalog before it reaches Redis; the coordinator's word alone never queues anything. Events leave
the outbox only when the coordinator acknowledges them, so a dropped link loses nothing: on
reconnect everything unacknowledged is sent again and the coordinator ignores what it has.
"""

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from nacl.signing import VerifyKey
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from contracts.node_job_states import NODE_FINAL_STATES
from contracts.scripts import ScriptRejected, check_script
from nodeagent.identity import NodeIdentity
from nodeagent.jobstore import JobStore, QueuedJob
from nodeagent.ledger_client import LedgerClient, LedgerRefused, LedgerUnavailable
from nodeagent.logring import tail
from nodeagent.verification import DispatchRejected, NodeAudience, verify_cancel, verify_dispatch
from signing.keys import b64encode, parse_public_key

log = logging.getLogger(__name__)

WS_CONTEXT = b"zos-ws-v1\n"
HANDSHAKE_TIMEOUT = 10.0
# A clock this far from the coordinator's is worth a warning in the node's log (we correct for it).
CLOCK_WARN_AFTER = 30.0
# Reconnect delays. After a link that was up (the coordinator restarted, a worker died, a proxy
# or the network dropped us) the first attempt comes at a random point between 0.5 and
# RELINK_SPREAD times BACKOFF_BASE (1-10 s): a whole fleet is dropped together then, and at
# 0.5-1 x BACKOFF_BASE 5,000 simulated nodes all said hello within one second and thousands of
# handshakes timed out and had to be tried again (docs/performance.md). Each refused or failed
# attempt in a row doubles the delay up to BACKOFF_MAX (the coordinator is down or refuses us:
# do not hammer it), scaled by a random 0.5-1.0.
BACKOFF_BASE = 2.0
BACKOFF_MAX = 60.0
RELINK_SPREAD = 5.0
# What this agent does on the link beyond the base protocol: it sends a `beat` at the interval
# the coordinator's `welcome` names (so the coordinator may mark the link down when the beats
# stop, without pinging every node), answers `ping` (from coordinators older than beats),
# acknowledges `cancel` with `cancel_ack`, and answers `logs` with the tail of the node's log
# ring (nodeagent.logring).
FEATURES = ["beat", "pong", "cancel_ack", "logs"]
# How long the outbox shipper waits in Redis for a new event before it looks whether its session
# is over: a dropped link is retried only after this, on top of its reconnect delay.
OUTBOX_WAIT_MS = 500


def reconnect_delay(failures: int, base: float = BACKOFF_BASE) -> float:
    """How long to wait before the next link attempt after `failures` in a row (1 after a link
    that was up). Shared with bench/node_sim_bench.py, whose simulated fleet reconnects as the
    agent does."""
    if failures <= 1:
        return random.uniform(0.5 * base, RELINK_SPREAD * base)  # noqa: S311  (jitter)
    delay = min(BACKOFF_MAX, base * 2 ** min(failures - 1, 6))
    return delay * random.uniform(0.5, 1.0)  # noqa: S311  (jitter, not crypto)


class LinkRefused(Exception):
    pass


class UserKeyCache:
    """User keys from the ledger, cached briefly: revocations take effect within `ttl`."""

    def __init__(self, client: LedgerClient, ttl: float = 60.0) -> None:
        self.client = client
        self.ttl = ttl
        self._cache: dict[int, tuple[float, list[VerifyKey]]] = {}

    def get(self, owner: int, *, fresh: bool = False) -> list[VerifyKey]:
        cached = self._cache.get(owner)
        if cached and not fresh and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        reply = self.client.user_keys(owner)
        keys = [parse_public_key(k["public_key"]) for k in reply["keys"] if not k["revoked"]]
        self._cache[owner] = (time.monotonic(), keys)
        return keys


def ws_url_for(ledger_url: str) -> str:
    scheme, rest = ledger_url.split("://", 1)
    return ("wss://" if scheme == "https" else "ws://") + rest.rstrip("/") + "/ws/node/"


class Supervisor:
    def __init__(
        self,
        *,
        ws_url: str,
        identity: NodeIdentity,
        store: JobStore,
        client: LedgerClient,
        audience: Callable[[], NodeAudience | None],
        stop: threading.Event,
        inventory: Callable[[], list[dict]] = list,
        backoff_base: float = BACKOFF_BASE,
        known_secrets: tuple[str, ...] = (),
    ) -> None:
        self.ws_url = ws_url
        self.identity = identity
        self.store = store
        self.client = client
        self.audience = audience
        self.stop = stop
        self.inventory = inventory
        self.user_keys = UserKeyCache(client)
        self.backoff_base = backoff_base
        self.known_secrets = known_secrets  # redacted by value from every log line sent
        self.sessions = 0  # links that reached `welcome`; the reconnect loop reads it
        # The coordinator's clock minus ours, measured at the last `welcome`: expiries are
        # checked, and events stamped, by the coordinator's time, so a node whose clock is off
        # by minutes still takes work (replay protection is the nonce, not the clock).
        self.clock_offset = 0.0
        self._coordinator_key: VerifyKey | None = None

    def coordinator_key(self) -> VerifyKey:
        if self._coordinator_key is None:
            reply = self.client.request("GET", "/api/v1/coordinator/key")
            self._coordinator_key = parse_public_key(reply["public_key"])
        return self._coordinator_key

    def handle_dispatch(self, envelope: Any) -> dict:
        """Verify, check and queue one dispatch; return the accepted/rejected reply to send."""
        audience = self.audience()
        if audience is None:
            return _rejected(DispatchRejected("not_registered", "this node is not registered yet"))
        try:
            job = self._verify(envelope, audience)
            ttl = _nonce_ttl(job.expires_at, self.now())
            if not self.store.claim_nonce(job.nonce, job.job_id, ttl):
                raise DispatchRejected(
                    "nonce_replayed",
                    "this deployment nonce was already used by another job",
                    job_id=job.job_id,
                    attempt=job.attempt,
                )
            try:
                check_script(job.script)
            except ScriptRejected as exc:
                raise DispatchRejected(
                    exc.code, exc.message, job_id=job.job_id, attempt=job.attempt
                ) from exc
        except DispatchRejected as exc:
            log.warning("refused job %s: %s: %s", exc.job_id or "?", exc.code, exc.message)
            return _rejected(exc)
        queued = self.store.enqueue(
            QueuedJob(
                job_id=job.job_id,
                attempt=job.attempt,
                owner=job.owner,
                signer=job.signer,
                name=job.name,
                script=job.script,
                timeout=job.timeout,
            )
        )
        if not queued:
            self._report_known_job(job.job_id, job.attempt)
        log.info("job %s attempt %d %s", job.job_id, job.attempt, "queued" if queued else "known")
        return {"type": "accepted", "job_id": job.job_id, "attempt": job.attempt}

    def now(self) -> float:
        """The coordinator's time, as well as this node can tell."""
        return time.time() + self.clock_offset

    def _verify(self, envelope: Any, audience: NodeAudience):
        try:
            return verify_dispatch(
                envelope,
                coordinator_key=self.coordinator_key(),
                audience=audience,
                user_keys=self.user_keys.get,
                now=self.now(),
            )
        except DispatchRejected as exc:
            if exc.code != "signature_invalid":
                raise
            # The user may have registered the key after we cached their keys: ask once more.
            return verify_dispatch(
                envelope,
                coordinator_key=self.coordinator_key(),
                audience=audience,
                user_keys=lambda owner: self.user_keys.get(owner, fresh=True),
                now=self.now(),
            )

    def _report_known_job(self, job_id: str, attempt: int) -> None:
        """A re-sent job already finished here: tell the coordinator its outcome again."""
        state = self.store.job_state(job_id) or {}
        if state.get("state") in NODE_FINAL_STATES:
            fields = {k: state[k] for k in ("result", "error") if state.get(k)}
            if "result" in fields:
                fields["result"] = json.loads(fields["result"])
            self.store.emit(job_id, attempt, state["state"], **fields)

    def handle_cancel(self, envelope: Any) -> dict | None:
        """Store a verified cancel and return the `cancel_ack` to send, also for a job this node
        never had (`state` null), so the coordinator stops re-sending it. The cancel is in Redis
        before the ack leaves: the runners stop the job even if the agent dies right after."""
        audience = self.audience()
        if audience is None:
            return None
        try:
            job_id = verify_cancel(
                envelope, coordinator_key=self.coordinator_key(), audience=audience, now=self.now()
            )
        except DispatchRejected as exc:
            log.warning("ignored cancel: %s: %s", exc.code, exc.message)
            return None
        self.store.request_cancel(job_id)
        state = (self.store.job_state(job_id) or {}).get("state")
        log.info("cancel of job %s stored (%s)", job_id, state or "unknown here")
        return {"type": "cancel_ack", "job_id": job_id, "state": state}

    def run(self) -> None:
        """Keep the link up. A session that reached `welcome` resets the backoff however it
        ended: every dropped link ends in ConnectionClosed, and counting those as failures made
        a node wait up to a minute after each coordinator restart."""
        failures = 0
        while not self.stop.is_set():
            if self.audience() is None:
                self.stop.wait(1.0)
                continue
            sessions = self.sessions
            try:
                with connect(
                    self.ws_url, open_timeout=HANDSHAKE_TIMEOUT, close_timeout=2, max_size=2**22
                ) as ws:
                    self._session(ws)
                failures = 0
            except (
                OSError,
                InvalidHandshake,
                InvalidURI,
                ConnectionClosed,
                TimeoutError,
                LinkRefused,
                LedgerRefused,
                LedgerUnavailable,
            ) as exc:
                failures = 1 if self.sessions > sessions else failures + 1
                delay = reconnect_delay(failures, self.backoff_base)
                log.warning("coordinator link down (%s); reconnecting in %.1fs", exc, delay)
                self.stop.wait(delay)

    def _session(self, ws: ClientConnection) -> None:
        challenge = json.loads(ws.recv(timeout=HANDSHAKE_TIMEOUT))
        if challenge.get("type") != "challenge":
            raise LinkRefused(f"expected a challenge, got {challenge.get('type')!r}")
        signature = self.identity.sign(WS_CONTEXT + str(challenge["nonce"]).encode())
        hello = {
            "type": "hello",
            "key": self.identity.public_key_hex,
            "sig": b64encode(signature),
            "features": FEATURES,
        }
        ws.send(json.dumps(hello))
        try:
            welcome = json.loads(ws.recv(timeout=HANDSHAKE_TIMEOUT))
        except ConnectionClosed as exc:
            reason = "not approved, or unknown" if exc.rcvd and exc.rcvd.code == 4403 else exc
            raise LinkRefused(f"coordinator refused this node ({reason})") from exc
        if welcome.get("type") != "welcome":
            raise LinkRefused(f"expected welcome, got {welcome.get('type')!r}")
        log.info("coordinator link up")
        self._measure_clock(welcome.get("time"))
        self.sessions += 1
        beat = _beat_interval(welcome.get("beat"))
        last_beat = time.monotonic()
        session_over = threading.Event()
        shipper = threading.Thread(
            target=self._ship_outbox, args=(ws, session_over), name="outbox", daemon=True
        )
        shipper.start()
        try:
            while not self.stop.is_set():
                if beat and time.monotonic() - last_beat >= beat:
                    last_beat = time.monotonic()
                    ws.send('{"type":"beat"}')
                try:
                    raw = ws.recv(timeout=1.0 if beat is None else min(1.0, beat))
                except TimeoutError:
                    continue
                self._on_message(ws, json.loads(raw))
        finally:
            session_over.set()
            shipper.join(timeout=5)

    def _measure_clock(self, coordinator_time: Any) -> None:
        """Take the coordinator's clock from its `welcome` (absent from an older coordinator:
        then our own clock stands), and say so in the node's log when ours is off."""
        if type(coordinator_time) not in (int, float):
            return
        self.clock_offset = coordinator_time - time.time()
        if abs(self.clock_offset) >= CLOCK_WARN_AFTER:
            log.warning(
                "this node's clock is %s the control plane's by %.0f s; checking expiries and "
                "stamping events by the control plane's time (fix the node's clock: NTP)",
                "behind" if self.clock_offset > 0 else "ahead of",
                abs(self.clock_offset),
            )

    def _on_message(self, ws: ClientConnection, message: Any) -> None:
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "dispatch":
            ws.send(json.dumps(self.handle_dispatch(message.get("envelope"))))
        elif kind == "cancel":
            ack = self.handle_cancel(message.get("envelope"))
            if ack:
                ws.send(json.dumps(ack))
        elif kind == "ping":
            ws.send(json.dumps({"type": "pong", "id": message.get("id")}))
        elif kind == "ack":
            ids = [str(i) for i in message.get("ids", [])]
            self.store.ack_outbox(ids)
        elif kind == "logs":
            ws.send(json.dumps(self.handle_logs(message)))

    def handle_logs(self, message: dict) -> dict:
        """The tail of the node's log ring, redacted, for the coordinator's `logs` request."""
        reply = {"type": "logs", "id": message.get("id")}
        try:
            found = tail(
                self.store.redis,
                lines=int(message.get("lines") or 200),
                after=str(message.get("after") or ""),
                known=self.known_secrets,
            )
        except (redis.RedisError, TypeError, ValueError) as exc:
            return {**reply, "lines": [], "cursor": "", "error": f"log ring unreadable: {exc}"}
        return {**reply, **found}

    def _ship_outbox(self, ws: ClientConnection, session_over: threading.Event) -> None:
        """Send every outbox entry, oldest first; on a new session start again from the top."""
        last = "0-0"
        reported: list[dict] | None = None
        try:
            while not session_over.is_set() and not self.stop.is_set():
                workloads = self.inventory()
                if workloads != reported:  # at link-up, then whenever a workload changes
                    ws.send(json.dumps({"type": "inventory", "workloads": workloads}))
                    reported = workloads
                for entry_id, fields in self.store.outbox_after(
                    last, count=100, block_ms=OUTBOX_WAIT_MS
                ):
                    event = _event_fields(fields, self.clock_offset)
                    ws.send(json.dumps({"type": "event", "id": entry_id, **event}))
                    last = entry_id
        except ConnectionClosed:
            return
        except Exception:
            log.exception("outbox shipping stopped; the link will be re-established")
            ws.close()


def _event_fields(fields: dict, clock_offset: float = 0.0) -> dict:
    """An outbox entry as the link sends it: typed, its time moved to the coordinator's clock."""
    out = dict(fields)
    out["attempt"] = int(out.get("attempt", 0))
    if "result" in out:
        with contextlib.suppress(TypeError, ValueError):
            out["result"] = json.loads(out["result"])
    if "ts" in out:
        out["ts"] = float(out["ts"]) + clock_offset
    return out


def _beat_interval(value: Any) -> float | None:
    """The beat interval a `welcome` asks for (seconds), or None: the coordinator pings."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return max(0.05, float(value))


def _nonce_ttl(expires_at: int, now: float) -> int:
    return max(60, int(expires_at - now) + 60)


def _rejected(exc: DispatchRejected) -> dict:
    return {
        "type": "rejected",
        "job_id": exc.job_id,
        "attempt": exc.attempt,
        "error": exc.code,
        "message": exc.message,
    }
