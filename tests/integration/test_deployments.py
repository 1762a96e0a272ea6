"""Deployments through real processes: daphne, the coordinator worker, an agent with redis and
runners. A user signs scripts; we watch what the API reports."""

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import requests
from nacl.signing import SigningKey

from signing.dsse import DEPLOYMENT_TYPE, sign_envelope, sign_key_proof
from signing.keys import public_key_hex
from tests.integration.conftest import ROOT, Agent, ControlPlane, bootstrap, wait_for

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
        now = int(time.time())
        body = {
            "script": script,
            "target": {"node": self.node},
            "nonce": secrets.token_hex(16),
            "issued_at": now,
            "expires_at": now + 600,
            "name": "it",
            **payload,
        }
        envelope = sign_envelope(self.key, DEPLOYMENT_TYPE, json.dumps(body).encode())
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
def running_grid(control_plane, start_agent, tmp_path, *agent_args: str, data_dir=None):
    """The coordinator worker and one enrolled agent (started with `agent_args`) online, and a
    user with a registered key; yields (user, agent)."""
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
        )
        nodes = wait_for(
            lambda: [
                n for n in control_plane.get("/api/v1/nodes")["results"] if n["status"] == "online"
            ],
            timeout=30,
            what="the enrolled node to come online",
        )
        key = SigningKey.generate()
        user = User(control_plane, info["api_token"], key, nodes[0]["id"])
        challenge = requests.post(
            f"{control_plane.url}/api/v1/keys/challenge", headers=user.headers, timeout=5
        ).json()
        proof = sign_key_proof(
            key,
            user=challenge["user"],
            challenge=challenge["challenge"],
            issued_at=int(time.time()),
        )
        registered = requests.post(
            f"{control_plane.url}/api/v1/keys",
            json={"name": "laptop", "public_key": public_key_hex(key), "proof": proof},
            headers=user.headers,
            timeout=5,
        )
        assert registered.status_code == 201, registered.text
        yield user, agent
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=10)
        worker_log.close()


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


def test_a_node_that_stops_answering_gets_retries_then_the_job_fails(grid):
    user, agent = grid
    os.kill(agent.process.pid, signal.SIGSTOP)
    try:
        deployment = user.deploy("1")
        done = user.wait_final(deployment["id"], timeout=60)
    finally:
        os.kill(agent.process.pid, signal.SIGCONT)
    assert done["status"] == "failed"
    assert done["job"]["attempt"] == 2
    assert done["job"]["error"].startswith("gave up after 2 attempts")
    assert "retrying" in [e["status"] for e in user.events(deployment["id"])]


def test_the_agent_keeps_its_jobs_across_its_own_restart(grid, start_agent):
    user, agent = grid
    first = user.deploy('"first"')
    assert user.wait_final(first["id"])["status"] == "succeeded"
    assert agent.stop() == 0
    restarted: Agent = start_agent("--ledger", user.plane.url, data_dir=agent.data_dir)
    second = user.deploy('"second"')
    assert user.wait_final(second["id"])["job"]["result"] == "second"
    assert restarted.process.poll() is None
