"""Every state change of the coordinator, as plain functions; views and consumers only call these.

Deployments are verified, checked and placed here; jobs move through JOB_TRANSITIONS here; node
events are stored here exactly once. Channel messages go out only after the transaction commits.

Faults have one rule each (docs/deployments.md "Delivery guarantees and faults"): a job whose
node's link is down waits for it without spending attempts; a cancel is stored and sent until the
node acknowledges it; a job's final state is decided once, and node events arriving after it are
kept as `late` history that never changes it.
"""

import contextlib
import hashlib
import logging
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Max, Q
from django.utils import timezone
from nacl.signing import VerifyKey

from contracts.catalog import gateway_functions
from contracts.node_job_states import NODE_FINAL_STATES, NodeJobState
from contracts.payload_types import DEPLOYMENT_TYPE
from contracts.scripts import ScriptRejected
from coordinator import compile_pool, links, notify
from coordinator.choices import JobState
from coordinator.envelopes import cancel_envelope, dispatch_envelope
from coordinator.models import Deployment, Job, JobEvent
from coordinator.scheduling import has_room, pick_farm_node
from coordinator.serializers import DeploymentPayloadSerializer, JobEventSerializer
from coordinator.states import (
    ACTIVE_STATES,
    AWAITING_DELIVERY,
    FINAL_STATES,
    can_transition,
)
from grid import json_input
from grid.errors import ServiceError, signature_refused
from ledger.choices import NodeStatus
from ledger.models import Farm, Node, UserKey
from signing import SignatureError
from signing.dsse import verify_envelope

log = logging.getLogger(__name__)

MAX_CLOCK_AHEAD = 300
MAX_LIFETIME = 7 * 24 * 3600
MAX_LOG_LINE = 8192
NODE_EVENT_STATES = {
    NodeJobState.RUNNING: JobState.RUNNING,
    NodeJobState.SUCCEEDED: JobState.SUCCEEDED,
    NodeJobState.FAILED: JobState.FAILED,
    NodeJobState.CANCELLED: JobState.CANCELLED,
}
# The status of a node event stored after the job's final state: history, never a state change.
LATE = "late"
# The status of the event saying a job waits for its node's link.
WAITING = "waiting"


def first_or_none(queryset):
    """The row a filter on a unique key matches, or None: `.first()` without the ORDER BY it
    adds, whose building was ~8 % of an ASGI worker's CPU in a burst's profile."""
    return next(iter(queryset.order_by()[:1]), None)


class DeploymentRejected(ServiceError):
    """A deployment, script or cancel the coordinator refuses; answered as any ServiceError."""


def _verify_signature(owner, envelope: Any) -> tuple[bytes, UserKey]:
    active = UserKey.objects.filter(user=owner, revoked_at__isnull=True).order_by()
    keys = {k.public_key: k for k in active}
    if not keys:
        raise DeploymentRejected(
            "no_keys",
            "you have no active signing key; add one with `zos key register`",
            http_status=403,
        )
    try:
        payload, verify_key = verify_envelope(
            envelope, DEPLOYMENT_TYPE, [VerifyKey(bytes.fromhex(k)) for k in keys]
        )
    except SignatureError as exc:
        raise signature_refused(exc) from exc
    return payload, keys[bytes(verify_key).hex()]


def _parse_payload(payload: bytes) -> dict:
    try:
        data = json_input.loads(payload)
    except json_input.MalformedJSON as exc:
        raise DeploymentRejected("payload_invalid", f"payload is not JSON: {exc}") from exc
    serializer = DeploymentPayloadSerializer(data=data)
    if not serializer.is_valid():
        raise DeploymentRejected(
            "payload_invalid", "the signed payload has invalid fields", fields=serializer.errors
        )
    return serializer.validated_data


def _check_times(data: dict, now: float) -> None:
    if data["issued_at"] > now + MAX_CLOCK_AHEAD:
        raise DeploymentRejected(
            "not_yet_valid", "issued_at is in the future; check your clock", server_time=int(now)
        )
    if data["expires_at"] <= now:
        raise DeploymentRejected(
            "expired", "the envelope has expired; sign it again", server_time=int(now)
        )
    if data["expires_at"] - data["issued_at"] > MAX_LIFETIME:
        raise DeploymentRejected("payload_invalid", "an envelope may be valid for 7 days at most")


