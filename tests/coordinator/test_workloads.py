"""Node inventories: the coordinator's copy follows each report, owners see only their own."""

import pytest
from asgiref.sync import async_to_sync

from coordinator.inventory import record_inventory
from coordinator.models import Workload
from tests.coordinator.conftest import deployment_payload
from tests.coordinator.test_node_link import connect_node

GIB = 2**30


def vm(owner, name, state="ready", **details) -> dict:
    return {
        "owner": owner.pk,
        "kind": "vm",
        "name": name,
        "state": state,
        "reserved": {"cru": 1, "mru": 2 * GIB},
        **details,
    }


def deployed(tenant, node) -> None:
    """The tenant has a job on the node: only then may the node report workloads of theirs."""
    response = tenant.submit(deployment_payload(target={"node": node.pk}))
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_each_report_replaces_the_nodes_workloads(alice, mallory, online_node):
    deployed(alice, online_node)
    deployed(mallory, online_node)
    record_inventory(
        online_node.pk, [vm(alice.user, "web", mycelium_ip="4ab::2"), vm(mallory.user, "web")]
    )
    assert Workload.objects.count() == 2
    web = Workload.objects.get(owner=alice.user)
    assert (web.state, web.details, web.reserved["mru"]) == (
        "ready",
        {"mycelium_ip": "4ab::2"},
        2 * GIB,
    )

    record_inventory(online_node.pk, [vm(alice.user, "web", state="stopped")])
    assert list(Workload.objects.values_list("owner__username", "state")) == [("alice", "stopped")]


@pytest.mark.django_db
def test_malformed_entries_are_skipped_not_fatal(alice, online_node):
    deployed(alice, online_node)
    count = record_inventory(
        online_node.pk,
        [vm(alice.user, "ok"), {"owner": "x"}, "junk", {**vm(alice.user, "a"), "kind": "rocket"}],
    )
    assert count == 1
    assert record_inventory(online_node.pk, "not a list") == 1


@pytest.mark.django_db
def test_owners_list_only_their_own_workloads(alice, mallory, online_node):
    deployed(alice, online_node)
    deployed(mallory, online_node)
    record_inventory(online_node.pk, [vm(alice.user, "web"), vm(mallory.user, "secret")])
    mine = alice.api.get("/api/v1/workloads").json()["results"]
    assert [(w["name"], w["node"]) for w in mine] == [("web", online_node.pk)]
    theirs = Workload.objects.get(name="secret")
    assert alice.api.get(f"/api/v1/workloads/{theirs.pk}").status_code == 404
    assert alice.api.get("/api/v1/workloads?kind=volume").json()["results"] == []


@pytest.mark.django_db(transaction=True)
def test_the_node_link_records_inventory_reports(alice, online_node):
    deployed(alice, online_node)

    async def session():
        link, _ = await connect_node(online_node.signing_key)
        await link.send_json_to({"type": "inventory", "workloads": [vm(alice.user, "db")]})
        await link.receive_nothing(timeout=0.5)
        await link.disconnect()

    async_to_sync(session)()
    assert list(Workload.objects.values_list("name", "node_id")) == [("db", online_node.pk)]


@pytest.mark.django_db
def test_a_node_cannot_plant_workloads_for_users_who_never_deployed_to_it(
    alice, mallory, online_node, caplog
):
    """Attack: an approved node reports a fake VM owned by a user with no job on it."""
    deployed(alice, online_node)
    assert record_inventory(online_node.pk, [vm(alice.user, "web"), vm(mallory.user, "fake")]) == 1
    assert mallory.api.get("/api/v1/workloads").json()["results"] == []
    assert [w["name"] for w in alice.api.get("/api/v1/workloads").json()["results"]] == ["web"]
    assert "never deployed" in caplog.text
