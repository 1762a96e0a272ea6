"""Fixtures for the CLI's end-to-end test: a real control plane, coordinator worker and agent.

The control plane and agent fixtures are the integration suite's own (imported, not copied), so
the CLI is tested against exactly what that suite starts.
"""

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import (  # noqa: F401  (fixtures are found by name)
    ROOT,
    Agent,
    ControlPlane,
    bootstrap,
    control_plane,
    start_agent,
    wait_for,
)


@dataclass
class Grid:
    plane: ControlPlane
    agent: Agent
    node: int
    username: str
    password: str


@pytest.fixture
def grid(control_plane, start_agent, tmp_path: Path) -> Iterator[Grid]:  # noqa: F811
    """Control plane, coordinator worker and one enrolled, online agent."""
    info = bootstrap(control_plane)
    with open(tmp_path / "coordinator.log", "ab") as worker_log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "coordinator", "--every", "0.2"],
            cwd=ROOT,
            env=control_plane.env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
    agent = start_agent(
        "--ledger", control_plane.url, "--farm", str(info["farm"]), "--enroll", info["token"]
    )
    online = wait_for(
        lambda: [
            n for n in control_plane.get("/api/v1/nodes")["results"] if n["status"] == "online"
        ],
        timeout=30,
        what="the enrolled node to come online",
    )
    yield Grid(control_plane, agent, online[0]["id"], info["username"], info["password"])
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)