def _place(
    target: dict, resources: dict, gateway_calls: list[str]
) -> tuple[Node, Node | None, Farm | None]:
    """Return (node to run on, target node, target farm); a targeted node comes with its link
    (links.link_of_node_is_live), read in the same statement.

    A script calling gateway functions runs on the gateway node it names: a name lives under
    that gateway's domain, so the user, not the scheduler, picks the gateway."""
    if gateway_calls and "node" not in target:
        raise DeploymentRejected(
            "gateway_needs_node",
            f"the script calls {', '.join(gateway_calls)}, which run on a gateway node: target "
            "one by id (gateways: GET /api/v1/nodes?gateway=true)",
            functions=gateway_calls,
        )
    if "node" in target:
        node = first_or_none(Node.objects.select_related("link").filter(pk=target["node"]))
        if node is None:
            raise DeploymentRejected(
                "unknown_node", f"node {target['node']} does not exist", http_status=404
            )
        if gateway_calls and not node.is_gateway:
            raise DeploymentRejected(
                "not_a_gateway",
                f"node {node.pk} is not a gateway, and the script calls "
                f"{', '.join(gateway_calls)} (gateways: GET /api/v1/nodes?gateway=true)",
                http_status=409,
                functions=gateway_calls,
            )
        if node.status != NodeStatus.ONLINE:
            raise DeploymentRejected(
                "node_not_online", f"node {node.pk} is {node.status}, not online", http_status=409
            )
        if node.drained:
            raise DeploymentRejected(
                "node_drained",
                f"node {node.pk} is drained by its farmer and takes no new deployments; "
                "pick another node or target its farm",
                http_status=409,
            )
        if not has_room(node, resources):
            raise DeploymentRejected(
                "no_capacity", f"node {node.pk} has not enough free capacity", http_status=409
            )
        return node, node, None
    farm = Farm.objects.filter(pk=target["farm"]).first()
    if farm is None:
        raise DeploymentRejected(
            "unknown_farm", f"farm {target['farm']} does not exist", http_status=404
        )
    node = pick_farm_node(farm, resources)
    if node is None:
        raise DeploymentRejected(
            "no_capacity",
            f"farm {farm.pk} has no online node with the requested free capacity",
            http_status=409,
        )
    return node, None, farm


def _arm_for_dispatch(job: Job, now: datetime) -> None:
    job.deadline = now + timedelta(seconds=settings.ZOS_JOB_ACK_TIMEOUT)
    job.next_attempt_at = None


def _wait_for_link(job: Job, now: datetime, *, announce: bool = True) -> None:
    """The node's link is down: hold the job, spending no attempt, and look again after an ack
    timeout (or at the envelope's expiry, if that comes first). The caller saves; with
    `announce=False` it also writes the `waiting` event, once the job is stored."""
    job.deadline = min(
        job.deployment.expires_at, now + timedelta(seconds=settings.ZOS_JOB_ACK_TIMEOUT)
    )
    if job.waiting_since is None:
        job.waiting_since = now
        if announce:
            _event(job, WAITING, log=f"waiting for node {job.node_id} to reconnect")


def _queue(job: Job, now: datetime, *, message: str, live: bool | None = None) -> None:
    """Save a queued job (a new one or a retry) and put it in its node's way. With the node's
    link up the job is `dispatched` in this same transaction and its signed dispatch rides the
    push, which the link sends as it comes: no transaction of the link's own per job (it was
    a sixth of a sequential deployment's time: docs/performance.md). A cancel from then on goes
    to the node, which answers whether it had the job. With the link down the job is held until
    the node reconnects. `live`: whether the link is up, when the caller read it already (None:
    read it here). A new job's deployment is stored here too, with the job's status."""
    _arm_for_dispatch(job, now)
    if live is None:
        live = links.is_live(job.node_id)
    starts_waiting = not live and job.waiting_since is None
    if live:
        _set_dispatched(job, now)
    else:
        _wait_for_link(job, now, announce=False)
    _save(job)
    _event(job, JobState.QUEUED, log=message)
    if live:
        _event(job, JobState.DISPATCHED)
        notify.dispatch_on_node(job.node_id, job.uuid.hex, job.attempt, dispatch_envelope(job))
    elif starts_waiting:
        _event(job, WAITING, log=f"waiting for node {job.node_id} to reconnect")


def check_script(source: str) -> list[str]:
    """Compile a script in the compile pool and check its calls against the catalog; the catalog
    functions it calls, or DeploymentRejected with the script's error, line and column."""
    try:
        return compile_pool.check_script(source)
    except ScriptRejected as exc:
        details = {k: v for k, v in exc.as_dict().items() if k not in ("error", "message")}
        raise DeploymentRejected(
            exc.code, exc.message, http_status=compile_pool.http_status(exc), **details
        ) from exc


