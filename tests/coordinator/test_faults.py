"""What the coordinator does when a node cannot hear it: durable cancels, one final state, jobs
that wait for a node's link instead of spending attempts, and links that pings declare down."""

import json
import logging
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from coordinator import links, services
from coordinator.choices import JobState
from coordinator.models import Job, NodeLink
from coordinator.states import FINAL_STATES, JOB_TRANSITIONS, InvalidJobTransition
from signing.keys import b64decode
from tests.conftest import make_farm
from tests.coordinator.conftest import deployment_payload, make_online_node
from tests.coordinator.test_jobs import states, submit
from tests.coordinator.test_node_link import connect_node


def test_the_transition_table_is_complete_and_final_states_are_final():
    assert set(JOB_TRANSITIONS) == set(JobState.values)
    assert all(not JOB_TRANSITIONS[state] for state in FINAL_STATES)
    # A cancel asked for waits for the node's word or its deadline, and never goes back to work.
    assert JOB_TRANSITIONS[JobState.CANCELLING] == FINAL_STATES


def test_a_transition_is_checked_logged_and_a_final_state_closes_the_books(
    alice, online_node, caplog
):
    job = submit(alice, {"node": online_node.pk})
    assert job.deadline is not None and job.finished_at is None
    caplog.set_level(logging.INFO, logger="coordinator.models")
    job.transition_to(JobState.FAILED, reason="the disk is full")
    assert job.finished_at is not None and job.deadline is None
    assert job.deployment.status == JobState.FAILED
    assert "dispatched -> failed: the disk is full" in caplog.text
    with pytest.raises(InvalidJobTransition):
        job.transition_to(JobState.RUNNING)


def _event(job: Job, stream_id: str, status: str, **fields) -> None:
    message = {"id": stream_id, "job_id": job.uuid.hex, "attempt": job.attempt, "status": status}
    services.record_node_event(node_id=job.node_id, message={**message, **fields})


def _running(alice, node) -> Job:
    job = submit(alice, {"node": node.pk})
    services.pending_dispatches(node.pk)
    services.job_accepted(node_id=node.pk, job_id=job.uuid.hex, attempt=1)
    _event(job, "1-0", "running")
    job.refresh_from_db()
    return job


def _cancel(tenant, job: Job) -> dict:
    response = tenant.api.post(f"/api/v1/deployments/{job.deployment_id}/cancel")
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.mark.django_db
class TestDurableCancel:
    def test_a_job_no_node_was_sent_is_cancelled_at_once(self, alice):
        node = make_online_node(make_farm_for(alice), linked=False)
        job = submit(alice, {"node": node.pk})
        assert _cancel(alice, job)["status"] == "cancelled"
        assert services.pending_cancels(node.pk) == []  # nothing for the node to hear

    def test_a_job_dispatched_on_submit_is_cancelled_through_its_node(self, alice, online_node):
        # Sent with the submit's push: the node may have it, so only its word ends the job.
        job = submit(alice, {"node": online_node.pk})
        assert _cancel(alice, job)["status"] == "cancelling"
        assert [j for j, _ in services.pending_cancels(online_node.pk)] == [job.uuid.hex]
        services.cancel_acknowledged(node_id=online_node.pk, job_id=job.uuid.hex, node_state=None)
        job.refresh_from_db()
        assert job.state == "cancelled"

    def test_a_running_job_is_cancel_requested_until_the_node_says_how_it_ended(
        self, alice, online_node
    ):
        job = _running(alice, online_node)
        deployment = _cancel(alice, job)
        assert deployment["status"] == "cancelling"
        assert deployment["detail"] == (
            "cancel requested; the node will stop the job when it hears of it"
        )
        assert deployment["job"]["cancel_requested_at"]
        assert _cancel(alice, job)["status"] == "cancelling"  # asking again changes nothing
        # Not acknowledged: due again at every welcome.
        assert [c[0] for c in services.pending_cancels(online_node.pk)] == [job.uuid.hex]
        assert [c[0] for c in services.pending_cancels(online_node.pk)] == [job.uuid.hex]
        services.cancel_acknowledged(
            node_id=online_node.pk, job_id=job.uuid.hex, node_state="running"
        )
        assert services.pending_cancels(online_node.pk) == []
        job.refresh_from_db()
        assert job.state == "cancelling"  # the node heard it; its runner still has to stop
        _event(job, "2-0", "cancelled", error="cancelled while running")
        job.refresh_from_db()
        assert job.state == "cancelled" and job.deployment.status == "cancelled"

    def test_a_job_that_ended_before_the_node_heard_of_the_cancel_keeps_its_true_end(
        self, alice, online_node
    ):
        job = _running(alice, online_node)
        _cancel(alice, job)
        _event(job, "2-0", "succeeded", result=42)
        job.refresh_from_db()
        assert (job.state, job.result) == ("succeeded", 42)
        assert job.cancel_acked_at is not None  # nothing left to cancel: stop re-sending
        assert services.pending_cancels(online_node.pk) == []

    def test_a_node_that_never_had_the_job_completes_the_cancel(self, alice, online_node):
        job = submit(alice, {"node": online_node.pk})
        services.pending_dispatches(online_node.pk)  # sent, but lost with the link
        _cancel(alice, job)
        services.cancel_acknowledged(node_id=online_node.pk, job_id=job.uuid.hex, node_state=None)
        job.refresh_from_db()
        assert job.state == "cancelled"
        assert services.pending_dispatches(online_node.pk) == []  # and is never dispatched again

    def test_a_node_that_never_answers_leaves_the_job_cancelled_not_retried(
        self, alice, online_node
    ):
        job = _running(alice, online_node)
        _cancel(alice, job)
        job.refresh_from_db()
        later = job.deadline + timedelta(seconds=1)
        assert services.expire_deadlines(later) == 0
        assert services.expire_cancels(later) == 1
        assert services.start_due_retries(later) == 0
        job.refresh_from_db()
        assert (job.state, job.attempt) == ("cancelled", 1)
        assert "did not confirm the cancel" in job.error
        # The cancel is still owed to the node: a job may sit in its queue.
        assert [c[0] for c in services.pending_cancels(online_node.pk)] == [job.uuid.hex]


