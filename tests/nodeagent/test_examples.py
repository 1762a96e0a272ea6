"""The editor's workload examples run as a newcomer would run them: examples/volume.rhai and
examples/herodb.rhai on real runners, a real btrfs pool (loop device) and a real database server.
(examples/vm.rhai needs the "debian-12" image, which the image builder makes.)"""

from pathlib import Path

import redis

from tests.nodeagent.test_runner import start_pool  # noqa: F401 - fixture
from tests.nodeagent.test_workload_functions import node, pool, run  # noqa: F401 - fixtures

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_volume_example_makes_a_volume_and_a_snapshot_of_it(node, pool):  # noqa: F811
    done = run(node, 1, (EXAMPLES / "volume.rhai").read_text())
    assert done["state"] == "succeeded", done.get("error")
    snapshot = done["value"]["snapshot"]
    assert done["value"]["volume"] == "data" and snapshot.startswith("data-day-")
    assert sorted(s.name for s in pool.list_subvolumes()) == sorted(
        ["vol-u1-data", f"vol-u1-{snapshot}"]
    )
    again = run(node, 1, (EXAMPLES / "volume.rhai").read_text())
    assert again["state"] == "succeeded", again.get("error")  # a re-run is harmless
    run(node, 1, f'volume_delete("{snapshot}"); volume_delete("data")')


def test_the_herodb_example_makes_a_database_that_takes_its_password(node):  # noqa: F811
    done = run(node, 1, (EXAMPLES / "herodb.rhai").read_text())
    assert done["state"] == "succeeded", done.get("error")
    result = done["value"]
    host, port = result["address"].rsplit(":", 1)
    client = redis.Redis(host=host.strip("[]"), port=int(port), password=result["password"])
    try:
        assert client.ping()
    finally:
        client.close()
