"""Scheduling around a drained node: no new deployments for it, and farm jobs it was not sent
yet move to another online node of the farm, spending no attempt (ledger/farms.py drain)."""

import pytest

from coordinator import services
from ledger import farms
from tests.conftest import make_farm
from tests.coordinator.conftest import deployment_payload, make_online_node
from tests.coordinator.test_jobs import submit

pytestmark = pytest.mark.django_db


def drain(node):
    return farms.drain(user=node.farm.owner, node=node)


def test_a_drained_node_gets_no_new_farm_deployment(alice):
    farm = make_farm("farm-d")
    roomy = make_online_node(farm, mru=64 * 2**30)  # the scheduler's first choice
    other = make_online_node(farm, mru=8 * 2**30)
    drain(roomy)
    assert submit(alice, {"farm": farm.pk}).node == other
    refused = alice.submit(deployment_payload(target={"node": roomy.pk}))
    assert refused.status_code == 409 and refused.json()["error"] == "node_drained"
    farms.undrain(user=farm.owner, node=roomy)
    assert submit(alice, {"farm": farm.pk}).node == roomy


def test_a_queued_farm_job_moves_to_another_online_node_when_its_node_is_drained(alice):
    farm = make_farm("farm-e")
    first = make_online_node(farm, linked=False, mru=64 * 2**30)  # its job waits for the link
    job = submit(alice, {"farm": farm.pk})
    assert (job.node, job.state) == (first, "queued")
    second = make_online_node(farm, mru=8 * 2**30)
    drain(first)
    job.refresh_from_db()
    assert (job.node, job.state, job.attempt) == (second, "dispatched", 1)
    assert job.events.filter(log=f"node {first.pk} is drained; moved to node {second.pk}").exists()
    # the new node's link gets it; the drained one has nothing to send
    assert [j for j, _, _ in services.pending_dispatches(first.pk)] == []
    assert [j for j, _, _ in services.pending_dispatches(second.pk)] == [job.uuid.hex]


def test_a_retrying_farm_job_moves_and_a_job_the_node_holds_stays(alice):
    farm = make_farm("farm-f")
    first = make_online_node(farm, mru=64 * 2**30)
    retrying = submit(alice, {"farm": farm.pk})
    services.schedule_retry(retrying, reason="no answer")
    held = submit(alice, {"farm": farm.pk})
    services.pending_dispatches(first.pk)  # `held` is dispatched: the node has it now
    second = make_online_node(farm, mru=8 * 2**30)
    drain(first)
    retrying.refresh_from_db()
    held.refresh_from_db()
    assert (retrying.node, retrying.state) == (second, "retrying")
    assert (held.node, held.state) == (first, "dispatched")
    services.start_due_retries(retrying.next_attempt_at)
    retrying.refresh_from_db()
    assert (retrying.node, retrying.state, retrying.attempt) == (second, "dispatched", 2)


def test_a_job_stays_when_no_other_node_of_the_farm_fits(alice):
    farm = make_farm("farm-g")
    only = make_online_node(farm, linked=False)
    job = submit(alice, {"farm": farm.pk})
    offline = make_online_node(farm)
    offline.status = "offline"
    offline.save()
    drain(only)
    job.refresh_from_db()
    assert (job.node, job.state) == (only, "queued")