@pytest.mark.django_db
def test_an_outcome_the_node_reports_again_after_a_lost_link_is_stored_once(alice, online_node):
    """A dispatch re-sent on reconnect (the node's `accepted` died with the old link) reaches a
    node that already finished the job: it tells the same end again, under a new outbox id."""
    job = _running(alice, online_node)
    _event(job, "2-0", "succeeded", result=42)
    _event(job, "5-0", "succeeded", result=42)
    job.refresh_from_db()
    statuses = [e.status for e in job.events.order_by("id")]
    assert statuses[-1] == "succeeded" and statuses.count("succeeded") == 1, statuses
    assert "late" not in statuses
    # A different word after the end is still kept, as history.
    _event(job, "6-0", "failed", error="disk full")
    assert [e.status for e in job.events.order_by("id")][-1] == "late"


@pytest.mark.django_db
def test_events_after_the_final_state_are_history_that_cannot_contradict_it(alice, online_node):
    job = _running(alice, online_node)
    _cancel(alice, job)
    job.refresh_from_db()
    services.expire_cancels(job.deadline + timedelta(seconds=1))
    _event(job, "2-0", "running", log="still going")
    _event(job, "3-0", "succeeded", result=1)
    _event(job, "3-0", "succeeded", result=1)  # re-sent: stored once
    job.refresh_from_db()
    assert job.state == "cancelled" and job.result is None
    assert job.cancel_acked_at is not None  # its end was reported: no cancel is owed any more
    events = alice.api.get(f"/api/v1/deployments/{job.deployment_id}/events").json()
    statuses = [e["status"] for e in events["results"]]
    assert events["status"] == "cancelled"
    assert "succeeded" not in statuses and statuses[-2:] == ["late", "late"]
    assert events["results"][-1]["log"] == (
        f"node {online_node.pk} reported succeeded after the job ended cancelled"
    )
    assert events["results"][-2]["log"].endswith(": still going")


