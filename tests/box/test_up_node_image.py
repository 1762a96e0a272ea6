"""`scripts/up --node-image` as a user runs it: the local node is the node image booted under
QEMU, it joins the farm by itself, a deployment runs on it, an image a user publishes with
`zos image push` reaches it and it boots a VM from that (issue 13), and Ctrl-C leaves nothing
behind.

One boot of the node serves the whole module, in file order: each boot under TCG costs minutes
of one core, and the box a user starts is also the node the image tests need (a node image with
no shell, a blank disk made its pool at first boot, a NIC whose only way out is the forward to
the control plane on loopback, `restrict=on`). The node learns of the user's image only from a
signed deployment: it fetches it from the hub, verifies it, makes a VM disk from it on its pool,
and boots it with its own QEMU.

Here the node itself is emulated (TCG). Its emulated CPU (QEMU's default `qemu64`) has AMD SVM,
which TCG emulates, so the node loads `kvm_amd` and its QEMU runs the guest under KVM: one level
of emulation, not two. Even so every stage is slow, so the tests wait for conditions with
generous deadlines and print how long each stage took (docs/images.md has the figures).
"""

import json
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from image.vm_image import READY_MARKER
from tests.box.test_up import Up, _nodes, alive, descendants, running_up
from tests.image.test_vm_image import debian_image  # noqa: F401 - session fixture
from tests.integration.conftest import ROOT, ControlPlane, wait_for
from tests.integration.test_deployments import User, user_with_key
from tests.integration.test_image_fetch import _key_file, _zos

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3000)]

START_TIMEOUT = 1200  # build (cached after the first) + boot to registered under TCG
GUEST_MEMORY_MB = 256  # the Debian guest boots in it; less emulated memory is less to clear
# Fetching ~225 MiB through the node's emulated NIC, then booting Debian inside the emulated node.
GUEST_TIMEOUT = 2100
# Timings for a node whose every instruction is emulated: an ack or a ping may take seconds, and
# one job runs for as long as a nested guest takes to boot. The box's control plane and
# coordinator read them from the environment scripts/up passes on.
SLOW_NODE = {
    "ZOS_JOB_ACK_TIMEOUT": "60",
    "ZOS_JOB_TIMEOUT": str(GUEST_TIMEOUT),
    "ZOS_JOB_MAX_ATTEMPTS": "2",
    "ZOS_LINK_PING_INTERVAL": "5",
    "ZOS_LINK_PING_TIMEOUT": "60",
}

CREATE_AND_WAIT = f"""
let vm = vm_create(#{{name: "web", image: "debian-12", cpus: 1, memory_mb: {GUEST_MEMORY_MB},
                     disk_gb: 1, mycelium: false}});
log(`vm created: ${{vm.state}}`);
let info = vm_info("web");
while !info.console.contains("{READY_MARKER}") {{
    if info.state != "running" {{ throw `the VM stopped: ${{info.state}}`; }}
    sleep(5000);
    info = vm_info("web");
}}
log("guest ready");
info
"""


@dataclass
class NodeImageBox:
    """scripts/up --node-image, started once, with its online node."""

    up: Up
    node: dict
    work: Path

    @property
    def console_path(self) -> Path:
        return self.up.var_dir / "log" / "node.log"

    def console(self) -> str:
        return self.console_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeImageBox]:
    work = tmp_path_factory.mktemp("upnodeimage")
    with running_up(work / "var", "--node-image", settings=SLOW_NODE) as up:
        wait_for(
            lambda: "ZOS is running" in up.output or up.process.poll() is not None,
            timeout=START_TIMEOUT,
            what="scripts/up --node-image to print its banner",
            every=1,
        )
        assert "ZOS is running" in up.output, up.lines[-30:]
        [node] = [n for n in _nodes(up.url) if n["status"] == "online"]
        yield NodeImageBox(up, node, work)


def test_the_local_node_is_the_node_image_under_qemu(box: NodeImageBox):
    up, node = box.up, box.node
    assert f"booted from {ROOT / 'build'} under QEMU" in up.output
    assert f"deploy examples/hello.rhai --node {node['id']}" in up.output
    assert node["virtualized"] is True
    console = box.console()
    assert "storage: /dev/vda is empty: making it a btrfs pool" in console
    assert f"registered as node {node['id']} (online)" in console

    # The only QEMU is the node's, and its only way out is the control plane on loopback.
    [qemu] = [c for c in descendants(up.process.pid).values() if c.startswith("qemu-system-x86_64")]
    port = up.url.rsplit(":", 1)[1]
    forward = f"guestfwd=tcp:10.0.2.100:8000-cmd:socat - TCP:127.0.0.1:{port}"
    assert f"user,id=net0,restrict=on,{forward}" in qemu
    assert "hostfwd" not in qemu

    script = box.work / "hello.rhai"
    script.write_text('log("hello from the image");\n')
    done = up.zos("deploy", str(script), "--node", str(node["id"]), timeout=600)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "hello from the image" in done.stdout


