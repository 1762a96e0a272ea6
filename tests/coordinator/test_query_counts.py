"""Every coordinator list and detail endpoint answers in a fixed number of queries, however many
rows there are (STYLE.md §5: an N+1 query shows up here as a count that grows).

Each test serves one row, adds several more, and serves again with the same pinned count. The
first query of each request is the session lookup, the second the logged-in user.
"""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from coordinator import services
from coordinator.inventory import record_inventory
from coordinator.models import Deployment
from tests.coordinator.conftest import deployment_payload

pytestmark = pytest.mark.django_db

MORE = 4  # rows added between the two requests


def deploy(tenant, node, name: str) -> Deployment:
    response = tenant.submit(deployment_payload(target={"node": node.pk}, name=name))
    assert response.status_code == 201, response.json()
    return Deployment.objects.get(pk=response.json()["id"])


def deploy_more(tenant, node) -> None:
    for i in range(1, 1 + MORE):
        deploy(tenant, node, f"d{i}")


def test_deployments(alice, online_node, flat_queries):
    deploy(alice, online_node, "d0")
    one, many = flat_queries(
        lambda: alice.api.get("/api/v1/deployments"), lambda: deploy_more(alice, online_node), 4
    )
    assert (one["count"], many["count"]) == (1, 1 + MORE)
    assert all(d["job"]["state"] == "dispatched" for d in many["results"])


def test_deployment_detail(alice, online_node, flat_queries):
    deployment = deploy(alice, online_node, "d0")
    one, many = flat_queries(
        lambda: alice.api.get(f"/api/v1/deployments/{deployment.pk}"),
        lambda: deploy_more(alice, online_node),
        3,
    )
    assert one == many and many["name"] == "d0"


def test_deployment_events(alice, online_node, flat_queries):
    deployment = deploy(alice, online_node, "d0")
    job_id = deployment.job.uuid.hex
    services.pending_dispatches(online_node.pk)

    def log_lines() -> None:
        for i in range(MORE):
            message = {"id": f"{i}-0", "job_id": job_id, "attempt": 1, "status": "log"}
            services.record_node_event(node_id=online_node.pk, message={**message, "log": f"{i}"})

    one, many = flat_queries(
        lambda: alice.api.get(f"/api/v1/deployments/{deployment.pk}/events"), log_lines, 4
    )
    assert len(many["results"]) == len(one["results"]) + MORE  # queued, dispatched, the lines


def vms(owner, count: int) -> list[dict]:
    return [
        {"owner": owner.pk, "kind": "vm", "name": f"vm{i}", "state": "ready", "reserved": {}}
        for i in range(count)
    ]


def test_workloads(alice, online_node, flat_queries):
    deploy(alice, online_node, "d0")  # a node reports workloads only of owners who deployed to it
    record_inventory(online_node.pk, vms(alice.user, 1))
    one, many = flat_queries(
        lambda: alice.api.get(f"/api/v1/workloads?node={online_node.pk}&kind=vm"),
        lambda: record_inventory(online_node.pk, vms(alice.user, 1 + MORE)),
        4,
    )
    assert (one["count"], many["count"]) == (1, 1 + MORE)


def test_workload_detail(alice, online_node, flat_queries):
    deploy(alice, online_node, "d0")
    record_inventory(online_node.pk, vms(alice.user, 1))
    workload = alice.user.workloads.get()
    one, many = flat_queries(
        lambda: alice.api.get(f"/api/v1/workloads/{workload.pk}"),
        lambda: record_inventory(online_node.pk, vms(alice.user, 1 + MORE)),
        3,
    )
    assert one["id"] == many["id"] and many["name"] == "vm0"


def _statements(captured) -> list[str]:
    """Each statement as its verb and first table, savepoints left out."""
    out = []
    for query in captured.captured_queries:
        match = re.match(r'(SELECT|INSERT|UPDATE|DELETE)\b[^"]*"(\w+)"', query["sql"])
        if match:
            out.append(f"{match[1]} {match[2]}")
    return out


def test_a_submit_to_a_linked_node_costs_six_statements_after_the_login(alice, online_node):
    """A submit is the hot path of a burst, and on PostgreSQL each statement is a round trip:
    the nonce is checked by the (owner, nonce) constraint on the INSERT itself, the node's link
    liveness is read with the node, a new deployment and job are stored once each with the
    job's status, and the job is `dispatched` right there (its two events), so the link sends
    it without a transaction of its own."""
    alice.submit(deployment_payload(target={"node": online_node.pk}))
    with CaptureQueriesContext(connection) as captured:
        response = alice.submit(deployment_payload(target={"node": online_node.pk}))
    assert response.status_code == 201, response.json()
    assert _statements(captured)[2:] == [  # after the session and the user
        "SELECT ledger_userkey",
        "SELECT ledger_node",
        "INSERT coordinator_deployment",
        "INSERT coordinator_job",
        "INSERT coordinator_jobevent",
        "INSERT coordinator_jobevent",
    ]
    assert "coordinator_nodelink" in captured.captured_queries[3]["sql"]  # read with the node
