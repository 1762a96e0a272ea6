"""`scripts/up` as a user runs it, with one component SIGKILLed under it and then a Ctrl-C.

What must hold: the dead component is named and comes back (a new process, same command), the
control plane and the node keep answering, a deployment submitted before the kill still succeeds,
and after Ctrl-C every process the box started is gone.
"""

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import ROOT, free_port, wait_for

pytestmark = pytest.mark.integration

SLOW = 'log("working");\nsleep(8000);\nlog("still here");\n"done"\n'


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> dict[int, str]:
    """Every live process under `root`, by pid, with its command line."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (ppid := _ppid(int(entry))) is not None:
            parents[int(entry)] = ppid
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = cmdline(pid)
                frontier.append(pid)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Up:
    process: subprocess.Popen
    var_dir: Path
    url: str
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def zos(self, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """The CLI exactly as scripts/up set it up for the operator."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOS_", "XDG_CONFIG"))}
        env.update(XDG_CONFIG_HOME=str(self.var_dir / "cli"), PYTHONUNBUFFERED="1")
        return subprocess.run(
            [str(ROOT / "bin" / "zos"), *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )


@contextlib.contextmanager
def running_up(var_dir: Path, *args: str) -> Iterator[Up]:
    """scripts/up in its own session on a free port with this state directory; killed with
    everything it started when the test ends (a test that stopped it cleanly leaves nothing)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOS_", "DATABASE_URL"))}
    env.update(ZOS_PORT=str(port), ZOS_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "up"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as in a terminal of its own
    )
    box = Up(process, var_dir, f"http://127.0.0.1:{port}")
    reader = threading.Thread(
        target=lambda: box.lines.extend(line.rstrip("\n") for line in process.stdout),
        daemon=True,
    )
    reader.start()
    seen: dict[int, str] = {}
    try:
        yield box
    finally:
        if process.poll() is None:
            seen = descendants(process.pid)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        for pid in seen:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    with running_up(tmp_path / "var") as box:
        yield box


def _nodes(url: str) -> list[dict]:
    try:
        return requests.get(f"{url}/api/v1/nodes", timeout=5).json()["results"]
    except (requests.RequestException, ValueError):
        return []


def _running(up: Up, command: str) -> list[int]:
    return [pid for pid, cmd in descendants(up.process.pid).items() if cmd == command]


def test_a_killed_component_is_named_and_restarted_and_ctrl_c_leaves_nothing(up, tmp_path):
    wait_for(lambda: "ZOS is running" in up.output, timeout=240, what=f"scripts/up: {up.lines}")
    assert "installing" not in up.output  # everything is present: setup does nothing
    [node] = wait_for(
        lambda: [n for n in _nodes(up.url) if n["status"] == "online"],
        timeout=60,
        what="the local node to be online",
    )
    assert f"deploy examples/hello.rhai --node {node['id']}" in up.output
    demo_password = (up.var_dir / "demo-password").read_text()
    assert f"{up.url}/   sign in as demo / {demo_password} (a user)" in up.output

    script = tmp_path / "slow.rhai"
    script.write_text(SLOW)
    submitted = up.zos("deploy", str(script), "--node", str(node["id"]), "--no-follow")
    assert submitted.returncode == 0, (submitted.stdout, submitted.stderr)
    deployment = submitted.stdout.split()[1]
    wait_for(
        lambda: "working" in up.zos("logs", deployment).stdout,
        timeout=60,
        what="the deployment to be running",
    )

    [(monitor, command)] = [
        (pid, cmd) for pid, cmd in descendants(up.process.pid).items() if "ledger_monitor" in cmd
    ]
    os.kill(monitor, signal.SIGKILL)
    wait_for(
        lambda: "ledger-monitor exited (signal 9); restarting in 1 s" in up.output,
        timeout=30,
        what=f"scripts/up to name the dead component: {up.lines[-5:]}",
    )
    wait_for(
        lambda: set(_running(up, command)) - {monitor},
        timeout=30,
        what="the ledger monitor to run again",
    )

    followed = up.zos("logs", deployment, "--follow", "--timeout", "120")
    assert followed.returncode == 0, (followed.stdout, followed.stderr)
    assert "still here" in followed.stdout
    assert [n["status"] for n in _nodes(up.url) if n["id"] == node["id"]] == ["online"]
    assert "a component exited" not in up.output and "stopping" not in up.output

    everything = descendants(up.process.pid)
    assert any("daphne" in c for c in everything.values())
    assert any("redis-server" in c for c in everything.values())
    os.killpg(up.process.pid, signal.SIGINT)  # what Ctrl-C at its terminal sends
    assert up.process.wait(timeout=60) == 0, up.lines[-10:]
    wait_for(
        lambda: not any(alive(pid) for pid in everything),
        timeout=30,
        what=f"every process to be gone: {[everything[p] for p in everything if alive(p)]}",
    )
    assert "stopped" in up.output
