"""The box's local node host (box/node_host.py): a real btrfs pool on a loop device and a real
network namespace, made on the first start, found again on the next, grown when asked, taken
apart on stop; and, on a machine where that is impossible, a node without them and the reason."""

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from box.node_host import GIB, POOL_FILE, NodeHost, attached_loop, namespace_for
from sal import net
from tests.integration.conftest import ROOT, wait_for
from tests.sal.conftest import net_required, netns_factory, storage_missing  # noqa: F401


@pytest.fixture
def var_dir() -> Iterator[Path]:
    reason = storage_missing()
    if reason:
        pytest.skip(reason)
    path = Path(tempfile.mkdtemp(prefix="nh-", dir="/tmp"))
    yield path
    leftovers = NodeHost(path, pool_gb=0, say=lambda _text: None)
    if net.netns_exists(namespace_for(path)):
        leftovers.netns = namespace_for(path)
    leftovers.release()
    subprocess.run(["rm", "-rf", str(path)], check=False)


def _mounted(path: Path) -> bool:
    return subprocess.run(["mountpoint", "-q", str(path)], check=False).returncode == 0


def test_the_pool_and_namespace_are_made_kept_grown_and_taken_apart(var_dir):
    said: list[str] = []
    host = NodeHost(var_dir, pool_gb=2, say=said.append).prepare()
    assert host.notes == []
    assert host.pool == var_dir / "pool" and _mounted(host.pool)
    assert host.netns == namespace_for(var_dir) and net.netns_exists(host.netns)
    assert host.agent_args()[:4] == ["--storage", str(host.pool), "--workload-netns", host.netns]
    (host.pool / "kept").write_text("from the first start")
    # a process the node left behind in its namespace (a VM, say) is stopped on release
    sleeper = subprocess.Popen(["ip", "netns", "exec", host.netns, "sleep", "600"])
    host.start_flush()  # as the box's stop begins: the pool's writes go out meanwhile
    assert host.flushing is not None
    host.release()
    assert sleeper.wait(timeout=30) != 0
    assert host.flushing is None  # waited for: it held the pool open
    # what the stop waited for, and how long, is said
    assert f"unmounting {var_dir / 'pool'} (writes out what the node's VMs left)" in said
    assert any(line.startswith("node host released in ") for line in said)
    assert not _mounted(var_dir / "pool") and attached_loop(var_dir / POOL_FILE) is None
    assert not net.netns_exists(namespace_for(var_dir))

    again = NodeHost(var_dir, pool_gb=3, say=said.append).prepare()
    assert (again.pool / "kept").read_text() == "from the first start"
    assert (var_dir / POOL_FILE).stat().st_size == 3 * GIB
    shown = subprocess.run(
        ["btrfs", "filesystem", "show", "--raw", str(again.pool)], capture_output=True, text=True
    ).stdout
    assert f"size {3 * GIB} " in shown, shown
    assert any("growing the node's pool" in line for line in said)
    again.release()
    assert attached_loop(var_dir / POOL_FILE) is None


def test_a_namespace_copied_elsewhere_meanwhile_does_not_keep_the_pool_attached(
    var_dir,
    netns_factory,  # noqa: F811
):
    """Any `ip netns exec` on the machine copies the mount table (QEMU's of another node, say);
    the copy must not keep the pool's file system, and so its loop device, alive."""
    host = NodeHost(var_dir, pool_gb=2, say=lambda _text: None).prepare()
    bystander = subprocess.Popen(["ip", "netns", "exec", netns_factory(), "sleep", "600"])
    try:
        wait_for(
            lambda: f"{var_dir}/pool" in Path(f"/proc/{bystander.pid}/mountinfo").read_text(),
            timeout=10,
            what="the bystander's copy of the mount table",
        )
        host.release()
        assert attached_loop(var_dir / POOL_FILE) is None
        copied = Path(f"/proc/{bystander.pid}/mountinfo").read_text().splitlines()
        assert not [line for line in copied if f"{var_dir}/pool" in line and "btrfs" in line]
    finally:
        bystander.kill()
        bystander.wait()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory an unprivileged user may write in (pytest's own are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="nh-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def test_without_root_the_node_runs_without_a_pool_and_says_why(open_dir):
    if os.geteuid() != 0:
        pytest.skip("runs itself as an unprivileged user, which needs root")
    probe = (
        "import json, pathlib, sys\n"
        "from box.node_host import NodeHost\n"
        "host = NodeHost(pathlib.Path(sys.argv[1]), pool_gb=2, say=lambda _t: None).prepare()\n"
        "print(json.dumps({'args': host.agent_args(), 'notes': host.notes}))\n"
        "host.release()\n"
    )
    done = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
         "-c", probe, str(open_dir / "var")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["args"] == []
    pool_note, netns_note = answer["notes"]
    assert pool_note.startswith("the local node has no workload pool: not running as root")
    assert "examples/hello.rhai" in pool_note
    assert "share the host's network namespace: not running as root" in netns_note
    assert not (open_dir / "var" / POOL_FILE).exists()
