"""Deployments through real processes: daphne, the coordinator worker, an agent with redis and
runners. A user signs scripts; we watch what the API reports."""

import contextlib
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import requests
from nacl.signing import SigningKey

from contracts.key_proof import sign_key_proof
from signing.keys import public_key_hex
from tests.integration.conftest import ROOT, Agent, ControlPlane, bootstrap, wait_for
from zoscli.envelope import build_payload, sign_deployment

pytestmark = pytest.mark.integration

FINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class User:
    plane: ControlPlane
    token: str
    key: SigningKey
    node: int

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Token {self.token}"}

    def deploy(self, script: str, **payload) -> dict:
        body = build_payload(script=script, target={"node": self.node}, name="it", lifetime=600)
        envelope = sign_deployment(self.key, {**body, **payload})
        response = requests.post(
            f"{self.plane.url}/api/v1/deployments",
            json={"envelope": envelope},
            headers=self.headers,
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return response.json()

    def get(self, deployment: int) -> dict:
        return self.plane.get(f"/api/v1/deployments/{deployment}", headers=self.headers)

    def events(self, deployment: int) -> list[dict]:
        return self.plane.get(f"/api/v1/deployments/{deployment}/events", headers=self.headers)[
            "results"
        ]

    def wait_final(self, deployment: int, timeout: float = 60) -> dict:
        return wait_for(
            lambda: (d := self.get(deployment))["status"] in FINAL and d,
            timeout=timeout,
            what=f"deployment {deployment} to finish",
        )


@pytest.fixture
def grid(control_plane, start_agent, tmp_path):
    """Control plane, coordinator worker and one enrolled agent; yields (user, agent)."""
    with running_grid(control_plane, start_agent, tmp_path) as (user, agent):
        yield user, agent


@contextlib.contextmanager
def running_grid(
    control_plane, start_agent, tmp_path, *agent_args: str, data_dir=None, **agent_options
):
    """The coordinator worker and one enrolled agent (started with `agent_args` and
    `agent_options`, see start_agent) online, and a user with a registered key; yields
    (user, agent)."""
    info = bootstrap(control_plane)
    worker_log = open(tmp_path / "coordinator.log", "ab")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "coordinator", "--every", "0.2"],
        cwd=ROOT,
        env=control_plane.env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    try:
        agent = start_agent(
            "--ledger",
            control_plane.url,
            "--farm",
            str(info["farm"]),
            "--enroll",
            info["token"],
            *agent_args,
            data_dir=data_dir,
            **agent_options,
        )
        nodes = wait_for(
            lambda: [
                n for n in control_plane.get("/api/v1/nodes")["results"] if n["status"] == "online"
            ],
            timeout=30,
            what="the enrolled node to come online",
        )
        yield user_with_key(control_plane, info["api_token"], nodes[0]["id"]), agent
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=10)
        worker_log.close()


def user_with_key(plane: ControlPlane, api_token: str, node: int) -> User:
    """The API token's user with a fresh signing key registered (proof of possession)."""
    key = SigningKey.generate()
    user = User(plane, api_token, key, node)
    challenge = requests.post(
        f"{plane.url}/api/v1/keys/challenge", headers=user.headers, timeout=5
    ).json()
    proof = sign_key_proof(
        key, user=challenge["user"], challenge=challenge["challenge"], issued_at=int(time.time())
    )
    registered = requests.post(
        f"{plane.url}/api/v1/keys",
        json={"name": "laptop", "public_key": public_key_hex(key), "proof": proof},
        headers=user.headers,
        timeout=5,
    )
    assert registered.status_code == 201, registered.text
    return user


def _logs(events: list[dict]) -> list[str]:
    return [e["log"] for e in events if e["log"] and e["status"] == "running"]


def test_a_signed_script_runs_on_the_node_and_reports_back_in_order(grid):
    user, agent = grid
    deployment = user.deploy('log("one"); log("two"); let x = 40; x + 2')
    done = user.wait_final(deployment["id"])
    assert done["status"] == "succeeded", (done, agent.log())
    assert done["job"]["result"] == 42
    events = user.events(deployment["id"])
    assert _logs(events) == ["one", "two"]
    statuses = [e["status"] for e in events]
    assert statuses[0] == "queued" and statuses[-1] == "succeeded"
    assert "accepted" in statuses


def test_a_runaway_script_fails_with_the_limit_and_the_runner_lives_on(grid):
    user, _ = grid
    runaway = user.deploy("let n = 0; loop { n += 1; }")
    assert user.wait_final(runaway["id"], timeout=120)["status"] == "failed"
    assert "ErrorTooManyOperations" in user.get(runaway["id"])["job"]["error"]
    deep = user.deploy("fn f(n) { f(n + 1) } f(0)")
    assert user.wait_final(deep["id"])["status"] == "failed"
    assert "ErrorStackOverflow" in user.get(deep["id"])["job"]["error"]
    after = user.deploy("1 + 1")
    assert user.wait_final(after["id"])["job"]["result"] == 2


def test_jobs_survive_a_control_plane_restart(grid):
    user, _ = grid
    deployment = user.deploy('log("before"); sleep(3000); log("after"); "done"')
    wait_for(
        lambda: "before" in _logs(user.events(deployment["id"])),
        timeout=30,
        what="the job to start",
    )
    user.plane.kill()
    time.sleep(4)  # the job finishes while the node cannot report
    user.plane.start()
    done = user.wait_final(deployment["id"], timeout=90)
    assert done["status"] == "succeeded"
    assert done["job"]["result"] == "done"
    assert _logs(user.events(deployment["id"])) == ["before", "after"]


