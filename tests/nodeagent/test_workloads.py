"""Workload records and capacity reservations in the node's real Redis."""

import json
import multiprocessing

import pytest

from nodeagent.functions.registry import (
    DELETING,
    NoCapacity,
    Workload,
    WorkloadError,
    WorkloadRegistry,
    check_name,
)
from nodeagent.jobstore import connect

GIB = 2**30


@pytest.fixture
def registry(redis_server) -> WorkloadRegistry:
    registry = WorkloadRegistry(connect(redis_server.url))
    registry.redis.set(
        "zos:node", json.dumps({"capacity": {"cru": 4, "mru": 8 * GIB, "sru": 100 * GIB, "hru": 0}})
    )
    return registry


def vm(owner: int, name: str, memory_gib: int = 2, **spec) -> Workload:
    return Workload(
        owner=owner,
        kind="vm",
        name=name,
        spec={"memory_mb": memory_gib * 1024, **spec},
        reserved={"cru": 1, "mru": memory_gib * GIB},
    )


def test_a_reservation_holds_capacity_until_released(registry):
    record, created = registry.reserve(vm(1, "web"))
    assert created
    assert registry.used() == {"cru": 1, "mru": 2 * GIB, "sru": 0, "hru": 0}
    registry.release(record)
    assert registry.used() == {"cru": 0, "mru": 0, "sru": 0, "hru": 0}


def test_the_same_spec_again_is_the_existing_workload(registry):
    registry.reserve(vm(1, "web"))
    again, created = registry.reserve(vm(1, "web"))
    assert again.spec == {"memory_mb": 2048}
    assert not created
    assert registry.used()["mru"] == 2 * GIB


def test_a_different_spec_under_the_same_name_is_refused(registry):
    registry.reserve(vm(1, "web"))
    with pytest.raises(WorkloadError, match="already exists with a different spec"):
        registry.reserve(vm(1, "web", memory_gib=4))


def test_names_are_scoped_per_owner(registry):
    registry.reserve(vm(1, "web"))
    _, created = registry.reserve(vm(2, "web", memory_gib=4))
    assert created
    assert [w.owner for w in registry.all(kind="vm")] == [1, 2]
    assert registry.get(2, "vm", "web").spec["memory_mb"] == 4096
    with pytest.raises(WorkloadError, match="you have no vm named 'db'"):
        registry.require(2, "vm", "db")


def test_beyond_free_capacity_fails_with_the_numbers(registry):
    registry.reserve(vm(1, "a", memory_gib=6))
    with pytest.raises(NoCapacity, match="3072 MiB memory requested, 2048 MiB memory free"):
        registry.reserve(vm(2, "b", memory_gib=3))
    assert len(registry.all()) == 1


def _grab(url: str, owner: int, results) -> None:
    registry = WorkloadRegistry(connect(url))
    try:
        registry.reserve(vm(owner, "big", memory_gib=5))
        results.put("ok")
    except NoCapacity:
        results.put("full")


def test_concurrent_runners_cannot_both_take_the_last_memory(registry, redis_server):
    results = multiprocessing.get_context("spawn").Queue()
    workers = [
        multiprocessing.get_context("spawn").Process(
            target=_grab, args=(redis_server.url, n, results)
        )
        for n in range(1, 5)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    outcomes = sorted(results.get(timeout=5) for _ in workers)
    assert outcomes == ["full", "full", "full", "ok"]
    assert registry.used()["mru"] == 5 * GIB


@pytest.mark.parametrize("name", ["", "Web", "-a", "a-", "a_b", "a" * 33, "../x", 7])
def test_bad_names_are_refused(name):
    with pytest.raises(WorkloadError, match="not valid"):
        check_name("vm", name)


def test_inventory_lists_owners_and_public_details(registry):
    record, _ = registry.reserve(vm(1, "web"))
    record.state = "ready"
    record.details = {"mycelium_ip": "4ab:cd::5"}
    registry.save(record)
    assert registry.inventory() == [
        {
            "owner": 1,
            "kind": "vm",
            "name": "web",
            "state": "ready",
            "reserved": {"cru": 1, "mru": 2 * GIB},
            "mycelium_ip": "4ab:cd::5",
        }
    ]


def test_a_held_volume_names_its_vm_in_the_inventory_and_a_free_one_does_not(registry):
    data, _ = registry.reserve(
        Workload(owner=1, kind="volume", name="data", spec={"size_gb": 1}, reserved={})
    )
    logs, _ = registry.reserve(
        Workload(owner=1, kind="volume", name="logs", spec={"size_gb": 1}, reserved={})
    )
    registry.claim_volume(data, "web")
    registry.claim_volume(logs, DELETING)
    listed = {entry["name"]: entry for entry in registry.inventory()}
    assert listed["data"]["attached_to"] == "web"
    assert "attached_to" not in listed["logs"]  # being deleted: held by no VM
    registry.unclaim_volumes(1, ["data"], "web")
    assert "attached_to" not in {e["name"]: e for e in registry.inventory()}["data"]


def _claim(url: str, holder: str, results) -> None:
    registry = WorkloadRegistry(connect(url))
    volume = Workload(owner=1, kind="volume", name="data", spec={"size_gb": 1}, reserved={})
    results.put((holder, registry.claim_volume(volume, holder)))


def test_concurrent_vms_cannot_both_hold_a_volume_and_only_the_holder_lets_go(
    registry, redis_server
):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_claim, args=(redis_server.url, f"vm{n}", results)) for n in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    outcomes = [results.get(timeout=5) for _ in workers]
    winners = {holder for wanted, holder in outcomes if wanted == holder}
    assert len(winners) == 1 and {holder for _, holder in outcomes} == winners  # all see it
    (winner,) = winners
    volume = Workload(owner=1, kind="volume", name="data", spec={}, reserved={})
    registry.unclaim_volumes(1, ["data"], "someone-else")
    assert registry.volume_holder(volume) == winner
    registry.unclaim_volumes(2, ["data"], winner)  # another owner's "data" is another volume
    assert registry.volume_holder(volume) == winner
    registry.unclaim_volumes(1, ["data"], winner)
    assert registry.volume_holder(volume) is None
