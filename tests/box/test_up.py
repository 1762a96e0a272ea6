"""`scripts/up` as a user runs it, in its own session as in a terminal, and what ran under it.

The scenarios themselves share their starts of the box: a component SIGKILLed under it, the VM
examples, a second start and each Ctrl-C are tests/box/test_grid_in_a_box.py; the node image as
the local node is tests/box/test_up_node_image.py. (A box of its own for the killed component
cost CI one more start and stop of the whole grid.)
"""

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.integration.conftest import ROOT, free_port


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


def _interruptible() -> None:
    """In the child: SIGINT and SIGQUIT as a terminal's shell has them. pytest started in the
    background by a script inherits them ignored, and a shell cannot trap a signal ignored on
    entry: scripts/up would miss its Ctrl-C and report its supervisor gone instead."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@contextlib.contextmanager
def running_up(var_dir: Path, *args: str, settings: dict[str, str] | None = None) -> Iterator[Up]:
    """scripts/up in its own session on a free port with this state directory (and these ZOS_
    settings in its environment); killed with everything it started when the test ends (a test
    that stopped it cleanly leaves nothing)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOS_", "DATABASE_URL"))}
    env.update(settings or {})
    env.update(ZOS_PORT=str(port), ZOS_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "up"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as in a terminal of its own
        preexec_fn=_interruptible,
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


def _nodes(url: str) -> list[dict]:
    try:
        return requests.get(f"{url}/api/v1/nodes", timeout=5).json()["results"]
    except (requests.RequestException, ValueError):
        return []


def _running(up: Up, command: str) -> list[int]:
    return [pid for pid, cmd in descendants(up.process.pid).items() if cmd == command]