@dataclass
class Run:
    deployment: dict
    events: list[dict]
    push_out: str

    def logged_at(self, line: str) -> datetime:
        (event,) = [e for e in self.events if e["log"] == line]
        return datetime.fromisoformat(event["ts"])


def _settings_only(image: Path, work: Path) -> Path:
    """The built image with an image.json holding only what a manifest carries: this branch's
    `zos image push` still refuses the build's provenance fields there (fixed separately)."""
    publish = work / "debian-12"
    publish.mkdir()
    for part in ("kernel", "initrd", "disk.raw"):
        (publish / part).symlink_to(image / part)
    meta = json.loads((image / "image.json").read_text())
    settings = {key: meta[key] for key in ("cmdline", "min_disk_gb")}
    (publish / "image.json").write_text(json.dumps(settings))
    return publish


@pytest.fixture(scope="module")
def user(box: NodeImageBox) -> User:
    """The box's demo user (not staff: the operator's public debian-12 is on the hub already,
    and an image of one's own comes first) with an API token and a signing key of its own."""
    found = re.search(r"sign in as (\S+) / ", box.up.output)
    assert found, box.up.lines[-30:]
    plane = ControlPlane(var_dir=box.up.var_dir, port=int(box.up.url.rsplit(":", 1)[1]))
    token = plane.manage("drf_create_token", found.group(1)).split()[2]
    return user_with_key(plane, token, box.node["id"])


@pytest.fixture(scope="module")
def vm_run(box: NodeImageBox, user: User, debian_image: Path) -> Run:  # noqa: F811
    key_file = _key_file(user, box.work)
    publish = _settings_only(debian_image, box.work)
    code, out, err = _zos(user, key_file, "image", "push", str(publish),
                          "--name", "debian-12", "--version", "1")  # fmt: skip
    assert code == 0, err
    deployment = user.deploy(CREATE_AND_WAIT)
    done = user.wait_final(deployment["id"], timeout=GUEST_TIMEOUT + 120)
    events = user.events(deployment["id"])
    assert done["status"] == "succeeded", (done["job"], box.console()[-5000:])
    return Run(done, events, out)


def test_the_node_fetches_the_published_image_and_boots_a_vm_from_it(
    box: NodeImageBox, vm_run: Run
):
    assert "uploaded 3 of 3 parts" in vm_run.push_out
    result = vm_run.deployment["job"]["result"]
    assert result["state"] == "running"
    assert result["image"] == "debian-12"
    assert f"{READY_MARKER} web" in result["console"]
    console = box.console()
    # The node had no image: it fetched it from the hub, each part checked against the manifest.
    assert "fetched image debian-12:1" in console, console[-5000:]
    assert "[zos] FAILED" not in console
    created = vm_run.logged_at("vm created: running")
    ready = vm_run.logged_at("guest ready")
    started = min(
        datetime.fromisoformat(e["ts"]) for e in vm_run.events if e["status"] == "running"
    )
    print(
        f"fetch + create: {(created - started).total_seconds():.0f}s, "
        f"nested boot to {READY_MARKER}: {(ready - created).total_seconds():.0f}s"
    )


def test_node_info_lists_the_cached_image(user: User, vm_run: Run):
    """The agent republishes node_info's facts with each uptime report (60 s in the box)."""

    def listing() -> list[tuple]:
        done = user.wait_final(user.deploy("node_info().images")["id"], timeout=60)
        assert done["status"] == "succeeded", done["job"]
        return [(i["name"], i["version"], i["source"]) for i in done["job"]["result"]]

    listed = wait_for(listing, timeout=150, every=5, what="node_info() to list the fetched image")
    assert listed == [("debian-12", "1", "hub")]


def test_ctrl_c_powers_the_node_off_and_leaves_nothing_behind(box: NodeImageBox):
    """Last in the module: it stops the box the tests above share."""
    up = box.up
    everything = descendants(up.process.pid)
    os.killpg(up.process.pid, signal.SIGINT)  # Ctrl-C
    assert up.process.wait(timeout=90) == 0, up.lines[-10:]
    wait_for(
        lambda: not any(alive(pid) for pid in everything),
        timeout=30,
        what=f"every process to be gone: {[everything[p] for p in everything if alive(p)]}",
    )
    assert "pressing the node's power button" in box.console()
