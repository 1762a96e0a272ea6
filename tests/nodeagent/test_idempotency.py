"""Jobs run at least once: a runner or agent killed mid-job runs the whole script again. So
every catalog function that changes something is idempotent by name, which these tests check
by calling each one twice through the real bindings (a real btrfs pool on a loop device, real
redis-server processes for herodb), and by re-running a create on what a runner killed half-way
through it leaves behind."""

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from contracts.catalog import CATALOG, TEST_FUNCTIONS
from nodeagent.facts import disk_class
from nodeagent.functions.context import JobContext
from nodeagent.functions.registry import Workload, WorkloadRegistry
from nodeagent.functions.resources import NodeResources, node_resources
from nodeagent.functions.testing import marker, read_marks
from nodeagent.functions.vms import VmFunctions
from nodeagent.functions.workloads import WorkloadFunctions
from nodeagent.jobstore import JobStore, QueuedJob
from rhai import RhaiError
from tests.sal.conftest import loop_pool

GIB = 2**30
# What a re-run must survive; the rest of the catalog only reads (or is log/sleep/now).
# vm_create, vm_start and vm_stop need a booted guest: tests/nodeagent/test_vm_functions.py runs
# vm_create twice and stops and starts a running VM; tests/integration/test_gateway_e2e.py runs
# a gateway name's create and its delete twice (an fqdn takes the same path); the rest are here.
CHANGING = {
    "vm_create",
    "vm_start",
    "vm_stop",
    "vm_delete",
    "volume_create",
    "volume_delete",
    "volume_snapshot",
    "herodb_create",
    "herodb_delete",
    "gateway_name_create",
    "gateway_fqdn_create",
    "gateway_delete",
}


@pytest.fixture
def resources(store: JobStore, tmp_path: Path) -> Iterator[NodeResources]:
    with loop_pool(tmp_path / "btrfs") as pool:
        capacity = {"cru": 4, "mru": 4 * GIB, "sru": 0, "hru": 0}
        capacity[disk_class(pool.mountpoint)] = 2 * GIB
        store.publish_node_info({"capacity": capacity, "health": []})
        found = node_resources(tmp_path / "data", (pool.mountpoint,), "127.0.0.1")
        yield found
        if found.herodb is not None:  # never leak database servers
            for db in found.herodb.list_dbs():
                found.herodb.delete(db.db_id)


@pytest.fixture
def call(store: JobStore, resources: NodeResources) -> Callable[..., Any]:
    """`call("volume_create", "data", 1)`: one catalog function, as owner 1's job calls it."""
    registry = WorkloadRegistry(store.redis)
    table = {
        **WorkloadFunctions(resources, registry).table(),
        **VmFunctions(resources, registry).table(),
    }
    store.enqueue(QueuedJob("j1", 1, owner=1, signer="ab" * 32, name="t", script="", timeout=60))
    ctx = JobContext(
        job_id="j1", owner=1, signer="ab" * 32, name="t", timeout=60, events=store,
        workloads=registry,
    )  # fmt: skip

    def call(function: str, *args: Any) -> Any:
        return table[function](ctx)(*args)

    return call


def _job_log(store: JobStore) -> list[str]:
    return [f["log"] for _, f in store.outbox_after("0-0", 100, 0) if "log" in f]


def test_every_catalog_function_is_either_a_reader_or_checked_for_reruns():
    assert CATALOG.keys() >= CHANGING
    readers = {"vm_info", "vm_list", "herodb_info", "node_info", "log", "sleep", "now"}
    readers |= {"gateway_info", "gateway_list"}
    assert CATALOG.keys() - CHANGING == readers
    # test grids only (contracts.catalog.TEST_FUNCTIONS); it changes a file, checked below
    assert TEST_FUNCTIONS.keys() == {"test_mark"}


def test_test_mark_rerun_in_the_same_job_marks_once_and_says_it_ran_again(store, tmp_path):
    marks = tmp_path / "test-marks"
    mark = marker(marks)

    def ctx(job: str) -> JobContext:
        return JobContext(job_id=job, owner=1, signer="ab" * 32, name="t", timeout=60, events=store)

    assert mark(ctx("j1"))("effect") is True
    assert mark(ctx("j1"))("effect") is False  # the script again, after a runner was killed
    assert mark(ctx("j1"))("other") is True
    assert mark(ctx("j2"))("effect") is True
    assert read_marks(marks) == [
        ("j1", "effect", False),
        ("j1", "effect", True),
        ("j1", "other", False),
        ("j2", "effect", False),
    ]
    with pytest.raises(RhaiError, match="test_mark: key must be"):
        mark(ctx("j1"))("two words")