@notify.batched
def submit_deployment(*, owner, envelope: Any) -> Deployment:
    """Verify, check and place a signed deployment, then queue its job for the node link."""
    payload, signer = _verify_signature(owner, envelope)
    data = _parse_payload(payload)
    now = timezone.now()
    _check_times(data, now.timestamp())
    called = check_script(data["script"])
    resources = dict(data.get("resources") or {})
    node, target_node, target_farm = _place(
        dict(data["target"]), resources, gateway_functions(called)
    )
    try:
        with transaction.atomic():
            deployment = Deployment(
                owner=owner,
                name=data["name"],
                envelope=envelope,
                payload=payload.decode("utf-8"),
                signer=signer,
                script_sha256=hashlib.sha256(data["script"].encode("utf-8")).hexdigest(),
                nonce=data["nonce"],
                target_node=target_node,
                target_farm=target_farm,
                resources=resources,
                expires_at=datetime.fromtimestamp(data["expires_at"], tz=UTC),
            )
            job = Job(
                deployment=deployment,
                node=node,
                max_attempts=settings.ZOS_JOB_MAX_ATTEMPTS,
                timeout=data.get("timeout", settings.ZOS_JOB_TIMEOUT),
            )
            # A farm's pick was not read with its link: _queue reads it.
            live = links.link_of_node_is_live(node) if target_node else None
            _queue(job, now, message=f"queued for node {node.pk}", live=live)
    except IntegrityError as exc:
        # The one check of the nonce: the (owner, nonce) unique constraint, race-free, and no
        # statement of its own before the INSERT.
        raise DeploymentRejected(
            "nonce_reused", "this nonce was already used; sign afresh", http_status=409
        ) from exc
    return deployment


# One serializer for every pushed event: a ModelSerializer builds its fields anew per instance,
# which was the biggest single cost of a push. to_representation keeps no state between calls.
_EVENT_SHAPE = JobEventSerializer()


def _push(job: Job, event: JobEvent) -> None:
    notify.push_to_owner(
        job.deployment.owner_id,
        {
            "deployment": job.deployment_id,
            "state": job.state,
            **_EVENT_SHAPE.to_representation(event),
        },
    )


def events_between(
    *, owner_id: int, deployment_id: int, after: int, before: int, state: str
) -> list[dict]:
    """The owner's stored events of a deployment with `after` < seq < `before`, shaped as the
    live feed pushes them (`state`, the job's state then, is the event's own status when that is
    a job state, else the given one). A feed fills a gap with them: an event is pushed after its
    transaction commits, so a worker killed in between stored it and never pushed it."""
    events = JobEvent.objects.filter(
        job__deployment_id=deployment_id,
        job__deployment__owner_id=owner_id,
        id__gt=after,
        id__lt=before,
    ).order_by("id")
    return [
        {
            "deployment": deployment_id,
            "state": event.status if event.status in JobState.values else state,
            **_EVENT_SHAPE.to_representation(event),
        }
        for event in events
    ]


def latest_event_id() -> int:
    """The newest stored event's seq (0: none yet); a feed fills its gaps from there on."""
    return JobEvent.objects.aggregate(latest=Max("id"))["latest"] or 0


def _event(job: Job, status: str, **fields) -> None:
    """A coordinator-side event (no stream id): state changes the node did not report."""
    _push(
        job,
        JobEvent.objects.create(
            job=job, attempt=job.attempt, status=status, ts=timezone.now(), **fields
        ),
    )


# Inside a link's batch: the jobs changed so far, saved once each when the batch is done
# (a job's accepted, running and succeeded in one batch are one UPDATE, not three).
_unsaved: ContextVar[dict[int, Job] | None] = ContextVar("zos_unsaved_jobs", default=None)


def _save(job: Job) -> None:
    unsaved = _unsaved.get()
    if unsaved is not None:
        unsaved[job.pk] = job
        return
    if job._state.adding:  # a new job: its new deployment goes in first, with the job's status
        if job.deployment._state.adding:
            job.deployment.save(force_insert=True)
        job.save(force_insert=True)
        return
    job.save()
    job.deployment.save(update_fields=["status", "updated"])


def _save_batch() -> None:
    """Write the jobs a batch changed (before anything reads jobs from the database again)."""
    unsaved = _unsaved.get()
    if unsaved:
        jobs = list(unsaved.values())
        unsaved.clear()
        for job in jobs:
            job.save()
            job.deployment.save(update_fields=["status", "updated"])


def _end_job(
    job: Job,
    state: str,
    *,
    reason: str,
    as_error: bool = True,
    result: Any = None,
    now: datetime | None = None,
    announce: bool = True,
) -> None:
    """The one way a job ends, whoever decided it (the caller holds the row).

    Job.transition_to closes the books of the final state; here the reason becomes the job's
    error (what the owner reads as the deployment's error), the node's result is kept, job and
    deployment are saved, and an event says how it ended: with the reason as its error, or,
    `as_error=False` for an end that is no fault (a cancel done cleanly), as its log line.
    `announce=False` when the node's own event, which the caller stores, says it already.
    """
    job.transition_to(state, reason=reason, now=now)
    job.result = result
    if as_error:
        job.error = reason[:MAX_LOG_LINE]
    _save(job)
    if announce:
        _event(job, state, **({"error": job.error} if as_error else {"log": reason}))


