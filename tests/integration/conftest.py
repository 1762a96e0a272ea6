"""Real processes: the ASGI server (daphne) on loopback and `python -m nodeagent`."""

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from nodeagent.functions.testing import MARKS_FILE, read_marks

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "zos.sqlite3"  # in ZOS_VAR_DIR (grid/settings.py), the planes' DATABASE_URL being unset
# The database of the session's first migrated control plane, which the later ones copy.
_migrated: list[Path] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class ControlPlane:
    """A control plane with its own SQLite database and state directory under tmp."""

    var_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(
            ZOS_VAR_DIR=str(self.var_dir),
            # The ledger URL boot media carry (zos.ledger=): this server, as its nodes reach it.
            ZOS_PUBLIC_URL=self.url,
            ZOS_UPTIME_INTERVAL="2",
            # Fast job timing so retry paths finish within a test.
            ZOS_JOB_ACK_TIMEOUT="3",
            ZOS_JOB_MAX_ATTEMPTS="2",
            ZOS_RETRY_BASE="0.5",
            ZOS_LINK_POLL="0.5",
            # Pings tell a frozen node within seconds; loose enough for a busy test machine.
            ZOS_LINK_PING_INTERVAL="1",
            ZOS_LINK_PING_TIMEOUT="4",
            DJANGO_SETTINGS_MODULE="grid.settings",
            PYTHONUNBUFFERED="1",
            # Scripts may call test_mark (contracts.catalog.TEST_FUNCTIONS): a test grid.
            ZOS_TEST_FUNCTIONS="1",
        )
        return env

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"manage.py {args} failed:\n{result.stderr}"
        return result.stdout

    def migrate(self) -> None:
        """`manage.py migrate` and `createcachetable` into this plane's empty database.

        The suite starts some forty control planes and migrating a fresh SQLite database costs
        each ~5 s of CPU-bound Django start-up on a quiet two-core machine. The session's first
        plane runs both commands; the later ones get a copy of its file, which is the same
        database: the same migrations, and their data migrations find no rows to change.
        """
        database = self.var_dir / DATABASE
        if _migrated:
            _copy_database(_migrated[0], database)
            return
        self.manage("migrate", "--no-input", "-v0")
        self.manage("createcachetable")
        keep = Path(tempfile.mkdtemp(prefix="zos-migrated-"))
        atexit.register(shutil.rmtree, keep, True)
        _copy_database(database, keep / DATABASE)
        _migrated.append(keep / DATABASE)

    def start(self) -> None:
        log = open(self.var_dir / "daphne.log", "ab")  # noqa: SIM115  (closed with the process)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "grid.asgi:application",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self._answers, timeout=30, what="the control plane to answer")

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/api/v1/farms", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def get(self, path: str, **kwargs) -> dict:
        response = requests.get(self.url + path, timeout=5, **kwargs)
        response.raise_for_status()
        return response.json()


def _copy_database(source: Path, dest: Path) -> None:
    """SQLite's online backup: a consistent copy even if the source still has a WAL beside it."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(dest)) as dst,
    ):
        src.backup(dst)


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(var_dir=tmp_path / "var")
    plane.var_dir.mkdir()
    plane.migrate()
    plane.start()
    yield plane
    plane.kill()


@dataclass
class Agent:
    process: subprocess.Popen
    data_dir: Path
    log_path: Path
    args: tuple[str, ...] = ()  # what it was started with, to start it again

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def marks(self) -> list[tuple[str, str, bool]]:
        """What scripts' test_mark calls wrote: (job id, key, is a repeat)."""
        return read_marks(self.data_dir / MARKS_FILE)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    agents: list[Agent] = []

    def start(
        *args: str,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        wrap: tuple[str, ...] = (),
    ) -> Agent:
        """`python -m nodeagent run` with `args`; `wrap` goes before it (`ip netns exec NS`,
        `faketime`), `env` on top of ours."""
        data = data_dir or tmp_path / f"node{len(agents)}"
        log_path = tmp_path / f"agent{len(agents)}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [*wrap, sys.executable, "-m", "nodeagent", "run", "--data", str(data), *args],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    "ZOS_TEST_FUNCTIONS": "1",
                    **(env or {}),
                },
            )
        agent = Agent(process, data, log_path, args)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        if agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait(timeout=10)


# Both commands in one Django start-up (each manage.py run costs one; this runs ~40 times).
BOOTSTRAP = """
import io, json
from django.core.management import call_command
out = io.StringIO()
call_command("bootstrap_local", stdout=out)
info = json.loads(out.getvalue())
out = io.StringIO()
call_command("drf_create_token", info["username"], stdout=out)
info["api_token"] = out.getvalue().split()[2]
print(json.dumps(info))
"""


def bootstrap(plane: ControlPlane) -> dict:
    """Operator, farm and token through the same command scripts/up uses, plus an API token."""
    return json.loads(plane.manage("shell", "-v0", "-c", BOOTSTRAP))
