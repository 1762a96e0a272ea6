"""kill -9 of the node's processes during a steady stream of deployments (ISSUE 19, Faults).

Real processes: daphne, the coordinator worker, the agent with its redis-server and runners.
While deployments keep arriving, every runner and then the node's redis-server are killed with
SIGKILL at a moment some jobs are running; so is the agent itself, restarted as its service
manager would. Afterwards: every accepted deployment ends in a final state, each job's events are
complete and in order (queued first, one final state last, nothing after it, no event twice), its
side effect (test_mark, contracts.catalog.TEST_FUNCTIONS) happened exactly once however often the
script ran, and the node serves new work without anyone stepping in.
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

# The mark comes before the pause, so a job killed while it sleeps has made its side effect and
# runs again from the top.
SCRIPT = 'log("start"); test_mark("effect"); sleep(1500); log("end"); 42'
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
    history = [(e["seq"], e["attempt"], e["status"], e["log"]) for e in events]
    assert len(finals) == 1 and finals[0] == len(statuses) - 1, history
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
    check_effect_once(agent, done)
    return events


def check_effect_once(agent, done: dict, key: str = "effect") -> int:
    """The finished deployment's test_mark made its mark exactly once (none allowed only for a
    job that failed or was cancelled); returns how many times the script ran again past it."""
    job = done["job"]["id"]
    marks = [again for j, k, again in agent.marks() if j == job and k == key]
    made = marks.count(False)
    if done["status"] == "succeeded":
        assert made == 1, (done, marks)
    else:
        assert made <= 1, (done, marks)
    return marks.count(True)


def test_runner_and_node_redis_killed_mid_stream_every_job_ends_once(grid):  # noqa: F811
    user, agent = grid
    pid = agent.process.pid
    deployments = []

    for victim in ("runner", "redis-server"):
        for _ in range(4):
            deployments.append(user.deploy(SCRIPT))
        wait_for(
            lambda: past_effect(user, agent, deployments[-4:]),
            timeout=60,
            what="a job of the stream to be running past its side effect",
        )
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
    restarted = repeats = 0
    for deployment in deployments:
        restarted += _logs(check_succeeded(user, agent, deployment)).count("start") > 1
        repeats += check_effect_once(agent, user.get(deployment["id"]))

    assert restarted >= 1, "no running job was hit by the runner kill"
    assert repeats >= 1, "no job ran again past its side effect"
    after = user.deploy("1 + 1")  # served again, nobody stepped in
    assert user.wait_final(after["id"])["job"]["result"] == 2
    assert agent.process.poll() is None


def past_effect(user, agent, deployments: list[dict]) -> bool:
    """One of `deployments` made its mark and is still running (sleeping before "end")."""
    marked = {job for job, _, _ in agent.marks()}
    for deployment in deployments:
        job = user.get(deployment["id"])["job"]
        if job["id"] in marked and job["state"] not in FINAL:
            return True
    return False


def test_the_agent_killed_mid_stream_and_started_again_loses_and_doubles_nothing(
    grid,  # noqa: F811
    start_agent,
):
    """kill -9 of the agent itself (its runners and redis-server go with it: PDEATHSIG), then
    started again on the same data directory as its service manager would: the jobs it held
    run again from its Redis, their side effects are not made twice, nothing is lost."""
    user, agent = grid
    # Long enough that a job seen past its mark through the API is still running at the kill.
    deployments = [user.deploy(SCRIPT.replace("1500", "5000")) for _ in range(4)]
    wait_for(
        lambda: past_effect(user, agent, deployments),
        timeout=60,
        what="a job of the stream to be running past its side effect",
    )
    held = children(agent.process.pid)
    agent.process.send_signal(signal.SIGKILL)
    agent.process.wait(timeout=10)
    wait_for(
        lambda: not any(Path(f"/proc/{p}").exists() for p in held),
        timeout=30,
        what="the agent's runners and redis-server to end with it",
    )
    deployments += [user.deploy(SCRIPT) for _ in range(2)]  # submitted while the node is down
    again = start_agent(*agent.args, data_dir=agent.data_dir)
    repeats = 0
    for deployment in deployments:
        check_succeeded(user, again, deployment)
        repeats += check_effect_once(again, user.get(deployment["id"]))
    assert repeats >= 1, "no job ran again past its side effect"
    after = user.deploy("1 + 1")
    assert user.wait_final(after["id"])["job"]["result"] == 2


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
            check_succeeded(user, agent, deployment)  # its side effect once, too
        after = user.deploy("1 + 1")
        assert user.wait_final(after["id"])["job"]["result"] == 2
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=10)
