"""The grid in a box as a newcomer runs it: `scripts/up`, the printed VM command, Ctrl-C, again.

Real parts throughout: scripts/up builds (or finds cached in build/images) the debian-12 image
and publishes it to the hub with the operator's CLI; the local node gets a btrfs pool on a loop
device and a network namespace; `zos deploy examples/vm.rhai` makes the node fetch the image
from the hub and boot it under QEMU (TCG here) with its tap on the node's bridge in that
namespace. The guest answers ping there. Ctrl-C stops everything and leaves no QEMU, mount,
loop device, tap or namespace. A second start resumes the same grid: no rebuild, no upload, the
VMs run again; examples/three-vms.rhai and delete-all.rhai do what they say. The local node is
the box's gateway: examples/vm-web.rhai boots a VM serving a page and puts it on a name under
gw.localhost, `curl` through Caddy in the node's namespace shows the page, and deleting the name
stops the forwarding. The second Ctrl-C also leaves nothing, no Caddy either.

The first start is also where a component is SIGKILLed under scripts/up (it was a box of its
own, started once more per run): the dead component is named and comes back (a new process, the
same command), the control plane and the node keep answering, and a deployment submitted before
the kill still succeeds.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from box.node_host import POOL_DIR, POOL_FILE, NodeHost, attached_loop, namespace_for
from sal import net
from tests.box.test_up import Up, _nodes, _running, alive, cmdline, descendants, running_up
from tests.integration.conftest import ROOT, wait_for

STOP_TIMEOUT = 300  # see _stop
START_TIMEOUT = 900  # a first start on a fresh machine builds the image (about a minute here)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu"),
    # A first start on a fresh machine builds the image, then two starts with VMs under TCG.
    pytest.mark.timeout(2 * START_TIMEOUT),
]
EXAMPLES = ROOT / "examples"
ADDRESS = re.compile(r"the guest is up: ssh root@([0-9a-f:]+)")
SITE = "site.gw.localhost"
PAGE = "<h1>Hello from site, a VM on the grid</h1>"
SLOW = 'log("working");\nsleep(8000);\nlog("still here");\n"done"\n'


@pytest.fixture
def var_dir() -> Iterator[Path]:
    """Short on purpose: the VMs' QMP socket paths under it must fit in 107 bytes. Whatever a
    failed test left (a box killed before its cleanup) is taken apart afterwards."""
    path = Path(tempfile.mkdtemp(prefix="gb-", dir="/tmp"))
    yield path
    leftovers = NodeHost(path, pool_gb=0, say=lambda _text: None)
    if net.netns_exists(namespace_for(path)):
        leftovers.netns = namespace_for(path)
    leftovers.release()
    shutil.rmtree(path, ignore_errors=True)


def _host_links() -> set[str]:
    return {link.name for link in net.list_links()}


def _ping6(netns: str, address: str) -> bool:
    argv = ["ip", "netns", "exec", netns, "busybox", "ping", "-6", "-c", "1", "-W", "2", address]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def _started(up: Up) -> str:
    """Wait for scripts/up to say the grid runs; return the node id it printed."""
    wait_for(
        lambda: "ZOS is running" in up.output or up.process.poll() is not None,
        timeout=START_TIMEOUT,
        what="scripts/up to start the grid",
    )
    assert "ZOS is running" in up.output, up.output[-4000:]
    found = re.search(r"deploy examples/vm\.rhai --node (\d+)", up.output)
    assert found, f"scripts/up printed no VM command:\n{up.output[-3000:]}"
    return found.group(1)


def _stop(up: Up) -> dict[int, str]:
    """Ctrl-C at its terminal; returns what ran under it, all of which must be gone."""
    everything = descendants(up.process.pid)
    os.killpg(up.process.pid, signal.SIGINT)  # what Ctrl-C at its terminal sends
    try:
        # Generous: unmounting the pool writes the VMs' dirty pages out, which on a loaded CI
        # disk took longer than 120 s once; a stop that hangs still fails, with what it did.
        status = up.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        still = descendants(up.process.pid)
        raise AssertionError(
            f"scripts/up still stopping after {STOP_TIMEOUT} s: {up.lines[-25:]}, {still}"
        ) from None
    assert status == 0, up.lines[-15:]
    return everything


def _assert_nothing_left(var_dir: Path, everything: dict[int, str], qemu_pids: list[int]) -> None:
    netns = namespace_for(var_dir)
    left = [everything[pid] for pid in everything if alive(pid)]
    assert left == [], f"processes outlived scripts/up: {left}"
    # daemonized ones (QEMU, databases) are no longer under it: look at every process
    strays = [
        cmd
        for pid, cmd in ((int(e), cmdline(int(e))) for e in os.listdir("/proc") if e.isdigit())
        if f"{var_dir}/" in cmd and alive(pid) and pid != os.getpid()
    ]
    assert strays == [], f"processes of the box outlived it: {strays}"
    assert not any(alive(pid) for pid in qemu_pids), "a VM outlived scripts/up"
    assert attached_loop(var_dir / POOL_FILE) is None, "the pool's loop device is still attached"
    assert subprocess.run(["mountpoint", "-q", str(var_dir / POOL_DIR)]).returncode != 0
    assert not net.netns_exists(netns), f"namespace {netns} is still there"
    assert not any(name.startswith("zt") for name in _host_links()), "a VM tap on the host"


def _through_gateway(netns: str) -> str:
    """What `curl http://site.gw.localhost/` gets from inside the node's namespace (where the
    box's Caddy listens on port 80); "" when nothing answers."""
    argv = ["ip", "netns", "exec", netns, "curl", "-s", "-m", "5"]
    argv += ["--resolve", f"{SITE}:80:127.0.0.1", f"http://{SITE}/"]
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def _qemu_pids(var_dir: Path) -> list[int]:
    return [int(p.read_text()) for p in (var_dir / "node" / "vms").glob("*/qemu.pid")]


