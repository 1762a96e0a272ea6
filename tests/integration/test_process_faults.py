"""kill -9 of the node's processes during a steady stream of deployments (ISSUE 19, Faults).

Real processes: daphne, the coordinator worker, the agent with its redis-server and runners.
While deployments keep arriving, every runner and then the node's redis-server are killed with
SIGKILL at a moment some jobs are running. Afterwards: every accepted deployment ends in a final
state, each job's events are complete and in order (queued first, one final state last, nothing
after it, no event twice), and the node serves new work without anyone stepping in.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, wait_for
from tests.integration.test_deployments import FINAL, _logs, grid  # noqa: F401

pytestmark = pytest.mark.integration

SCRIPT = 'log("start"); sleep(1500); log("end"); 42'
ORDER = ["queued", "dispatched", "accepted", "running"]


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def redis_of(agent_pid: int) -> int | None:
    return next((p for p in children(agent_pid) if "redis-server" in command_of(p)), None)


def runners_of(agent_pid: int) -> list[int]:
    return [
        p
        for p in children(agent_pid)
        if "redis-server" not in command_of(p) and "resource_tracker" not in command_of(p)
    ]


def check_history(events: list[dict]) -> None:
    """Queued first, one final state and nothing after it; each attempt's events in order."""
    statuses = [e["status"] for e in events]
    assert statuses[0] == "queued", statuses
    finals = [i for i, s in enumerate(statuses) if s in FINAL]
    assert len(finals) == 1 and finals[0] == len(statuses) - 1, statuses
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), "an event stored twice or out of order"
    for attempt in {e["attempt"] for e in events}:
        steps = [s for e in events if e["attempt"] == attempt and (s := e["status"]) in ORDER]
        assert steps == sorted(steps, key=ORDER.index), (attempt, statuses)


def check_succeeded(user, agent, deployment: dict) -> list[dict]:
    done = user.wait_final(deployment["id"], timeout=180)
    assert done["status"] == "succeeded", (done, agent.log()[-3000:])
    assert done["job"]["result"] == 42
    events = user.events(deployment["id"])
    check_history(events)
    return events


def test_runner_and_node_redis_killed_mid_stream_every_job_ends_once(grid):  # noqa: F811
    user, agent = grid
    pid = agent.process.pid
    deployments = []

    def running_now() -> bool:
        return any("start" in _logs(user.events(d["id"])) for d in deployments[-3:])

    for victim in ("runner", "redis-server"):
        for _ in range(4):
            deployments.append(user.deploy(SCRIPT))
        wait_for(running_now, timeout=60, what="a job of the stream to be running")
        # Every runner, so the running job is surely among the killed.
        targets = runners_of(pid) if victim == "runner" else [redis_of(pid)]
        assert targets and None not in targets
        for target in targets:
            os.kill(target, signal.SIGKILL)
        deployments.append(user.deploy(SCRIPT))  # the stream goes on through the fault
        wait_for(
            lambda target=target, victim=victim: (
                (runners_of(pid) if victim == "runner" else [redis_of(pid)])
                and target not in children(pid)
            ),
            timeout=60,
            what=f"the agent to replace its {victim}",
        )

    # The faults happened as meant: the agent saw its runners die and its Redis come back.
    for line in ("died with exit code -9", "redis-server restarted"):
        wait_for(
            lambda line=line: line in agent.log(), timeout=30, what=f"the agent to log {line!r}"
        )
    restarted = 0
    for deployment in deployments:
        restarted += _logs(check_succeeded(user, agent, deployment)).count("start") > 1

    assert restarted >= 1, "no running job was hit by the runner kill"
    after = user.deploy("1 + 1")  # served again, nobody stepped in
    assert user.wait_final(after["id"])["job"]["result"] == 2
    assert agent.process.poll() is None


def test_control_plane_and_coordinator_worker_killed_mid_stream_every_job_ends_once(
    grid,  # noqa: F811
    tmp_path,
):
    """kill -9 of daphne and of the coordinator worker while jobs run; they are started again
    as the box supervisor would, and every deployment still ends once, its history whole."""
    user, agent = grid
    deployments = [user.deploy(SCRIPT) for _ in range(4)]
    wait_for(
        lambda: any("start" in _logs(user.events(d["id"])) for d in deployments),
        timeout=60,
        what="a job of the stream to be running",
    )
    workers = [p for p in children(os.getpid()) if "manage.py coordinator" in command_of(p)]
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGKILL)
    user.plane.kill()
    user.plane.start()
    deployments += [user.deploy(SCRIPT) for _ in range(3)]
    with open(tmp_path / "coordinator-2.log", "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "coordinator", "--every", "0.2"],
            cwd=ROOT,
            env=user.plane.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        for deployment in deployments:
            check_succeeded(user, agent, deployment)
        after = user.deploy("1 + 1")
        assert user.wait_final(after["id"])["job"]["result"] == 2
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=10)
