"""The production profile, started by the same box code `scripts/up --production` runs
(box/production.py): real PostgreSQL, control-plane Redis, two daphne workers behind HAProxy, two
coordinator workers, the ledger monitor and a real node agent, in a directory under /tmp."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from nacl.signing import SigningKey

from box import production
from box.grid import ROOT, ProductionSettings, free_port
from box.supervisor import Supervisor
from contracts.key_proof import sign_key_proof
from signing.keys import public_key_hex
from tests.integration.conftest import wait_for

# Link timings tight enough for a test, loose enough for a busy 2-core machine.
FAST_LINKS = {
    "ZOS_LINK_POLL": "0.5",
    "ZOS_LINK_PING_INTERVAL": "1",
    "ZOS_LINK_PING_TIMEOUT": "4",
    "ZOS_LOG_LEVEL": "WARNING",
}


@dataclass
class Profile:
    settings: ProductionSettings
    supervisor: Supervisor
    thread: threading.Thread
    output: list[str]

    def pid(self, name: str) -> int:
        """The current process of a component (asgi-1, haproxy, postgres, node, ...)."""
        for entry in self.supervisor.running:
            if entry.component.name == name and entry.process is not None:
                return entry.process.pid
        raise KeyError(name)

    def haproxy(self, command: str) -> str:
        """A command to HAProxy's runtime API (its admin socket)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.settings.haproxy_socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def sessions(self) -> dict[str, int]:
        """Current sessions HAProxy holds per ASGI worker (a node link is one, held open)."""
        lines = self.haproxy("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            row["svname"]: int(row["scur"])
            for row in rows
            if row.get("pxname") == "asgi" and row["svname"].startswith("asgi-")
        }

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**os.environ, **self.settings.env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def stop(self) -> None:
        self.supervisor.stop()
        self.thread.join(timeout=90)


class _Lines:
    """The supervisor's messages, kept for assertions and failure reports."""

    def __init__(self, into: list[str]) -> None:
        self.into = into

    def write(self, text: str) -> None:
        self.into.extend(line for line in text.splitlines() if line)

    def flush(self) -> None:
        pass


@pytest.fixture(scope="module")
def profile() -> Iterator[Profile]:
    # Not pytest's tmp_path: that is private to root, and PostgreSQL runs as `postgres`.
    var_dir = Path(tempfile.mkdtemp(prefix="zos-production-"))
    var_dir.chmod(0o755)
    settings = ProductionSettings(free_port(), var_dir, extra_env=FAST_LINKS)
    supervisor, then = production.supervisor(settings)
    output: list[str] = []
    supervisor.out = _Lines(output)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.serve(then)), daemon=True)
    thread.start()
    up = Profile(settings, supervisor, thread, output)
    try:
        wait_for(
            lambda: any("all components are up" in line for line in output) or result,
            timeout=150,
            what="the production profile to start",
        )
        assert not result, "\n".join(output)
        yield up
    finally:
        up.stop()
        shutil.rmtree(var_dir, ignore_errors=True)


@dataclass
class Owner:
    """The operator as an API client: token, a registered signing key, the local node."""

    token: str
    key: SigningKey
    node: int

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Token {self.token}"}


@pytest.fixture(scope="module")
def owner(profile: Profile) -> Owner:
    boot = json.loads((profile.settings.var_dir / "bootstrap.json").read_text())
    token = profile.manage("drf_create_token", boot["username"]).split()[2]
    url = profile.settings.url
    node = wait_for(
        lambda: [
            n["id"]
            for n in requests.get(f"{url}/api/v1/nodes", timeout=5).json()["results"]
            if n["status"] == "online"
        ],
        timeout=60,
        what="the local node to come online",
    )[0]
    key = SigningKey.generate()
    headers = {"Authorization": f"Token {token}"}
    challenge = requests.post(f"{url}/api/v1/keys/challenge", headers=headers, timeout=5).json()
    proof = sign_key_proof(
        key, user=challenge["user"], challenge=challenge["challenge"], issued_at=int(time.time())
    )
    registered = requests.post(
        f"{url}/api/v1/keys",
        json={"name": "tests", "public_key": public_key_hex(key), "proof": proof},
        headers=headers,
        timeout=5,
    )
    assert registered.status_code == 201, registered.text
    return Owner(token, key, node)