def pending_dispatches(
    node_id: int, *, skip: frozenset[tuple[str, int]] = frozenset()
) -> list[tuple[str, int, dict]]:
    """(job id, attempt, signed dispatch) for every job the node has not acknowledged yet.

    Called by the node's live link, so a job that waited for the link gets its ack deadline now.
    `skip` names the (job id, attempt) pairs the link already sent in this session: they are
    brought up to date but neither signed nor returned again (signing every unacknowledged job
    at each call made a burst quadratic: docs/performance.md).
    """
    out = []
    now = timezone.now()
    with transaction.atomic():
        jobs = (
            Job.objects.select_for_update()
            .select_related("deployment", "node")
            .filter(node_id=node_id, state__in=AWAITING_DELIVERY)
        )
        for job in jobs:
            _mark_dispatched(job, now)
            if (job.uuid.hex, job.attempt) not in skip:
                out.append((job.uuid.hex, job.attempt, dispatch_envelope(job)))
    return out


def _set_dispatched(job: Job, now: datetime) -> None:
    """A queued job is on its way to its node; the caller saves it and writes the event."""
    job.transition_to(JobState.DISPATCHED, reason=f"sent to node {job.node_id}")
    job.dispatched_at = now


def _mark_dispatched(job: Job, now: datetime) -> None:
    """A job about to be sent to its node (row held by the caller): `dispatched`, and a job
    that waited for the link gets its ack deadline from now."""
    changed = job.state == JobState.QUEUED or job.waiting_since is not None
    if job.state == JobState.QUEUED:
        _set_dispatched(job, now)
        _event(job, JobState.DISPATCHED)
    if job.waiting_since is not None:
        job.waiting_since = None
        _arm_for_dispatch(job, now)
    if changed:
        _save(job)


def pending_cancels(node_id: int) -> list[tuple[str, dict]]:
    """(job id, signed cancel) for every cancel the node has not acknowledged, whatever the job's
    state: a job the coordinator gave up on may still be queued on the node."""
    jobs = Job.objects.select_related("node").filter(
        node_id=node_id, cancel_requested_at__isnull=False, cancel_acked_at__isnull=True
    )
    return [(job.uuid.hex, cancel_envelope(job)) for job in jobs]


def pending_deliveries(
    node_id: int, *, skip: frozenset[tuple[str, int]] = frozenset()
) -> tuple[list[tuple[str, int, dict]], list[tuple[str, dict]]]:
    """pending_dispatches and pending_cancels in one call: a link asks for both at once."""
    return pending_dispatches(node_id, skip=skip), pending_cancels(node_id)


def _undelivered() -> Q:
    """Jobs with a dispatch or a cancel still to deliver to their node."""
    return Q(state__in=AWAITING_DELIVERY) | Q(
        cancel_requested_at__isnull=False, cancel_acked_at__isnull=True
    )


def nodes_with_work(node_ids: list[int]) -> set[int]:
    """Of these nodes, the ones with a dispatch or a cancel still to deliver (one query)."""
    return set(
        Job.objects.filter(_undelivered(), node_id__in=node_ids)
        .values_list("node_id", flat=True)
        .distinct()
    )


def linked_nodes_with_work(sessions: list[str]) -> set[int]:
    """nodes_with_work for the nodes on these link sessions (the link loop's catch-up poll over
    every link of its process): one query whose size does not grow with the links."""
    return set(
        Job.objects.filter(_undelivered(), links.session_q(sessions, "node__link__"))
        .values_list("node_id", flat=True)
        .distinct()
    )


def _atomic(held: dict | None):
    """The transaction of one node message: its own, or, inside a link's batch (`held` is the
    batch's job cache), the batch's one transaction."""
    return transaction.atomic() if held is None else contextlib.nullcontext()


def _job_for_node(node_id: int, job_id: str, held: dict | None = None) -> Job | None:
    """The node's job, locked; inside a batch each job is read and locked once (`held`)."""
    try:
        job_uuid = uuid.UUID(job_id)
    except ValueError:
        return None
    if held is not None and job_uuid.hex in held:
        return held[job_uuid.hex]
    job = first_or_none(
        Job.objects.select_for_update(of=("self", "deployment"))
        .select_related("deployment", "node")
        .filter(uuid=job_uuid, node_id=node_id)
    )
    if held is not None:
        held[job_uuid.hex] = job
    return job


def _arm_for_run(job: Job) -> None:
    """The node holds the job now: it may take its whole timeout to finish."""
    job.deadline = timezone.now() + timedelta(seconds=job.timeout + settings.ZOS_JOB_ACK_TIMEOUT)


