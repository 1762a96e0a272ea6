"""Attempts visible in the CLI: a job that the node restarts and the coordinator retries, recorded
through the coordinator's own services, read back by `zos logs` over real HTTP.

The contract is the event data: status `restarted` (with a sentence in `log`) from the node, and
the `attempt` number the coordinator bumps when it retries. The CLI marks both with a boundary.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from coordinator import services
from coordinator.models import Job
from tests.cli.helpers import isolated_env, run
from tests.conftest import make_farm
from tests.coordinator.conftest import deployment_payload, make_online_node, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

RESTART = "restarted on the node: runner 4711 died mid-job (run 2)"


def _node_event(node, job: Job, seq: int, status: str, **fields) -> None:
    message = {
        "id": f"{seq}-0",
        "job_id": job.uuid.hex,
        "attempt": job.attempt,
        "status": status,
        "ts": timezone.now().timestamp(),
        **fields,
    }
    services.record_node_event(node_id=node.pk, message=message)


def _dispatched_and_accepted(node, job: Job) -> Job:
    services.pending_dispatches(node.pk)
    services.job_accepted(node_id=node.pk, job_id=job.uuid.hex, attempt=job.attempt)
    job.refresh_from_db()
    return job


def test_logs_mark_a_restart_on_the_node_and_a_retry_by_the_coordinator(live_server, tmp_path):
    alice, online_node = make_tenant("alice"), make_online_node(make_farm("farm-a"))
    response = alice.submit(deployment_payload(target={"node": online_node.pk}))
    assert response.status_code == 201, response.json()
    deployment = response.json()["id"]
    job = _dispatched_and_accepted(online_node, Job.objects.get(deployment_id=deployment))

    _node_event(online_node, job, 1, "running", log="step 1")
    _node_event(online_node, job, 2, "restarted", log=RESTART)
    _node_event(online_node, job, 3, "running", log="step 1")
    # The node then goes silent: the coordinator's deadline check retries the job.
    job.refresh_from_db()
    services.expire_deadlines(now=job.deadline + timedelta(seconds=1))
    job.refresh_from_db()
    services.start_due_retries(now=job.next_attempt_at + timedelta(seconds=1))
    job = _dispatched_and_accepted(online_node, Job.objects.get(pk=job.pk))
    assert job.attempt == 2
    _node_event(online_node, job, 1, "running", log="step 1")
    _node_event(online_node, job, 2, "succeeded", result=42)

    env = isolated_env(tmp_path, ZOS_TOKEN=Token.objects.create(user=alice.user).key)
    logs = run(env, "--url", live_server.url, "logs", str(deployment))
    assert logs.code == 0, logs.err
    lines = [line.split("] ", 1)[1] for line in logs.out.splitlines()]
    reason = f"no answer from node {online_node.pk} while running"
    assert lines == [
        "queued       queued for node " + str(online_node.pk),
        "dispatched",
        "accepted",
        "running      step 1",
        f"── {RESTART} ──",
        "running      step 1",
        "retrying",
        f"  ! {reason}",
        f"── attempt 2 (retried by the coordinator: {reason}) ──",
        f"queued       attempt 2 queued for node {online_node.pk}",
        "dispatched",
        "accepted",
        "running      step 1",
        "succeeded",
    ], logs.out

    followed = run(env, "--url", live_server.url, "logs", str(deployment), "-f", "--no-live")
    assert followed.code == 0, followed.err
    assert f"── {RESTART} ──" in followed.out
    assert "── attempt 2 (retried by the coordinator:" in followed.out
