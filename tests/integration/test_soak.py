"""The soak: a steady stream of deployments for ZOS_SOAK_MINUTES (30 by default), behind a flag.

Skipped unless ZOS_SOAK=1 (it takes half an hour):

    ZOS_SOAK=1 .venv/bin/python -m pytest tests/integration/test_soak.py -s

Daphne, the coordinator worker, the agent, its runners and its redis-server run as in the
other integration tests. The memory (RSS) of every one of them is sampled, and so is submit →
succeeded latency; after a warm-up (the first fifth of the run), the last fifth must be flat
against the second fifth (tests/soak_helpers.py has the rule). Printed as a table, so a run is
also a figure.
"""

import os
import time

import pytest

from tests.integration.conftest import wait_for
from tests.integration.test_deployments import grid  # noqa: F401
from tests.integration.test_process_faults import children, command_of
from tests.soak_helpers import SKIP_REASON, SOAK, Soak, rss_kib

pytestmark = pytest.mark.integration


def processes(agent_pid: int) -> dict[str, int]:
    """name → pid of every process of the grid (runners by their slot in pid order)."""
    found = {"agent": agent_pid}
    runners = 0
    for pid in sorted(children(agent_pid)):
        command = command_of(pid)
        if "redis-server" in command:
            found["node-redis"] = pid
        elif "resource_tracker" not in command:
            runners += 1
            found[f"runner-{runners}"] = pid
    for pid in children(os.getpid()):
        command = command_of(pid)
        if "daphne" in command:
            found["daphne"] = pid
        elif "manage.py coordinator" in command:
            found["coordinator"] = pid
    return found


@pytest.mark.skipif(not SOAK, reason=SKIP_REASON)
def test_memory_and_latency_stay_flat_under_a_steady_stream(grid):  # noqa: F811
    user, agent = grid

    def sample() -> dict[str, int]:
        return {name: rss_kib(pid) for name, pid in processes(agent.process.pid).items()}

    soak = Soak()
    while soak.running():
        submitted = time.monotonic()
        deployment = user.deploy('log("soak"); 40 + 2')
        done = wait_for(
            lambda d=deployment: (
                (x := user.get(d["id"]))["status"] in ("succeeded", "failed") and x
            ),
            timeout=60,
            what="a soak deployment to finish",
            every=0.02,
        )
        assert done["status"] == "succeeded", done
        soak.finished(submitted, sample)
    soak.assert_flat("soak")