def job_accepted(*, node_id: int, job_id: str, attempt: int, held: dict | None = None) -> None:
    with _atomic(held):
        job = _job_for_node(node_id, job_id, held)
        if (
            job is None
            or job.attempt != attempt
            or job.state
            not in (
                JobState.QUEUED,
                JobState.DISPATCHED,
            )
        ):
            return
        job.transition_to(JobState.ACCEPTED, reason=f"node {node_id} queued it")
        _arm_for_run(job)
        _save(job)
        _event(job, JobState.ACCEPTED)


def job_rejected(
    *, node_id: int, job_id: str, attempt: int, code: str, message: str, held: dict | None = None
) -> None:
    """The node refused the dispatch after its own checks: that is final for this job (and a
    cancel asked for it is then done: the job never ran there)."""
    with _atomic(held):
        job = _job_for_node(node_id, job_id, held)
        if job is None or job.attempt != attempt or job.state in FINAL_STATES:
            return
        cancelling = job.state == JobState.CANCELLING
        _end_job(
            job,
            JobState.CANCELLED if cancelling else JobState.FAILED,
            reason=f"node {node_id} refused the job: {code}: {message}",
        )


def _node_time(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return timezone.now()


def record_node_event(*, node_id: int, message: dict, held: dict | None = None) -> None:
    """Store a node's outbox event once and move the job forward; events about jobs the node does
    not hold change nothing (but are acknowledged, so the node can trim them)."""
    stream_id = str(message.get("id", ""))[:40]
    status = str(message.get("status", ""))[:16]
    if not stream_id or not status:
        return
    with _atomic(held):
        job = _job_for_node(node_id, str(message.get("job_id", "")), held)
        if job is None:
            return
        attempt = message.get("attempt")
        # No attempt the coordinator has not started yet (a 2**70 one reached the database
        # driver and ended the node's link with OverflowError).
        if not isinstance(attempt, int) or not 1 <= attempt <= job.attempt:
            return
        if JobEvent.objects.filter(job=job, attempt=attempt, stream_id=stream_id).exists():
            return
        fields = {
            "log": str(message.get("log") or "")[:MAX_LOG_LINE],
            "error": str(message.get("error") or "")[:MAX_LOG_LINE],
            "result": message.get("result"),
        }
        # Only the job's current node gets here, so its word on the job counts whatever attempt
        # it runs: a re-sent dispatch of a job it already has is not queued twice there.
        new_state = NODE_EVENT_STATES.get(status)
        if job.state in FINAL_STATES and new_state == job.state:
            # The outcome told again (a node answers a re-sent dispatch of a job it finished
            # with its outcome, under the new attempt): already in the history, not kept twice.
            return
        if job.state in FINAL_STATES:
            # Decided once: the node's word is kept, as history that cannot be read as the outcome.
            reported = f"node {node_id} reported {status} after the job ended {job.state}"
            fields["log"] = f"{reported}: {fields['log']}" if fields["log"] else reported
            status = LATE
        elif new_state in FINAL_STATES and can_transition(job.state, new_state):
            _end_job(
                job, new_state, reason=fields["error"], result=fields["result"], announce=False
            )
        elif new_state and can_transition(job.state, new_state):
            entering_run = new_state == JobState.RUNNING and job.state != JobState.ACCEPTED
            if entering_run and can_transition(job.state, JobState.ACCEPTED):
                # The node's outbox can overtake its `accepted` reply on the link (a runner
                # started at once): a running job was accepted, so its history says so, once;
                # the late reply then finds the job past it and changes nothing.
                job.transition_to(JobState.ACCEPTED, reason=f"node {node_id} is running it")
                _event(job, JobState.ACCEPTED)
            job.transition_to(new_state, reason=f"node {node_id} reported {status}")
            if entering_run:  # the run gets its whole time, from now
                _arm_for_run(job)
            _save(job)
        if new_state in FINAL_STATES and job.cancel_requested_at and not job.cancel_acked_at:
            job.cancel_acked_at = timezone.now()  # the job ended there: nothing is left to cancel
            job.save(update_fields=["cancel_acked_at", "updated"])
        event = JobEvent.objects.create(
            job=job,
            attempt=attempt,
            status=status,
            stream_id=stream_id,
            ts=_node_time(message.get("ts")),
            **fields,
        )
        _push(job, event)


def cancel_deployment(*, deployment: Deployment, by: str = "the owner") -> Deployment:
    """Cancel at once a job no node was ever sent; otherwise store the cancel and send it.

    `by` says who asked, in the reason the owner reads ("the owner", or an operator's name).

    The job is then `cancelling` until the node answers: its final event decides the end (it may
    have finished before it heard of the cancel). A node that never answers leaves the job
    `cancelled` at its cancel deadline (expire_cancels); the cancel is still sent at every later
    `welcome` until the node acknowledges it. Asking again while cancelling changes nothing.
    """
    with transaction.atomic():
        job = (
            Job.objects.select_for_update().select_related("deployment").get(deployment=deployment)
        )
        if job.state in FINAL_STATES:
            raise DeploymentRejected(
                "already_finished", f"the deployment already ended {job.state}", http_status=409
            )
        if job.state == JobState.CANCELLING:
            return job.deployment
        now = timezone.now()
        job.waiting_since = None
        job.next_attempt_at = None
        if job.dispatched_at is None:
            _end_job(
                job,
                JobState.CANCELLED,
                reason=f"cancelled by {by} before any node had it",
                as_error=False,
                now=now,
            )
            return job.deployment
        job.transition_to(JobState.CANCELLING, reason=f"cancelled by {by}")
        job.cancel_requested_at = now
        job.cancel_acked_at = None
        # The longest the node could still run it, had it started just now.
        job.deadline = now + timedelta(seconds=job.timeout + settings.ZOS_JOB_ACK_TIMEOUT)
        _save(job)
        _event(
            job,
            JobState.CANCELLING,
            log=f"cancel requested; node {job.node_id} will stop the job when it hears of it",
        )
        notify.cancel_on_node(job.node_id, job.uuid.hex)
    return job.deployment


def cancel_acknowledged(
    *, node_id: int, job_id: str, node_state: str | None, held: dict | None = None
) -> None:
    """The node stored the cancel (its runner stops the job and reports how it ended), or it
    never had the job (`node_state` None): then the cancel is complete here and now."""
    with _atomic(held):
        job = _job_for_node(node_id, job_id, held)
        if job is None or job.cancel_requested_at is None:
            return
        now = timezone.now()
        job.cancel_acked_at = job.cancel_acked_at or now
        if job.state == JobState.CANCELLING and node_state is None:
            _end_job(
                job,
                JobState.CANCELLED,
                reason=f"node {node_id} never had the job",
                as_error=False,
                now=now,
            )
            return
        job.save(update_fields=["cancel_acked_at", "updated"])


@dataclass
class LinkReplies:
    """What a link sends back after a batch of its node's messages, and what it may forget."""

    dispatches: list[tuple[str, int, dict]] = field(default_factory=list)
    cancels: list[tuple[str, dict]] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)
    # Dispatches the node answered (accepted, refused or ended) and cancels it acknowledged:
    # the link stops remembering it sent them.
    settled: list[tuple[str, int | None]] = field(default_factory=list)
    cancels_settled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _dispatch_job(node_id: int, job_id: str, attempt: int, held: dict) -> dict | None:
    """The signed dispatch of one job pushed to its link, or None when it is no longer the
    node's to receive (cancelled, moved, or a newer attempt started meanwhile)."""
    job = _job_for_node(node_id, job_id, held)
    if job is None or job.attempt != attempt or job.state not in AWAITING_DELIVERY:
        return None
    _mark_dispatched(job, timezone.now())
    return dispatch_envelope(job)


