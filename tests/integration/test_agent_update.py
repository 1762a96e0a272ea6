"""Agent updates end to end: a real control plane, a real agent under the launcher.

The operator publishes a release and the agent moves to it (the ledger shows the new version);
a release that crashes on start is rolled back by the launcher (and the launcher's account of it
is in the node's log ring, for the operator's page); a release whose signature does not verify
is refused, and both failures show in the node's health flags.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent import __version__ as BUILTIN_VERSION
from nodeagent.config import STATE_FILE
from nodeagent.jobstore import connect
from nodeagent.logring import tail
from tests.integration.conftest import ROOT, bootstrap, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FORGE_SIGNATURE = """
from nacl.signing import SigningKey
from ledger.models import AgentRelease
from contracts.payload_types import RELEASE_TYPE
from signing.dsse import sign_envelope
import base64
release = AgentRelease.objects.get(version="{version}")
payload = base64.b64decode(release.envelope["payload"])
release.envelope = sign_envelope(SigningKey.generate(), RELEASE_TYPE, payload)
release.save()
"""
WANT = "from ledger.models import Farm; Farm.objects.update(desired_agent_version={version!r})"


@pytest.fixture
def launched(control_plane, tmp_path) -> Iterator[tuple[dict, Path, Path, subprocess.Popen]]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    info = bootstrap(control_plane)
    data = tmp_path / "node"
    log_path = tmp_path / "launcher.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nodeagent.launcher",
                "--deadline",
                "30",
                "run",
                "--ledger",
                control_plane.url,
                "--farm",
                str(info["farm"]),
                "--enroll",
                info["token"],
                "--data",
                str(data),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    yield info, data, log_path, process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def node_of(plane) -> dict | None:
    nodes = plane.get("/api/v1/nodes")["results"]
    return nodes[0] if nodes else None


def failed(data: Path) -> dict:
    path = data / "agent" / "failed.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_agent_moves_to_a_release_rolls_back_a_broken_one_and_refuses_a_forged_one(
    control_plane, launched, tmp_path
):
    _info, data, log_path, launcher = launched
    node = wait_for(
        lambda: (n := node_of(control_plane)) and n["status"] == "online" and n,
        timeout=40,
        what="the enrolled node to be online",
    )
    assert node["agent_version"] == BUILTIN_VERSION
    node_path = f"/api/v1/nodes/{node['id']}"

    # 1. A good release: the agent installs it, restarts into it and re-registers with it.
    control_plane.manage("publish_release", "--version", "0.9.1", "--farm", "all")
    wait_for(
        lambda: control_plane.get(node_path)["agent_version"] == "0.9.1",
        timeout=60,
        what="the node to run agent 0.9.1",
    )
    home = data / "agent"
    assert os.readlink(home / "current") == "releases/0.9.1"
    wait_for(lambda: not (home / "trial").exists(), timeout=30, what="0.9.1 to be confirmed")
    assert control_plane.get(node_path)["health"] == []

    # 2. A release that crashes on start: the launcher rolls back to 0.9.1 by itself.
    broken = tmp_path / "broken"
    for package in ("nodeagent", "contracts", "signing", "rhai", "sal"):
        shutil.copytree(ROOT / package, broken / package, ignore=shutil.ignore_patterns("*.pyc"))
    with open(broken / "nodeagent" / "agent.py", "a") as agent:
        agent.write('\nraise RuntimeError("this release is broken")\n')
    control_plane.manage(
        "publish_release", "--version", "0.9.2", "--source", str(broken), "--farm", "all"
    )
    wait_for(lambda: "0.9.2" in failed(data), timeout=60, what="0.9.2 to be rolled back")
    assert failed(data)["0.9.2"]["flag"] == "agent_rollback"
    assert os.readlink(home / "current") == "releases/0.9.1"
    wait_for(
        lambda: control_plane.get(node_path)["health"] == ["agent_rollback"],
        timeout=30,
        what="the node to report the rollback",
    )
    assert control_plane.get(node_path)["agent_version"] == "0.9.1"
    assert control_plane.get(node_path)["status"] == "degraded"
    # The launcher logged the rollback while no agent (and so no Redis) ran; it reached the ring.
    ring = connect(json.loads((data / STATE_FILE).read_text())["redis"])
    wait_for(
        lambda: any(
            "agent 0.9.2 failed" in e["line"] and "rolled back to 0.9.1" in e["line"]
            for e in tail(ring, lines=1000)["lines"]
            if e["source"] == "launcher"
        ),
        timeout=30,
        what="the launcher's rollback line in the node's log ring",
    )

    # 3. A release whose signature is not the ledger's release key: refused, not installed.
    control_plane.manage("publish_release", "--version", "0.9.3")
    control_plane.manage("shell", "-c", FORGE_SIGNATURE.format(version="0.9.3"))
    control_plane.manage(
        "shell",
        "-c",
        "from ledger.models import Farm; Farm.objects.update(desired_agent_version='0.9.3')",
    )
    wait_for(lambda: "0.9.3" in failed(data), timeout=30, what="0.9.3 to be refused")
    assert failed(data)["0.9.3"]["flag"] == "agent_update_refused"
    assert "signature" in failed(data)["0.9.3"]["reason"]
    assert not (home / "releases" / "0.9.3").exists()
    wait_for(
        lambda: control_plane.get(node_path)["health"] == ["agent_update_refused"],
        timeout=30,
        what="the node to report the refusal",
    )
    assert os.readlink(home / "current") == "releases/0.9.1"
    assert launcher.poll() is None
    log = log_path.read_text(errors="replace")
    assert "this release is broken" in log
    assert "refused" in log
