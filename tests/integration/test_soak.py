"""The soak: a steady stream of deployments for ZOS_SOAK_MINUTES (30 by default), behind a flag.

Skipped unless ZOS_SOAK=1 (it takes half an hour):

    ZOS_SOAK=1 .venv/bin/python -m pytest tests/integration/test_soak.py -s

Daphne, the coordinator worker, the agent, its runners and its redis-server run as in the
other integration tests. The memory (RSS) of every one of them is sampled, and so is submit →
succeeded latency; after a warm-up (the first fifth of the run), the last fifth must be flat
against the second fifth: memory within 25 % + 16 MiB, p90 latency within 2x + 0.5 s. Printed
as a table, so a run is also a figure.
"""

import os
import statistics
import time
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for
from tests.integration.test_deployments import grid  # noqa: F401
from tests.integration.test_process_faults import children, command_of

pytestmark = pytest.mark.integration

SOAK = os.environ.get("ZOS_SOAK") == "1"
MINUTES = float(os.environ.get("ZOS_SOAK_MINUTES", "30"))
PACE = 0.5  # seconds between deployments


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


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


@pytest.mark.skipif(not SOAK, reason="the 30-minute soak runs only with ZOS_SOAK=1")
def test_memory_and_latency_stay_flat_under_a_steady_stream(grid):  # noqa: F811
    user, agent = grid
    end = time.monotonic() + MINUTES * 60
    samples: list[tuple[float, dict[str, int]]] = []
    latencies: list[tuple[float, float]] = []
    start = time.monotonic()
    while time.monotonic() < end:
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
        latencies.append((submitted - start, time.monotonic() - submitted))
        if not samples or time.monotonic() - start - samples[-1][0] >= 10:
            pids = processes(agent.process.pid)
            samples.append((time.monotonic() - start, {n: rss_kib(p) for n, p in pids.items()}))
        time.sleep(PACE)

    span = time.monotonic() - start

    def window(rows, fifth: int):
        return [r for t, r in rows if fifth * span / 5 <= t < (fifth + 1) * span / 5]

    print(f"\nsoak: {len(latencies)} deployments in {span / 60:.1f} min")
    print(f"{'process':<14}{'RSS 2nd fifth MiB':>20}{'RSS last fifth MiB':>20}")
    growing = []
    for name in samples[0][1]:
        early = max(s.get(name, 0) for s in window(samples, 1)) / 1024
        late = max(s.get(name, 0) for s in window(samples, 4)) / 1024
        print(f"{name:<14}{early:>20.1f}{late:>20.1f}")
        if late > early * 1.25 + 16:
            growing.append(name)
    early_p90 = statistics.quantiles(window(latencies, 1), n=10)[-1]
    late_p90 = statistics.quantiles(window(latencies, 4), n=10)[-1]
    print(f"submit → succeeded p90: {early_p90 * 1000:.0f} ms then {late_p90 * 1000:.0f} ms")
    assert not growing, f"memory grew: {growing}"
    assert late_p90 <= early_p90 * 2 + 0.5