def _kill_a_component_under_a_deployment(up: Up, node: str) -> None:
    """SIGKILL the ledger monitor while a deployment runs: scripts/up names it and starts it
    again, and the deployment, the control plane and the node carry on."""
    script = up.var_dir / "slow.rhai"
    script.write_text(SLOW)
    submitted = up.zos("deploy", str(script), "--node", node, "--no-follow")
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
    assert [n["status"] for n in _nodes(up.url) if str(n["id"]) == node] == ["online"]
    assert "a component exited" not in up.output and "stopping" not in up.output


def test_the_vm_example_boots_in_the_box_and_ctrl_c_leaves_nothing_behind(var_dir):
    netns = namespace_for(var_dir)
    with running_up(var_dir) as up:
        node = _started(up)
        assert "installing" not in up.output  # everything is present: setup does nothing
        assert re.search(r"node pool: .* on /dev/loop\d+", up.output), up.output[-3000:]
        assert f"node network namespace: {netns}" in up.output
        assert f"deploy examples/hello.rhai --node {node}" in up.output
        demo_password = (var_dir / "demo-password").read_text()
        assert f"{up.url}/   sign in as demo / {demo_password} (a user)" in up.output
        _kill_a_component_under_a_deployment(up, node)

        deployed = up.zos(
            "deploy", str(ROOT / "examples" / "vm.rhai"), "--node", node, "--timeout", "400"
        )
        assert deployed.returncode == 0, (deployed.stdout[-3000:], deployed.stderr[-2000:])
        address = ADDRESS.search(deployed.stdout)
        assert address, deployed.stdout[-3000:]
        # the VM's tap and the bridge are in the node's namespace, not the host's
        links = {link.name for link in net.list_links(netns)}
        assert "zos-myc" in links and any(name.startswith("zt") for name in links), links
        assert not any(name.startswith("zt") for name in _host_links())
        wait_for(lambda: _ping6(netns, address.group(1)), timeout=60, what="the VM to answer ping")
        qemu_pids = _qemu_pids(var_dir)
        assert len(qemu_pids) == 1 and alive(qemu_pids[0])

        # three more in a loop: each is made, or the node's refusal is reported (its cores are
        # reserved per VM: a two-core machine has room for one more beside "web")
        three = up.zos("deploy", str(EXAMPLES / "three-vms.rhai"), "--node", node)
        assert three.returncode == 0, (three.stdout[-3000:], three.stderr[-2000:])
        for name in ("alpha", "beta", "gamma"):
            assert re.search(rf"{name}: (running at |not created: .*not enough free)", three.stdout)
        made = [
            name for name in ("alpha", "beta", "gamma") if f"{name}: running at" in three.stdout
        ]
        assert made, three.stdout[-3000:]
        qemu_pids = _qemu_pids(var_dir)
        assert len(qemu_pids) == 1 + len(made)

        # a database too: its server outlives the agent like a VM, not the box
        database = up.zos("deploy", str(EXAMPLES / "herodb.rhai"), "--node", node)
        assert database.returncode == 0, (database.stdout[-3000:], database.stderr[-2000:])

        # the box made its node the gateway and waited for the node to start its Caddy
        assert "the local node is the gateway for gw.localhost" in up.output
        assert (var_dir / "node" / "gateway" / "admin.sock").is_socket()

        everything = _stop(up)
        assert any("daphne" in c for c in everything.values())
        assert any("redis-server" in c for c in everything.values())
        stopped = len(qemu_pids) + 2  # the VMs, the database and the gateway's Caddy
        assert f"stopping {stopped} workload process(es) the node left running" in up.output
    _assert_nothing_left(var_dir, everything, qemu_pids)

    # Again: the same grid, nothing rebuilt or uploaded, the VM started again by the node.
    with running_up(var_dir) as again:
        node = _started(again)
        assert "is on the hub already" in again.output and "publishing" not in again.output
        assert "is current" in again.output
        script = var_dir / "state.rhai"
        script.write_text('vm_info("web").state\n')
        state = again.zos("deploy", str(script), "--node", node, "--timeout", "120")
        assert state.returncode == 0, (state.stdout[-2000:], state.stderr[-2000:])
        assert '"running"' in state.stdout
        qemu_pids = _qemu_pids(var_dir)
        assert len(qemu_pids) == 1 + len(made) and all(alive(pid) for pid in qemu_pids)
        # and delete-all removes every VM: no QEMU left even before the stop
        deleted = again.zos("deploy", str(EXAMPLES / "delete-all.rhai"), "--node", node)
        assert deleted.returncode == 0, (deleted.stdout[-3000:], deleted.stderr[-2000:])
        assert '"vms_left": 0' in deleted.stdout
        assert not any(alive(pid) for pid in qemu_pids)
        assert _qemu_pids(var_dir) == []

        # The local node is the box's gateway: a VM's web server on a name, through Caddy.
        assert f"deploy examples/vm-web.rhai --node {node}" in again.output
        web = again.zos("deploy", str(EXAMPLES / "vm-web.rhai"), "--node", node, "--timeout", "400")
        assert web.returncode == 0, (web.stdout[-3000:], web.stderr[-2000:])
        assert f"the page is at http://{SITE}" in web.stdout
        wait_for(
            lambda: PAGE in _through_gateway(netns),
            timeout=60,
            what="the VM's page through the gateway",
        )
        caddy_pid = int((var_dir / "node" / "gateway" / "caddy.pid").read_text())
        assert alive(caddy_pid)
        identify = ["ip", "netns", "identify", str(caddy_pid)]
        where = subprocess.run(identify, capture_output=True, text=True, check=False).stdout
        assert "caddy" in cmdline(caddy_pid) and where.split() == [netns], where
        script.write_text('gateway_delete("site")\n')
        deleted = again.zos("deploy", str(script), "--node", node)
        assert deleted.returncode == 0, (deleted.stdout[-2000:], deleted.stderr[-2000:])
        assert PAGE not in _through_gateway(netns)
        qemu_pids = _qemu_pids(var_dir)
        everything = _stop(again)
    _assert_nothing_left(var_dir, everything, qemu_pids)
    assert not alive(caddy_pid), "the gateway's Caddy outlived scripts/up"
