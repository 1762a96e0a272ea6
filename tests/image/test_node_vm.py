"""A node booted from the ZOS image, which has no shell, gets a workload image and boots a VM
from it (issue 13).

Real parts only: the control plane (daphne) and the coordinator worker on loopback; the session's
node image booted under QEMU by `python -m box.node_vm` (what `scripts/up --node-image` runs) with
a blank disk and a NIC whose only way out is the forward to the control plane (`restrict=on`);
`python -m image vm-image debian-12` published with `zos image push` as its owner would. The
node learns of the image only from a signed deployment: it fetches it from the hub, verifies it,
makes a VM disk from it on the pool it made at first boot, and boots it with its own QEMU.

Here the node itself is emulated (TCG). Its emulated CPU (QEMU's default `qemu64`) has AMD SVM,
which TCG emulates, so the node loads `kvm_amd` and its QEMU runs the guest under KVM: one level
of emulation, not two. Even so every stage is slow, so the test waits for conditions with
generous deadlines and prints how long each stage took (docs/images.md has the figures).
"""

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from image.vm_image import READY_MARKER
from tests.image.conftest import ROOT, BuiltImage, GuestLedger, farm_nodes
from tests.image.test_vm_image import debian_image  # noqa: F401 - session fixture
from tests.integration.conftest import bootstrap, wait_for
from tests.integration.test_deployments import User, user_with_key
from tests.integration.test_image_fetch import _key_file, _zos

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(3000)]

NODE_MEMORY_MIB = 2048
NODE_DISK_GIB = 4
GUEST_MEMORY_MB = 256  # the Debian guest boots in it; less emulated memory is less to clear
REGISTER_TIMEOUT = 400
# Fetching ~225 MiB through the node's emulated NIC, then booting Debian inside the emulated node.
GUEST_TIMEOUT = 2100
STOP_TIMEOUT = 60

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


class SlowNodePlane(GuestLedger):
    """Timings for a node whose every instruction is emulated: an ack or a ping may take
    seconds, and one job runs for as long as a nested guest takes to boot."""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env.update(
            ZOS_JOB_ACK_TIMEOUT="60",
            ZOS_JOB_TIMEOUT=str(GUEST_TIMEOUT),
            ZOS_JOB_MAX_ATTEMPTS="2",
            ZOS_LINK_PING_INTERVAL="5",
            ZOS_LINK_PING_TIMEOUT="60",
        )
        return env


@dataclass
class Grid:
    plane: SlowNodePlane
    node: dict
    user: User
    console_path: Path
    work: Path

    def console(self) -> str:
        return self.console_path.read_text(errors="replace")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, built_image: BuiltImage) -> Iterator[Grid]:
    work = tmp_path_factory.mktemp("nodevm")
    plane = SlowNodePlane(var_dir=work / "var")
    plane.var_dir.mkdir()
    plane.migrate()
    plane.start()
    info = bootstrap(plane)
    processes: list[subprocess.Popen] = []
    console_path = work / "node-console.log"
    try:
        with open(work / "coordinator.log", "ab") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "coordinator", "--every", "0.5"],
                    cwd=ROOT,
                    env=plane.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        with open(console_path, "ab") as console:
            node_vm = subprocess.Popen(
                [sys.executable, "-m", "box.node_vm", "run", "--image", str(built_image.directory),
                 "--state", str(work / "node"), "--port", str(plane.port),
                 "--farm", str(info["farm"]), "--enroll", info["token"],
                 "--memory-mib", str(NODE_MEMORY_MIB), "--disk-gib", str(NODE_DISK_GIB)],
                cwd=ROOT,
                stdout=console,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        processes.append(node_vm)

        def online() -> dict | None:
            if node_vm.poll() is not None:
                raise AssertionError(f"the node VM exited ({node_vm.returncode})")
            nodes = [n for n in farm_nodes(plane, info["farm"]) if n["status"] == "online"]
            return nodes[0] if nodes else None

        try:
            node = wait_for(
                online, timeout=REGISTER_TIMEOUT, what="the node to come online", every=1
            )
        except AssertionError as exc:
            tail = "\n".join(console_path.read_text(errors="replace").splitlines()[-60:])
            raise AssertionError(f"{exc}; console:\n{tail}") from None
        user = user_with_key(plane, info["api_token"], node["id"])
        yield Grid(plane, node, user, console_path, work)
    finally:
        for process in reversed(processes):
            _stop(process)
        plane.kill()


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
def vm_run(grid: Grid, debian_image: Path) -> Run:  # noqa: F811 - the imported fixture
    user = grid.user
    key_file = _key_file(user, grid.work)
    publish = _settings_only(debian_image, grid.work)
    code, out, err = _zos(user, key_file, "image", "push", str(publish),
                          "--name", "debian-12", "--version", "1")  # fmt: skip
    assert code == 0, err
    deployment = user.deploy(CREATE_AND_WAIT)
    done = user.wait_final(deployment["id"], timeout=GUEST_TIMEOUT + 120)
    events = user.events(deployment["id"])
    assert done["status"] == "succeeded", (done["job"], grid.console()[-5000:])
    return Run(done, events, out)


def test_the_node_fetches_the_published_image_and_boots_a_vm_from_it(grid: Grid, vm_run: Run):
    assert "uploaded 3 of 3 parts" in vm_run.push_out
    result = vm_run.deployment["job"]["result"]
    assert result["state"] == "running"
    assert result["image"] == "debian-12"
    assert f"{READY_MARKER} web" in result["console"]
    console = grid.console()
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


def test_node_info_lists_the_cached_image(grid: Grid, vm_run: Run):
    user = grid.user
    done = user.wait_final(user.deploy("node_info().images")["id"], timeout=300)
    assert done["status"] == "succeeded", done["job"]
    listing = [(i["name"], i["version"], i["source"]) for i in done["job"]["result"]]
    assert listing == [("debian-12", "1", "hub")]