@pytest.mark.django_db
class TestWaitingForTheLink:
    def test_a_deployment_to_a_node_whose_link_is_down_waits_without_spending_attempts(
        self, alice, settings
    ):
        node = make_online_node(make_farm_for(alice), linked=False)
        response = alice.submit(deployment_payload_for(node))
        assert response.status_code == 201
        assert response.json()["detail"] == f"waiting for node {node.pk} to reconnect"
        job = Job.objects.get(deployment_id=response.json()["id"])
        later = timezone.now()
        for _ in range(3):  # deadlines pass, the link stays down
            later += timedelta(seconds=settings.ZOS_JOB_ACK_TIMEOUT + 1)
            services.expire_deadlines(later)
            services.start_due_retries(later)
        job.refresh_from_db()
        assert (job.state, job.attempt) == ("queued", 1)
        assert states(job) == ["queued", "waiting"]  # said once
        links.link_up(node.pk, "back")
        [(job_id, attempt, _)] = services.pending_dispatches(node.pk)  # what welcome sends
        job.refresh_from_db()
        assert (job_id, attempt, job.state, job.waiting_since) == (
            job.uuid.hex,
            1,
            "dispatched",
            None,
        )
        assert job.deadline > timezone.now()

    def test_a_dispatch_lost_with_the_link_waits_instead_of_retrying(self, alice, online_node):
        job = submit(alice, {"node": online_node.pk})
        services.pending_dispatches(online_node.pk)
        session = NodeLink.objects.get(node=online_node).session
        assert links.link_lost(online_node.pk, session, "no answer to pings for 10s")
        job.refresh_from_db()
        assert services.expire_deadlines(job.deadline + timedelta(seconds=1)) == 1
        job.refresh_from_db()
        assert (job.state, job.attempt) == ("dispatched", 1)
        assert job.waiting_since is not None

    def test_a_job_still_waiting_when_its_envelope_expires_fails_saying_so(self, alice):
        node = make_online_node(make_farm_for(alice), linked=False)
        response = alice.submit(deployment_payload_for(node))
        job = Job.objects.select_related("deployment").get(deployment_id=response.json()["id"])
        services.expire_deadlines(job.deployment.expires_at + timedelta(seconds=1))
        job.refresh_from_db()
        assert job.state == "failed"
        assert job.error == f"the envelope expired while waiting for node {node.pk} to reconnect"

    def test_a_farm_deployment_goes_to_a_node_with_a_live_link(self, alice):
        farm = make_farm_for(alice)
        bigger_but_cut_off = make_online_node(farm, linked=False, mru=64 * 2**30)
        live = make_online_node(farm)
        response = alice.submit(deployment_payload_for(None, target={"farm": farm.pk}))
        assert response.status_code == 201
        assert response.json()["job"]["node"] == live.pk != bigger_but_cut_off.pk
        assert response.json()["detail"] == ""

    def test_a_farm_job_on_a_node_that_lost_its_link_moves_without_spending_an_attempt(self, alice):
        farm = make_farm_for(alice)
        first = make_online_node(farm, mru=64 * 2**30)
        response = alice.submit(deployment_payload_for(None, target={"farm": farm.pk}))
        job = Job.objects.get(deployment_id=response.json()["id"])
        assert job.node_id == first.pk
        services.pending_dispatches(first.pk)
        links.link_lost(first.pk, "test-session", "closed (1006)")
        second = make_online_node(farm)
        job.refresh_from_db()
        services.expire_deadlines(job.deadline + timedelta(seconds=1))
        job.refresh_from_db()
        assert (job.node_id, job.attempt) == (second.pk, 1)
        assert [d[0] for d in services.pending_dispatches(second.pk)] == [job.uuid.hex]


def make_farm_for(tenant):
    return make_farm(f"farm-of-{tenant.user.username}")


def deployment_payload_for(node, **overrides) -> dict:
    target = overrides.pop("target", None) or {"node": node.pk}
    return deployment_payload(target=target, **overrides)


@pytest.mark.django_db(transaction=True)
def test_a_cancel_is_sent_after_every_welcome_until_the_node_acknowledges_it(alice, online_node):
    job = _running(alice, online_node)

    async def session(*, ack: bool) -> list[dict]:
        link, welcome = await connect_node(online_node.signing_key)
        assert json.loads(welcome["text"])["type"] == "welcome"
        got = []
        while not await link.receive_nothing(timeout=1):
            message = await link.receive_json_from()
            if message["type"] == "cancel":
                got.append(message)
                if ack:
                    await link.send_json_to(
                        {"type": "cancel_ack", "job_id": job.uuid.hex, "state": "running"}
                    )
        await link.disconnect()
        return got

    _cancel(alice, job)  # the node is not connected: nobody hears it now
    for _ in range(2):
        [cancel] = async_to_sync(session)(ack=False)
        assert json.loads(_decode(cancel["envelope"]))["job_id"] == job.uuid.hex
    assert len(async_to_sync(session)(ack=True)) == 1
    assert async_to_sync(session)(ack=False) == []  # acknowledged: not sent again
    job.refresh_from_db()
    assert job.state == "cancelling" and job.cancel_acked_at is not None


def _decode(envelope: dict) -> bytes:
    return b64decode(envelope["payload"], what="payload")


@pytest.mark.django_db(transaction=True)
def test_a_node_that_stops_answering_pings_has_its_link_marked_down(online_node, settings):
    settings.ZOS_LINK_PING_INTERVAL = 0.2
    settings.ZOS_LINK_PING_TIMEOUT = 1.0
    settings.ZOS_LINK_POLL = 0.2

    async def scenario() -> dict:
        link, _ = await connect_node(online_node.signing_key)
        ping = await link.receive_json_from(timeout=10)
        assert ping["type"] == "ping"
        await link.send_json_to({"type": "pong", "id": ping["id"]})
        while True:  # now freeze: answer nothing more
            output = await link.receive_output(timeout=30)
            if output["type"] == "websocket.close":
                return output

    assert links.is_live(online_node.pk)
    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": 4408}
    link = NodeLink.objects.get(node=online_node)
    assert link.lost_at is not None and link.lost_reason.startswith("no answer to pings")
    assert not links.is_live(online_node.pk)
