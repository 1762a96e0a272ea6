"""`scripts/up --node-image` as a user runs it: the local node is the node image booted under
QEMU, it joins the farm by itself, a deployment runs on it, and Ctrl-C leaves nothing behind.

Slow (the image build, then a boot under TCG): minutes, bounded by the deadlines below.
"""

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.box.test_up import Up, _nodes, alive, descendants
from tests.integration.conftest import ROOT, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

START_TIMEOUT = 1200  # build (cached after the first) + boot to registered under TCG


@pytest.fixture
def up_node_image(tmp_path: Path) -> Iterator[Up]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOS_", "DATABASE_URL"))}
    env.update(ZOS_PORT=str(port), ZOS_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "up"), "--node-image"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    box = Up(process, tmp_path / "var", f"http://127.0.0.1:{port}")
    reader = threading.Thread(
        target=lambda: box.lines.extend(line.rstrip("\n") for line in process.stdout),
        daemon=True,
    )
    reader.start()
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


def test_the_local_node_is_the_node_image_under_qemu(up_node_image: Up, tmp_path: Path):
    up = up_node_image
    wait_for(
        lambda: "ZOS is running" in up.output or up.process.poll() is not None,
        timeout=START_TIMEOUT,
        what="scripts/up --node-image to print its banner",
        every=1,
    )
    assert "ZOS is running" in up.output, up.lines[-30:]
    [node] = [n for n in _nodes(up.url) if n["status"] == "online"]
    assert f"booted from {ROOT / 'build'} under QEMU" in up.output
    assert f"deploy examples/hello.rhai --node {node['id']}" in up.output
    assert node["virtualized"] is True
    console = (up.var_dir / "log" / "node.log").read_text(errors="replace")
    assert "storage: /dev/vda is empty: making it a btrfs pool" in console
    assert f"registered as node {node['id']} (online)" in console

    # The only QEMU is the node's, and its only way out is the control plane on loopback.
    everything = descendants(up.process.pid)
    [qemu] = [c for c in everything.values() if c.startswith("qemu-system-x86_64")]
    port = up.url.rsplit(":", 1)[1]
    forward = f"guestfwd=tcp:10.0.2.100:8000-cmd:socat - TCP:127.0.0.1:{port}"
    assert f"user,id=net0,restrict=on,{forward}" in qemu
    assert "hostfwd" not in qemu

    script = tmp_path / "hello.rhai"
    script.write_text('log("hello from the image");\n')
    done = up.zos("deploy", str(script), "--node", str(node["id"]), timeout=600)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "hello from the image" in done.stdout

    os.killpg(up.process.pid, signal.SIGINT)  # Ctrl-C
    assert up.process.wait(timeout=90) == 0, up.lines[-10:]
    wait_for(
        lambda: not any(alive(pid) for pid in everything),
        timeout=30,
        what=f"every process to be gone: {[everything[p] for p in everything if alive(p)]}",
    )
    assert "pressing the node's power button" in (up.var_dir / "log" / "node.log").read_text()
