"""`bin/zos` as a user runs it, against real processes: daphne, the coordinator worker, an agent.

One story, in order: log in, make and register a key, find the node, validate and deploy the
example, read it back; then the paths that end otherwise: a script error, a cancel, a timeout.
"""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import ROOT, wait_for

pytestmark = pytest.mark.integration

ZOS = str(ROOT / "bin" / "zos")
EXAMPLE = str(ROOT / "examples" / "hello.rhai")


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def zos(grid, tmp_path: Path):
    """Run bin/zos in a subprocess with a fresh HOME and nothing from the caller's ZOS_* setup."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOS_", "XDG_CONFIG"))}
    env.update(HOME=str(home), ZOS_URL=grid.plane.url, PYTHONUNBUFFERED="1")

    def run(*argv: str, stdin: str = "", timeout: float = 90) -> Run:
        done = subprocess.run(
            [ZOS, *argv],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    return run


def _script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _deployment_id(out: str) -> int:
    return int(out.split("deployment ", 1)[1].split()[0])


def test_user_story_from_login_to_result(grid, zos, tmp_path):
    logged_in = zos("login", "--username", grid.username, "--password-stdin", stdin=grid.password)
    assert logged_in.code == 0, logged_in.err
    assert zos("keygen", "--name", "laptop").code == 0
    registered = zos("key", "register", "--name", "laptop")
    assert registered.code == 0, registered.err
    keys = zos("key", "list")
    assert "laptop" in keys.out and "active" in keys.out

    nodes = zos("nodes", "--status", "online")
    assert nodes.code == 0, nodes.err
    assert str(grid.node) in nodes.out.splitlines()[1].split()[0]

    validated = zos("validate", EXAMPLE)
    assert validated.code == 0, validated.err
    assert "node_info" in validated.out

    deployed = zos(
        "deploy", EXAMPLE, "--node", str(grid.node), "--key", "laptop", "--timeout", "60"
    )
    assert deployed.code == 0, (deployed.out, deployed.err, grid.agent.log())
    out = deployed.out
    for expected in ("queued", "running", "| hello from a ZOS node", "| step 3 of 3", "succeeded"):
        assert expected in out, out
    assert out.index("| hello from a ZOS node") < out.index("| step 3 of 3")
    result = json.loads(out[out.index("result:") + len("result:") :])
    assert result["greeting"] == "hello"
    assert result["seconds"] >= 3

    deployment = _deployment_id(out)
    detail = json.loads(zos("status", str(deployment), "--json").out)
    assert detail["status"] == "succeeded"
    assert detail["job"]["result"]["greeting"] == "hello"
    rows = [line.split()[:3] for line in zos("status").out.splitlines()[1:]]
    assert [str(deployment), "hello", "succeeded"] in rows
    logs = zos("logs", str(deployment))
    assert "| step 2 of 3" in logs.out


def test_refusals_cancel_and_timeout(grid, zos, tmp_path):
    assert zos("login", "-u", grid.username, "--password-stdin", stdin=grid.password).code == 0
    assert zos("keygen").code == 0

    unregistered = zos("deploy", EXAMPLE, "--node", str(grid.node))
    assert unregistered.code == 1
    assert "zos key register" in unregistered.err
    assert zos("key", "register").code == 0

    broken = _script(tmp_path, "broken.rhai", 'log("a");\nlet x = 1 +;\n')
    refused = zos("deploy", broken, "--node", str(grid.node))
    assert refused.code == 1
    assert f"{broken}:2:" in refused.err and "syntax error" in refused.err
    assert zos("validate", broken).code == 1

    unknown = _script(tmp_path, "unknown.rhai", "rm_rf();\n")
    assert "functions: rm_rf" in zos("deploy", unknown, "--node", "999999").err
    assert "unknown_node" in zos("deploy", EXAMPLE, "--node", "999999").err

    slow = _script(tmp_path, "slow.rhai", 'log("sleeping");\nsleep(60000);\n1\n')
    started = zos("deploy", slow, "--node", str(grid.node), "--no-follow")
    assert started.code == 0, started.err
    slow_id = _deployment_id(started.out)
    wait_for(
        lambda: "sleeping" in zos("logs", str(slow_id)).out,
        timeout=30,
        what="the slow script to start",
    )
    timed_out = zos("logs", str(slow_id), "--follow", "--timeout", "1")
    assert timed_out.code == 4
    assert f"zos cancel {slow_id}" in timed_out.err
    cancelled = zos("cancel", str(slow_id))
    assert cancelled.code == 0, cancelled.err
    followed = zos("logs", str(slow_id), "--follow", "--timeout", "30")
    assert followed.code == 3, (followed.out, followed.err)
    assert "cancelled" in followed.out
    again = zos("cancel", str(slow_id))
    assert again.code == 1 and "already_finished" in again.err