def _cancel_for_node(node_id: int, job_id: str) -> dict | None:
    job = Job.objects.select_related("node").filter(uuid=job_id, node_id=node_id).first()
    return cancel_envelope(job) if job else None


def _handle_link_message(
    node_id: int, kind: str, content: dict, held: dict, replies: LinkReplies, sent: frozenset
) -> None:
    """One message of a batch; each appends to `replies` only once its work is done, so a
    message that raises leaves nothing behind."""
    job_id = str(content.get("job_id", ""))
    attempt = content.get("attempt")
    if not isinstance(attempt, int):  # a node's message may carry anything; a push never does
        attempt = None
    if kind == "dispatch":
        envelope = _dispatch_job(node_id, job_id, attempt, held)
        if envelope is not None:
            replies.dispatches.append((job_id, attempt, envelope))
    elif kind == "cancel":
        _save_batch()
        envelope = _cancel_for_node(node_id, job_id)
        if envelope is not None:
            replies.cancels.append((job_id, envelope))
    elif kind == "pending":
        # It reads and changes jobs by itself: the batch's changes go first, and what the batch
        # held is read again after it.
        _save_batch()
        dispatches, cancels = pending_deliveries(node_id, skip=sent)
        _save_batch()
        held.clear()
        replies.dispatches.extend(dispatches)
        replies.cancels.extend(cancels)
    elif kind == "accepted":
        job_accepted(node_id=node_id, job_id=job_id, attempt=attempt, held=held)
        replies.settled.append((job_id, attempt))
    elif kind == "rejected":
        job_rejected(
            node_id=node_id,
            job_id=job_id,
            attempt=attempt,
            code=str(content.get("error", "rejected"))[:64],
            message=str(content.get("message", ""))[:1000],
            held=held,
        )
        replies.settled.append((job_id, attempt))
    elif kind == "event":
        record_node_event(node_id=node_id, message=content, held=held)
        if str(content.get("status", ""))[:16] in NODE_FINAL_STATES:
            replies.settled.append((job_id, attempt))
        if content.get("id"):
            replies.acks.append(str(content["id"]))
    elif kind == "cancel_ack":
        state = content.get("state")
        cancel_acknowledged(
            node_id=node_id,
            job_id=job_id,
            node_state=str(state)[:16] if state else None,
            held=held,
        )
        replies.cancels_settled.append(job_id)


