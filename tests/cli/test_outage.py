"""Following through a control-plane outage, against real processes: daphne is SIGKILLed while
`zos deploy` and `zos logs --follow` watch a job that keeps logging on its node.

What the user must see: `reconnecting…` once per outage and `reconnected` on stderr, every line of
the job exactly once and in order, and the exit code of the job's final state; or, when the
control plane stays away longer than `--wait`, a clear message and exit code 5.
"""

import os
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.conftest import ROOT, wait_for

pytestmark = pytest.mark.integration

ZOS = str(ROOT / "bin" / "zos")
LINES = 16
# Slow enough that the outage falls in the middle of the run, short enough for a test.
SCRIPT = f'for i in 0..{LINES} {{\n    log("line " + i);\n    sleep(500);\n}}\n"done"\n'


@dataclass
class Watcher:
    """A `zos` process whose stdout and stderr are collected line by line as they come."""

    process: subprocess.Popen
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def finish(self, timeout: float = 120) -> int:
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def stopped(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def says(self, text: str) -> bool:
        return any(text in line for line in self.out + self.err)


@pytest.fixture
def cli(grid, tmp_path: Path):
    """Start bin/zos as a user would, logged in with a registered key, in a fresh HOME."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOS_", "XDG_CONFIG"))}
    env.update(HOME=str(home), ZOS_URL=grid.plane.url, PYTHONUNBUFFERED="1")
    watchers: list[Watcher] = []

    def start(*argv: str, stdin: str = "") -> Watcher:
        process = subprocess.Popen(
            [ZOS, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        process.stdin.write(stdin)
        process.stdin.close()
        watchers.append(Watcher(process))
        return watchers[-1]

    login = start("login", "-u", grid.username, "--password-stdin", stdin=grid.password)
    assert login.finish() == 0, login.err
    assert start("keygen").finish() == 0
    register = start("key", "register")
    assert register.finish() == 0, register.err
    yield start
    for watcher in watchers:
        watcher.stopped()


def _line_numbers(out: list[str]) -> list[int]:
    return [int(m.group(1)) for line in out if (m := re.search(r"\bline (\d+)$", line))]


def _deployment_id(watcher: Watcher) -> int:
    first = wait_for(
        lambda: next((x for x in watcher.out if "accepted" in x), None),
        timeout=60,
        what=f"the deployment to be accepted: {watcher.out} {watcher.err}",
    )
    return int(first.split()[1])


def test_deploy_and_logs_follow_ride_out_a_control_plane_restart(grid, cli, tmp_path):
    script = tmp_path / "lines.rhai"
    script.write_text(SCRIPT)
    deploy = cli("deploy", str(script), "--node", str(grid.node))
    deployment = _deployment_id(deploy)
    logs = cli("logs", str(deployment), "--follow")
    wait_for(
        lambda: all(w.says("line 2") for w in (deploy, logs)),
        timeout=60,
        what="both followers to show the first lines",
    )

    grid.plane.kill()
    wait_for(
        lambda: all(any("reconnecting…" in x for x in w.err) for w in (deploy, logs)),
        timeout=60,
        what="both followers to say they are reconnecting",
    )
    grid.plane.start()  # same port, same database

    for watcher in (deploy, logs):
        code = watcher.finish()
        assert code == 0, (watcher.out, watcher.err, grid.agent.log())
        assert _line_numbers(watcher.out) == list(range(LINES)), watcher.out
        assert sum("reconnecting…" in line for line in watcher.err) == 1, watcher.err
        assert "reconnected" in watcher.err, watcher.err
        assert f"deployment {deployment} succeeded" in watcher.out, watcher.out
    assert '"done"' in "\n".join(deploy.out)  # the result came through after the outage


def test_following_gives_up_after_wait_when_the_control_plane_stays_down(grid, cli, tmp_path):
    script = tmp_path / "slow.rhai"
    script.write_text('log("sleeping");\nsleep(60000);\n1\n')
    started = cli("deploy", str(script), "--node", str(grid.node), "--no-follow")
    assert started.finish() == 0, started.err
    deployment = _deployment_id(started)
    logs = cli("logs", str(deployment), "--follow", "--wait", "3")
    wait_for(lambda: logs.says("sleeping"), timeout=60, what="the follower to show the job")

    grid.plane.kill()
    code = logs.finish()
    err = "\n".join(logs.err)
    assert code == 5, (logs.out, logs.err)
    assert err.count("reconnecting…") == 1
    assert f"gave up following deployment {deployment}" in err
    assert "has not answered for 3s" in err
    assert f"zos logs {deployment} --follow" in err
