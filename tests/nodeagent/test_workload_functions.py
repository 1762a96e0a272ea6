"""Scripts create, use and delete volumes and databases through real runners, on a real btrfs
pool (loop device) and real redis-server processes, each scoped to the job's owner."""

import json
import shutil
from pathlib import Path

import pytest
import redis

from nodeagent.config import DEFAULT_RUNNER_MEMORY_MB
from nodeagent.facts import disk_class
from nodeagent.functions.registry import WorkloadRegistry
from nodeagent.jobstore import JobStore, QueuedJob
from sal.herodb import HeroDB
from tests.nodeagent.test_runner import final, start_pool  # noqa: F401 - fixture
from tests.sal.conftest import loop_pool

GIB = 2**30
_ids = iter(range(1_000_000))


@pytest.fixture
def pool(tmp_path):
    with loop_pool(tmp_path / "btrfs") as pool:
        yield pool


@pytest.fixture
def node(store: JobStore, pool, tmp_path, start_pool):  # noqa: F811
    # a loop device reads as rotational: the pool's space is then HDD capacity (hru)
    capacity = {"cru": 4, "mru": 4 * GIB, "sru": 0, "hru": 0, disk_class(pool.mountpoint): 2 * GIB}
    store.publish_node_info({"capacity": capacity, "health": []})
    start_pool(workers=2, data_dir=str(tmp_path / "data"), storage=(str(pool.mountpoint),))
    yield store
    for record in WorkloadRegistry(store.redis).all(kind="herodb"):  # never leak servers
        run(store, record.owner, f'herodb_delete("{record.name}")')


def run(store: JobStore, owner: int, script: str) -> dict:
    job_id = f"w{next(_ids)}"
    job = QueuedJob(job_id, 1, owner=owner, signer="ab" * 32, name="t", script=script, timeout=60)
    assert store.enqueue(job)
    state = final(store, job_id, timeout=60)
    if state["state"] == "succeeded":
        state["value"] = json.loads(state["result"])
    return state


def test_a_volume_is_a_quota_limited_subvolume_of_the_pool(node, pool):
    made = run(node, 1, 'volume_create("data", 1)')
    assert made["value"]["state"] == "ready"
    subvolumes = [s.name for s in pool.list_subvolumes()]
    assert subvolumes == ["vol-u1-data"]
    assert pool.get_limit("vol-u1-data") == GIB
    assert run(node, 1, 'volume_create("data", 1)')["state"] == "succeeded"  # idempotent
    changed = run(node, 1, 'volume_create("data", 2)')
    assert "already exists with a different spec" in changed["error"]

    snap = run(node, 1, 'volume_snapshot("data", "data-snap")')
    assert snap["value"]["snapshot_of"] == "data"
    assert run(node, 1, 'volume_delete("data-snap"); volume_delete("data")')["state"] == (
        "succeeded"
    )
    assert pool.list_subvolumes() == []
    assert sum(WorkloadRegistry(node.redis).used().values()) == 0


def test_capacity_is_reserved_and_refused_beyond_free(node):
    assert run(node, 1, 'volume_create("a", 2)')["state"] == "succeeded"
    refused = run(node, 2, 'volume_create("b", 1)')
    assert "not enough free capacity" in refused["error"]
    free = run(node, 2, "node_info().free")["value"]
    assert free["sru"] == free["hru"] == 0


def test_owners_cannot_see_or_touch_each_others_workloads(node, pool):
    run(node, 1, 'volume_create("data", 1)')
    foreign = run(node, 2, 'volume_delete("data")')  # owner 2 has none: nothing to delete
    assert foreign["state"] == "succeeded"
    assert [s.name for s in pool.list_subvolumes()] == ["vol-u1-data"]
    own = run(node, 2, 'volume_create("data", 1)')  # the same name is free for another owner
    assert own["state"] == "succeeded"


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ('volume_create("Bad Name", 1)', "volume name 'Bad Name' is not valid"),
        ('volume_create("ok", 0)', "size_gb must be a whole number from 1"),
        ('volume_create("ok", 1.5)', "size_gb must be a whole number"),
        ('herodb_create("db")', "spec must be a map"),
        ('herodb_create(#{name: "db", colour: 1})', "unknown spec fields: colour"),
        ('herodb_create(#{name: "db", memory_mb: 1})', "memory_mb must be a whole number from 16"),
    ],
)
def test_bad_arguments_are_explained(node, script, message):
    failed = run(node, 1, script)
    assert failed["state"] == "failed"
    assert message in failed["error"]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_a_database_serves_its_owner_with_a_password_and_goes_away(node, pool, tmp_path):
    made = run(node, 1, 'herodb_create(#{name: "cache", memory_mb: 64, disk_gb: 1})')
    assert made["state"] == "succeeded", made
    db = made["value"]
    host, port = db["address"].rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port), password=db["password"])
    client.set("k", "v")
    assert client.get("k") == b"v"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=host, port=int(port), password="wrong").ping()
    inventory = WorkloadRegistry(node.redis).inventory()
    assert "password" not in json.dumps(inventory)
    info = run(node, 1, 'herodb_info("cache")')["value"]
    assert (info["state"], info["keys"]) == ("running", 1)
    assert "you have no herodb" in run(node, 2, 'herodb_info("cache")')["error"]

    # the runner lives under a soft address-space limit; the database server it started must
    # not (sal.command lifts it in every child)
    pid = next(d.pid for d in HeroDB(tmp_path / "data" / "herodb").list_dbs())
    assert _address_space_limit(pid) == _address_space_limit("self")
    assert _address_space_limit(pid) != str(DEFAULT_RUNNER_MEMORY_MB * 2**20)

    assert run(node, 1, 'herodb_delete("cache")')["state"] == "succeeded"
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host=host, port=int(port), socket_connect_timeout=1).ping()
    assert pool.list_subvolumes() == []
    assert WorkloadRegistry(node.redis).used() == {"cru": 0, "mru": 0, "sru": 0, "hru": 0}


def _address_space_limit(pid: int | str) -> str:
    """The soft `Max address space` of a process, as /proc/<pid>/limits shows it."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            return line.split()[3]
    raise AssertionError(f"no address-space line in /proc/{pid}/limits")