def handle_link_messages(
    *, node_id: int, messages: list[tuple[str, dict]], sent: frozenset = frozenset()
) -> LinkReplies:
    """Everything one node link gathered while its previous call ran, in ONE transaction.

    The messages are the node's (`accepted`, `rejected`, `event`, `cancel_ack`) and the
    coordinator's pushes to the link (`dispatch` of a job, `cancel` of a job, `pending`: all
    undelivered work, skipping the `sent` (job id, attempt) pairs), handled in the order they
    came. On PostgreSQL each transaction costs several round trips, and one job brings about
    four messages: a burst's `accepted`, `running` and `succeeded` of many jobs now share one
    commit and each job is read and locked once (docs/performance.md).

    Should any message raise, the batch is rolled back and handled again one message per
    transaction, so one bad message costs only itself (its kind is in `failed`).
    """
    token = _unsaved.set({})
    try:
        with transaction.atomic():
            replies = LinkReplies()
            held: dict = {}
            for kind, content in messages:
                _handle_link_message(node_id, kind, content, held, replies, sent)
            _save_batch()
            return replies
    except (OperationalError, InterfaceError):
        raise  # the database is down: the link closes and the node sends again (consumers.py)
    except Exception:
        if len(messages) == 1:
            log.exception("node %s: %s message failed: %.300r", node_id, *messages[0])
            return LinkReplies(failed=[messages[0][0]])
    finally:
        _unsaved.reset(token)
    replies = LinkReplies()
    for kind, content in messages:
        try:
            with transaction.atomic():
                _handle_link_message(node_id, kind, content, {}, replies, sent)
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            log.exception("node %s: %s message failed: %.300r", node_id, kind, content)
            replies.failed.append(kind)
    return replies


def expire_cancels(now: datetime | None = None) -> int:
    """A cancelled job whose node did not answer by the cancel deadline ends `cancelled`; it is
    never retried, and the cancel stays due for the node's next `welcome`."""
    now = now or timezone.now()
    with transaction.atomic():
        jobs = list(_claim(Job.objects.filter(state=JobState.CANCELLING, deadline__lt=now)))
        for job in jobs:
            _end_job(
                job,
                JobState.CANCELLED,
                reason=f"node {job.node_id} did not confirm the cancel in time",
                now=now,
            )
    return len(jobs)


def _retry_delay(attempt: int) -> timedelta:
    return timedelta(seconds=min(300, settings.ZOS_RETRY_BASE * 2 ** (attempt - 1)))


def schedule_retry(job: Job, *, reason: str, now: datetime | None = None) -> None:
    """Retry later with backoff, or fail for good once attempts are used up (row held by caller)."""
    now = now or timezone.now()
    if job.attempt >= job.max_attempts:
        _end_job(
            job,
            JobState.FAILED,
            reason=f"gave up after {job.attempt} attempts; last: {reason}",
            now=now,
        )
        return
    job.transition_to(JobState.RETRYING, reason=reason)
    job.error = reason
    job.deadline = None
    job.next_attempt_at = now + _retry_delay(job.attempt)
    _save(job)
    _event(job, JobState.RETRYING, error=reason)


def retry_deployment(*, deployment: Deployment, by: str) -> Deployment:
    """An operator's retry of a job that is stuck: a new attempt starts now, as a failed
    delivery's would (same job id, attempt + 1, a farm-targeted job may land on another node).

    Only a job still in flight can be retried: a final state is decided once (the owner submits
    again), and a job being cancelled is on its way out. A job on its last attempt fails with
    "gave up", exactly as its next missed deadline would have made it.
    """
    with transaction.atomic():
        job = (
            Job.objects.select_for_update().select_related("deployment").get(deployment=deployment)
        )
        if job.state in FINAL_STATES or job.state == JobState.CANCELLING:
            raise DeploymentRejected(
                "not_retryable",
                f"deployment {deployment.pk} is {job.state}: only a job still queued, on a node "
                "or waiting to retry can be retried",
                http_status=409,
            )
        now = timezone.now()
        if job.state != JobState.RETRYING:
            schedule_retry(job, reason=f"retried by {by}", now=now)
        if job.state == JobState.RETRYING:
            job.next_attempt_at = now
            _save(job)
    start_due_retries(now)
    deployment.refresh_from_db()
    return deployment


def _claim(queryset):
    """Lock only the job rows: another worker skips them, and nodes and deployments stay free
    (PostgreSQL also refuses to lock the nullable side of the outer joins select_related makes)."""
    return queryset.select_for_update(skip_locked=True, of=("self",)).select_related(
        "deployment", "node"
    )