def test_volume_create_twice_returns_the_same_volume(call, resources):
    first = call("volume_create", "data", 1)
    assert call("volume_create", "data", 1) == first
    assert [s.name for s in resources.pool.list_subvolumes()] == ["vol-u1-data"]


def test_volume_delete_twice_succeeds_and_says_the_second_had_nothing_to_do(call, resources, store):
    call("volume_create", "data", 1)
    assert call("volume_delete", "data") is True
    assert call("volume_delete", "data") is True
    assert resources.pool.list_subvolumes() == []
    assert _job_log(store) == ["volume_delete: you have no volume named 'data'; nothing to do"]


def test_volume_snapshot_twice_is_one_snapshot_even_once_its_source_is_gone(call, resources):
    call("volume_create", "data", 1)
    snap = call("volume_snapshot", "data", "data-snap")
    assert call("volume_snapshot", "data", "data-snap") == snap
    call("volume_delete", "data")  # the script goes on: snapshot, then delete the source
    assert call("volume_snapshot", "data", "data-snap") == snap  # its re-run
    assert [s.name for s in resources.pool.list_subvolumes()] == ["vol-u1-data-snap"]


def test_volume_snapshot_rerun_after_a_runner_died_between_snapshot_and_record(
    call, resources, store
):
    call("volume_create", "data", 1)
    # What a runner killed right after `btrfs subvolume snapshot` leaves: the snapshot, and a
    # record still `creating`.
    registry = WorkloadRegistry(store.redis)
    source = registry.get(1, "volume", "data")
    half = Workload(
        owner=1,
        kind="volume",
        name="snap",
        spec={"snapshot_of": "data"},
        reserved=dict(source.reserved),
    )
    registry.reserve(half)
    resources.pool.snapshot("vol-u1-data", "vol-u1-snap", readonly=True)
    made = call("volume_snapshot", "data", "snap")
    assert (made["state"], made["snapshot_of"]) == ("ready", "data")
    assert sorted(s.name for s in resources.pool.list_subvolumes()) == [
        "vol-u1-data",
        "vol-u1-snap",
    ]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_herodb_create_twice_is_one_database_with_the_same_password(call, resources):
    spec = {"name": "cache", "memory_mb": 32, "disk_gb": 1}
    first = call("herodb_create", spec)
    assert call("herodb_create", spec) == first
    host, port = first["address"].rsplit(":", 1)
    assert redis.Redis(host=host, port=int(port), password=first["password"]).ping()
    assert [db.db_id for db in resources.herodb.list_dbs()] == ["u1-cache"]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_herodb_create_rerun_after_a_runner_died_before_recording_it(call, resources, store):
    spec = {"name": "cache", "memory_mb": 32, "disk_gb": 1}
    first = call("herodb_create", spec)
    # A runner killed after the server started but before the record said `ready`.
    registry = WorkloadRegistry(store.redis)
    record = registry.get(1, "herodb", "cache")
    record.state = "creating"
    registry.save(record)
    again = call("herodb_create", spec)
    assert again == first
    assert [db.db_id for db in resources.herodb.list_dbs()] == ["u1-cache"]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_herodb_delete_twice_succeeds(call, resources, store):
    call("herodb_create", {"name": "cache", "memory_mb": 32, "disk_gb": 1})
    assert call("herodb_delete", "cache") is True
    assert call("herodb_delete", "cache") is True
    assert resources.herodb.list_dbs() == []
    assert resources.pool.list_subvolumes() == []
    assert _job_log(store) == ["herodb_delete: you have no herodb named 'cache'; nothing to do"]


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64")
def test_vm_delete_of_a_vm_already_gone_succeeds(call, store):
    # A runner killed after the VM's pieces were removed but before its record was released.
    WorkloadRegistry(store.redis).reserve(
        Workload(owner=1, kind="vm", name="web", spec={}, reserved={"cru": 1}, state="ready")
    )
    assert call("vm_delete", "web") is True
    assert call("vm_delete", "web") is True
    assert WorkloadRegistry(store.redis).all() == []
    assert _job_log(store) == ["vm_delete: you have no vm named 'web'; nothing to do"]
