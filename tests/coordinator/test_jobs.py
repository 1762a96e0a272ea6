"""The job lifecycle as the coordinator drives it: dispatch, node events, deadlines and retries."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from contracts.payload_types import DISPATCH_TYPE
from coordinator import services
from coordinator.keys import coordinator_signing_key
from coordinator.models import Job, JobEvent
from signing.dsse import verify_envelope
from signing.keys import public_key_hex
from tests.conftest import make_farm
from tests.coordinator.conftest import deployment_payload, make_online_node

pytestmark = pytest.mark.django_db


def submit(tenant, target: dict) -> Job:
    response = tenant.submit(deployment_payload(target=target))
    assert response.status_code == 201, response.json()
    return Job.objects.select_related("deployment").get(deployment_id=response.json()["id"])


def states(job: Job) -> list[str]:
    return list(job.events.order_by("id").values_list("status", flat=True))


def test_dispatch_is_signed_by_the_coordinator_for_that_node(alice, online_node):
    job = submit(alice, {"node": online_node.pk})
    [(job_id, attempt, envelope)] = services.pending_dispatches(online_node.pk)
    payload, _ = verify_envelope(envelope, DISPATCH_TYPE, [coordinator_signing_key().verify_key])
    dispatch = json.loads(payload)
    assert (job_id, attempt) == (job.uuid.hex, 1)
    assert dispatch["node"] == online_node.public_key
    assert dispatch["owner"] == alice.user.pk
    assert dispatch["deployment"] == job.deployment.envelope
    job.refresh_from_db()
    assert job.state == "dispatched"
    # Not acknowledged yet: it is offered again (e.g. after a reconnect), not duplicated.
    assert [d[0] for d in services.pending_dispatches(online_node.pk)] == [job.uuid.hex]
    assert services.pending_dispatches(online_node.pk + 1000) == []


def test_node_events_drive_the_job_to_success_once(alice, online_node):
    job = submit(alice, {"node": online_node.pk})
    services.pending_dispatches(online_node.pk)
    services.job_accepted(node_id=online_node.pk, job_id=job.uuid.hex, attempt=1)
    events = [
        {"id": "1-0", "job_id": job.uuid.hex, "attempt": 1, "status": "running", "ts": 1.0},
        {"id": "2-0", "job_id": job.uuid.hex, "attempt": 1, "status": "running", "log": "hi"},
        {"id": "3-0", "job_id": job.uuid.hex, "attempt": 1, "status": "succeeded", "result": 42},
    ]
    for event in events + events:  # a reconnecting node re-sends what was not acknowledged
        services.record_node_event(node_id=online_node.pk, message=event)
    job.refresh_from_db()
    assert job.state == "succeeded"
    assert job.result == 42
    assert job.deployment.status == "succeeded"
    assert states(job) == ["queued", "dispatched", "accepted", "running", "running", "succeeded"]
    assert list(job.events.exclude(log="").values_list("log", flat=True)) == [
        "queued for node " + str(online_node.pk),
        "hi",
    ]


def test_a_run_reported_before_its_acceptance_still_gets_its_timeout(alice, online_node, settings):
    """The node's `accepted` and its first events travel separately; when `running` is stored
    first, the job must not expire at the short dispatch deadline while it runs."""
    settings.ZOS_JOB_ACK_TIMEOUT = 3
    job = submit(alice, {"node": online_node.pk})
    services.pending_dispatches(online_node.pk)
    running = {"id": "1-0", "job_id": job.uuid.hex, "attempt": 1, "status": "running"}
    services.record_node_event(node_id=online_node.pk, message=running)
    services.job_accepted(node_id=online_node.pk, job_id=job.uuid.hex, attempt=1)  # late
    job.refresh_from_db()
    assert job.state == "running"
    # Its history still reads queued, dispatched, accepted, running: once, whatever came first.
    assert states(job) == ["queued", "dispatched", "accepted", "running"]
    assert services.expire_deadlines(timezone.now() + timedelta(seconds=10)) == 0
    later = timezone.now() + timedelta(seconds=job.timeout + settings.ZOS_JOB_ACK_TIMEOUT + 1)
    assert services.expire_deadlines(later) == 1  # a run that never ends is still caught


def test_another_node_cannot_report_on_a_job(alice, online_node):
    intruder = make_online_node(online_node.farm)
    job = submit(alice, {"node": online_node.pk})
    services.record_node_event(
        node_id=intruder.pk,
        message={"id": "1-0", "job_id": job.uuid.hex, "attempt": 1, "status": "succeeded"},
    )
    services.job_accepted(node_id=intruder.pk, job_id=job.uuid.hex, attempt=1)
    job.refresh_from_db()
    assert job.state == "dispatched"
    assert not JobEvent.objects.filter(stream_id="1-0").exists()


def test_a_refusal_by_the_node_fails_the_job_with_its_reason(alice, online_node):
    job = submit(alice, {"node": online_node.pk})
    services.pending_dispatches(online_node.pk)
    services.job_rejected(
        node_id=online_node.pk,
        job_id=job.uuid.hex,
        attempt=1,
        code="signature_invalid",
        message="no signature verifies",
    )
    job.refresh_from_db()
    assert job.state == "failed"
    assert "signature_invalid" in job.error


def test_a_silent_node_gets_retries_with_backoff_then_the_job_fails(alice, online_node, settings):
    settings.ZOS_JOB_MAX_ATTEMPTS = 3
    job = submit(alice, {"node": online_node.pk})
    now = timezone.now()
    delays = []
    for attempt in (1, 2, 3):
        services.pending_dispatches(online_node.pk)
        now += timedelta(seconds=settings.ZOS_JOB_ACK_TIMEOUT + 1)
        assert services.expire_deadlines(now) == 1
        job.refresh_from_db()
        if attempt == 3:
            break
        assert job.state == "retrying"
        assert "no answer from node" in job.error
        delays.append((job.next_attempt_at - now).total_seconds())
        assert services.start_due_retries(now) == 0  # not due yet
        now = job.next_attempt_at
        assert services.start_due_retries(now) == 1
        job.refresh_from_db()
        assert (job.state, job.attempt) == ("dispatched", attempt + 1)
    assert job.state == "failed"
    assert job.error.startswith("gave up after 3 attempts")
    assert delays[1] == pytest.approx(2 * delays[0], rel=0.01)


def test_farm_jobs_move_off_a_node_that_went_offline(alice):
    farm = make_farm("farm-c")
    first = make_online_node(farm, mru=64 * 2**30)
    second = make_online_node(farm, mru=8 * 2**30)
    job = submit(alice, {"farm": farm.pk})
    assert job.node == first
    first.status = "offline"
    first.save()
    assert services.reschedule_from_offline_nodes() == 1
    job.refresh_from_db()
    assert job.state == "retrying"
    services.start_due_retries(job.next_attempt_at)
    job.refresh_from_db()
    assert (job.state, job.attempt, job.node) == ("dispatched", 2, second)


def test_coordinator_key_is_published_and_stable(client):
    first = client.get("/api/v1/coordinator/key").json()
    second = client.get("/api/v1/coordinator/key").json()
    assert first == second
    assert first["public_key"] == public_key_hex(coordinator_signing_key().verify_key)


@pytest.mark.django_db(transaction=True)
def test_several_workers_never_claim_the_same_job(alice, online_node, settings):
    if connection.vendor != "postgresql":
        pytest.skip("several coordinator workers need PostgreSQL (SQLite serialises writers)")
    jobs = [submit(alice, {"node": online_node.pk}) for _ in range(12)]
    services.pending_dispatches(online_node.pk)
    late = timezone.now() + timedelta(seconds=settings.ZOS_JOB_ACK_TIMEOUT + 1)
    start = threading.Barrier(4)

    def worker() -> int:
        try:
            start.wait()
            return services.expire_deadlines(late)
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        claimed = sum(pool.map(lambda _: worker(), range(4)))
    assert claimed == len(jobs)
    for job in jobs:
        assert states(job).count("retrying") == 1