def expire_deadlines(now: datetime | None = None) -> int:
    """Retry jobs their node did not answer for; but a job not yet delivered to a node whose
    link is down was never the node's fault to miss: it waits (or a farm job moves) instead."""
    now = now or timezone.now()
    with transaction.atomic():
        jobs = list(_claim(Job.objects.filter(state__in=ACTIVE_STATES, deadline__lt=now)))
        live = links.live_node_ids({job.node_id for job in jobs})
        for job in jobs:
            if job.state in AWAITING_DELIVERY and job.node_id not in live:
                _hold_for_link(job, now)
            else:
                schedule_retry(
                    job, reason=f"no answer from node {job.node_id} while {job.state}", now=now
                )
    return len(jobs)


def _fail_if_expired(job: Job, now: datetime, *, when: str) -> bool:
    """End the job failed if the user's envelope has expired (no node may run it any more);
    `when` says what the job was waiting for. True if it ended."""
    if job.deployment.expires_at > now:
        return False
    _end_job(job, JobState.FAILED, reason=f"the envelope expired {when}", now=now)
    return True


def _hold_for_link(job: Job, now: datetime) -> None:
    """A job its node's dead link kept from delivery: fail it if its envelope expired, move it if
    its farm has a node with a live link, else keep waiting (row held by caller)."""
    deployment = job.deployment
    if _fail_if_expired(job, now, when=f"while waiting for node {job.node_id} to reconnect"):
        return
    if deployment.target_farm_id:
        node = pick_farm_node(
            deployment.target_farm, deployment.resources, exclude=job.node_id, live_only=True
        )
        if node is not None:
            # Never delivered, so no attempt was spent; events from the old node are ignored.
            _event(
                job, job.state, log=f"node {job.node_id}'s link is down; moved to node {node.pk}"
            )
            job.node = node
            job.waiting_since = None
            _arm_for_dispatch(job, now)
            _save(job)
            notify.dispatch_on_node(node.pk, job.uuid.hex, job.attempt)
            return
    _wait_for_link(job, now)
    _save(job)


def reschedule_from_offline_nodes() -> int:
    """Farm-targeted jobs on a node that went offline move on at once instead of waiting."""
    with transaction.atomic():
        jobs = list(
            _claim(
                Job.objects.filter(
                    state__in=ACTIVE_STATES,
                    deployment__target_farm__isnull=False,
                    node__status=NodeStatus.OFFLINE,
                )
            )
        )
        for job in jobs:
            schedule_retry(job, reason=f"node {job.node_id} went offline")
    return len(jobs)


def move_jobs_off_drained_node(node_id: int) -> int:
    """Farm-targeted jobs the drained node has not been sent yet (queued, or retrying) move to
    another online node of their farm with room, spending no attempt; returns how many moved.

    Jobs the node already holds stay and finish there, as its workloads do. A job whose farm has
    no other node that fits stays too (drained means no new work, not stopping work).
    """
    now = timezone.now()
    moved = 0
    with transaction.atomic():
        jobs = _claim(
            Job.objects.filter(
                node_id=node_id,
                state__in=(JobState.QUEUED, JobState.RETRYING),
                deployment__target_farm__isnull=False,
            )
        )
        for job in jobs:
            deployment = job.deployment
            node = pick_farm_node(deployment.target_farm, deployment.resources, exclude=node_id)
            if node is None:
                continue
            message = f"node {node_id} is drained; moved to node {node.pk}"
            job.node = node
            if job.state == JobState.QUEUED:
                job.waiting_since = None
                _queue(job, now, message=message)
            else:  # retrying: its next attempt starts on the new node
                _save(job)
                _event(job, job.state, log=message)
            moved += 1
    return moved


def start_due_retries(now: datetime | None = None) -> int:
    now = now or timezone.now()
    with transaction.atomic():
        jobs = list(_claim(Job.objects.filter(state=JobState.RETRYING, next_attempt_at__lte=now)))
        for job in jobs:
            deployment = job.deployment
            if _fail_if_expired(job, now, when=f"before a retry could start; last: {job.error}"):
                continue
            if deployment.target_farm_id:
                node = pick_farm_node(deployment.target_farm, deployment.resources) or job.node
            else:
                node = job.node
            job.node = node
            job.attempt += 1
            job.transition_to(JobState.QUEUED, reason=f"attempt {job.attempt}")
            _queue(job, now, message=f"attempt {job.attempt} queued for node {node.pk}")
    return len(jobs)


def coordinator_tick() -> dict[str, int]:
    """One pass of the coordinator worker."""
    return {
        "expired": expire_deadlines(),
        "rescheduled": reschedule_from_offline_nodes(),
        "retried": start_due_retries(),
        "cancelled": expire_cancels(),
    }
