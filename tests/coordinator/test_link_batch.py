"""A node link stores what its node sent meanwhile in one transaction, keeps order, and forgets
what the node answered; a node that beats is never pinged and is declared down when it stops."""

import json
import time

import pytest
from asgiref.sync import async_to_sync
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from coordinator import links, services
from coordinator.models import Job, NodeLink
from tests.coordinator.conftest import make_online_node
from tests.coordinator.test_jobs import states, submit
from tests.coordinator.test_node_link import _payload, connect_node

pytestmark = pytest.mark.django_db


def _messages(job: Job) -> list[tuple[str, dict]]:
    about = {"job_id": job.uuid.hex, "attempt": 1}
    return [
        ("dispatch", about),
        ("accepted", about),
        ("event", {**about, "id": "1-0", "status": "running", "ts": 1.0}),
        ("event", {**about, "id": "2-0", "status": "running", "log": "hi"}),
        ("event", {**about, "id": "3-0", "status": "succeeded", "result": 42}),
    ]


def test_a_jobs_whole_life_in_one_batch_is_stored_in_order_reading_the_job_once(alice, online_node):
    job = submit(alice, {"node": online_node.pk})
    with CaptureQueriesContext(connection) as queries:
        replies = services.handle_link_messages(node_id=online_node.pk, messages=_messages(job))
    job.refresh_from_db()
    assert job.state == "succeeded" and job.result == 42
    assert states(job) == ["queued", "dispatched", "accepted", "running", "running", "succeeded"]
    [(job_id, attempt, envelope)] = replies.dispatches
    assert (job_id, attempt) == (job.uuid.hex, 1)
    assert _payload(envelope)["job_id"] == job.uuid.hex
    assert replies.acks == ["1-0", "2-0", "3-0"]
    assert replies.failed == []
    # The link may forget the dispatch: the node accepted it and the job ended.
    assert (job.uuid.hex, 1) in replies.settled
    job_reads = [q for q in queries if q["sql"].startswith('SELECT "coordinator_job"')]
    assert len(job_reads) == 1, [q["sql"] for q in job_reads]
    # Re-sent by a reconnecting node: acknowledged again, stored once.
    again = services.handle_link_messages(node_id=online_node.pk, messages=_messages(job)[1:])
    assert again.acks == ["1-0", "2-0", "3-0"] and again.dispatches == []
    assert len(states(job)) == 6


def test_a_pushed_dispatch_of_a_job_no_longer_the_nodes_is_not_sent(alice, online_node):
    # A push that names the job only (a job moved here, waiting for this link) is read first.
    node = make_online_node(online_node.farm, linked=False)
    job = submit(alice, {"node": node.pk})
    response = alice.api.post(f"/api/v1/deployments/{job.deployment_id}/cancel")
    assert response.status_code == 200
    replies = services.handle_link_messages(node_id=node.pk, messages=_messages(job)[:1])
    assert replies.dispatches == []
    job.refresh_from_db()
    assert job.state == "cancelled"


def test_one_failing_message_costs_only_itself(alice, online_node, monkeypatch):
    """A message that raises (a bug) rolls the batch back; the others are then stored one by
    one, and the link is told which kind failed."""
    job = submit(alice, {"node": online_node.pk})

    def broken(**kwargs):
        raise RuntimeError("a bug in cancel_acknowledged")

    monkeypatch.setattr(services, "cancel_acknowledged", broken)
    messages = [*_messages(job)[:3], ("cancel_ack", {"job_id": job.uuid.hex}), *_messages(job)[3:]]
    replies = services.handle_link_messages(node_id=online_node.pk, messages=messages)
    job.refresh_from_db()
    assert job.state == "succeeded"
    assert replies.acks == ["1-0", "2-0", "3-0"]
    assert replies.failed == ["cancel_ack"]
    assert states(job) == ["queued", "dispatched", "accepted", "running", "running", "succeeded"]


@pytest.mark.django_db(transaction=True)
def test_a_beating_node_is_not_pinged_and_is_declared_down_when_it_stops(online_node, settings):
    settings.ZOS_LINK_PING_INTERVAL = 0.2
    settings.ZOS_LINK_PING_TIMEOUT = 1.0
    settings.ZOS_LINK_POLL = 0.2

    async def scenario() -> tuple[dict, list[dict], dict]:
        link, welcome = await connect_node(online_node.signing_key, features=["beat", "pong"])
        heard = []
        for _ in range(5):  # beating: the link stays up, and nobody pings it
            await link.send_json_to({"type": "beat"})
            if not await link.receive_nothing(timeout=0.3):
                heard.append(await link.receive_json_from())
        while True:  # now fall silent
            output = await link.receive_output(timeout=30)
            if output["type"] == "websocket.close":
                return json.loads(welcome["text"]), heard, output

    welcome, heard, closed = async_to_sync(scenario)()
    assert welcome.pop("time") == pytest.approx(time.time(), abs=60)  # the coordinator's clock
    assert welcome == {"type": "welcome", "node": online_node.pk, "beat": 0.2}
    assert heard == []
    assert closed == {"type": "websocket.close", "code": 4408}
    link = NodeLink.objects.get(node=online_node)
    assert link.lost_at is not None and link.lost_reason.startswith("no beat for")
    assert not links.is_live(online_node.pk)


def test_a_batch_the_database_refuses_closes_the_link_and_nothing_after_it_is_stored(
    alice, online_node, monkeypatch
):
    """PostgreSQL restarting: the node's events were not stored, so the link closes (1013, try
    again) and the node sends them again on its next link; what it sends meanwhile is ignored,
    or a later event (its `succeeded`) would be stored before the refused one (a log line)."""
    if connection.vendor == "postgresql":
        pytest.skip(
            "on PostgreSQL the link's database calls run in pool threads, which do not see this "
            "test's transaction; tests/production/test_faults.py kills a real PostgreSQL instead"
        )
    job = submit(alice, {"node": online_node.pk})
    about = {"job_id": job.uuid.hex, "attempt": 1}
    handle = services.handle_link_messages
    down = {"now": True}

    def flaky(**kwargs):
        if down["now"] and any(kind == "event" for kind, _ in kwargs["messages"]):
            down["now"] = False  # back up at once: only the refused batch's link must close
            raise OperationalError("terminating connection due to administrator command")
        return handle(**kwargs)

    monkeypatch.setattr(services, "handle_link_messages", flaky)

    async def scenario() -> dict:
        link, _ = await connect_node(online_node.signing_key, features=["beat", "pong"])
        await link.send_json_to({"type": "event", **about, "id": "1-0", "status": "running"})
        while (output := await link.receive_output(timeout=10))["type"] != "websocket.close":
            pass
        # The node has not seen the close yet and sends its next event on the old link.
        await link.send_json_to({"type": "event", **about, "id": "2-0", "status": "succeeded"})
        while not await link.receive_nothing(timeout=0.5):
            await link.receive_output()  # what the link sent before (its pending dispatch)
        return output

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": 1013}
    job.refresh_from_db()
    assert job.state != "succeeded"
    assert "succeeded" not in states(job)