def _link(plane: ControlPlane, node: int) -> tuple | None:
    """(lost_at, lost_reason) of the node's link as the control plane stored it."""
    with contextlib.closing(sqlite3.connect(plane.var_dir / "zos.sqlite3", timeout=30)) as db:
        return db.execute(
            "SELECT lost_at, lost_reason FROM coordinator_nodelink WHERE node_id = ?", (node,)
        ).fetchone()


def _link_down(plane: ControlPlane, node: int) -> tuple | None:
    link = _link(plane, node)
    return link if link and link[0] else None


def _link_up(plane: ControlPlane, node: int) -> bool:
    link = _link(plane, node)
    return bool(link) and link[0] is None


@contextlib.contextmanager
def frozen(agent: Agent):
    """SIGSTOP the agent (its link to the coordinator goes silent, its socket stays open)."""
    os.kill(agent.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(agent.process.pid, signal.SIGCONT)


def test_a_frozen_node_is_waited_for_without_spending_attempts_then_runs(grid):
    user, agent = grid
    wait_for(lambda: _link_up(user.plane, user.node), timeout=60, what="the node's link")
    with frozen(agent):
        _, reason = wait_for(
            lambda: _link_down(user.plane, user.node),
            timeout=60,
            what="the frozen node's link to be marked down",
        )
        assert reason.startswith("no beat for")  # the agent's beats stopped
        deployment = user.deploy('"ran after the thaw"')
        assert deployment["detail"] == f"waiting for node {user.node} to reconnect"
        first_deadline = deployment["job"]["deadline"]
        wait_for(  # an ack deadline passes while the link is down: the job is held, not retried
            lambda: user.get(deployment["id"])["job"]["deadline"] != first_deadline,
            timeout=60,
            what="the job's deadline to pass once while it waits",
        )
        waiting = user.get(deployment["id"])
        assert (waiting["status"], waiting["job"]["attempt"]) == ("queued", 1)
        assert waiting["detail"] == f"waiting for node {user.node} to reconnect"
    done = user.wait_final(deployment["id"], timeout=120)
    assert done["status"] == "succeeded", (done, agent.log())
    assert done["job"]["result"] == "ran after the thaw"
    assert done["job"]["attempt"] == 1
    statuses = [e["status"] for e in user.events(deployment["id"])]
    assert "waiting" in statuses and "retrying" not in statuses


def test_a_farm_deployment_lands_on_the_node_whose_link_is_live(
    control_plane, start_agent, tmp_path
):
    # The frozen node has the most memory: without its link state it would be picked.
    facts = tmp_path / "big.json"
    facts.write_text(json.dumps({"capacity": {"mru": 512 * 2**30}}))
    with running_grid(control_plane, start_agent, tmp_path, "--facts", str(facts)) as grid:
        user, big = grid
        info = bootstrap(control_plane)
        start_agent(
            "--ledger", control_plane.url, "--farm", str(info["farm"]), "--enroll", info["token"]
        )
        small = wait_for(
            lambda: [
                n["id"]
                for n in control_plane.get("/api/v1/nodes")["results"]
                if n["status"] == "online" and n["id"] != user.node
            ],
            timeout=60,
            what="the second node to come online",
        )[0]
        wait_for(
            lambda: _link_up(control_plane, user.node) and _link_up(control_plane, small),
            timeout=60,
            what="both nodes' links",
        )
        with frozen(big):
            wait_for(
                lambda: _link_down(control_plane, user.node),
                timeout=60,
                what="the frozen node's link to be marked down",
            )
            deployment = user.deploy('"on the live node"', target={"farm": info["farm"]})
            assert deployment["job"]["node"] == small
            done = user.wait_final(deployment["id"], timeout=120)
        assert done["status"] == "succeeded"
        assert (done["job"]["node"], done["job"]["attempt"]) == (small, 1)


def test_a_cancel_sent_while_the_link_is_down_reaches_the_node_when_it_returns(grid):
    """The node's control plane process dies with the link; the owner cancels through another
    one (same database); the job must stop when the node is back, never end `succeeded`."""
    user, agent = grid
    deployment = user.deploy('log("started"); sleep(120000); log("not reached"); "done"')
    wait_for(
        lambda: "started" in _logs(user.events(deployment["id"])),
        timeout=60,
        what="the job to start",
    )
    other = ControlPlane(var_dir=user.plane.var_dir)
    other.start()
    try:
        user.plane.kill()  # the node's link goes down with it
        via_other = dataclasses.replace(user, plane=other)
        response = requests.post(
            f"{other.url}/api/v1/deployments/{deployment['id']}/cancel",
            headers=user.headers,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        cancelling = response.json()
        assert cancelling["status"] == "cancelling"
        assert cancelling["detail"] == (
            "cancel requested; the node will stop the job when it hears of it"
        )
        assert via_other.get(deployment["id"])["status"] == "cancelling"
        user.plane.start()  # the node reconnects; its welcome is followed by the cancel
        done = via_other.wait_final(deployment["id"], timeout=120)
    finally:
        other.kill()
    assert done["status"] == "cancelled", (done, agent.log())
    assert done["job"]["result"] is None
    assert done["job"]["cancel_acked_at"]
    events = user.events(deployment["id"])
    statuses = [e["status"] for e in events]
    assert "succeeded" not in statuses and "late" not in statuses
    assert statuses.index("cancelling") < statuses.index("cancelled")
    assert _logs(events) == ["started"]


def test_the_agent_keeps_its_jobs_across_its_own_restart(grid, start_agent):
    user, agent = grid
    first = user.deploy('"first"')
    assert user.wait_final(first["id"])["status"] == "succeeded"
    assert agent.stop() == 0
    restarted: Agent = start_agent("--ledger", user.plane.url, data_dir=agent.data_dir)
    second = user.deploy('"second"')
    assert user.wait_final(second["id"])["job"]["result"] == "second"
    assert restarted.process.poll() is None
