"""Scripts create, inspect, stop, start and delete real VMs through real runners: QEMU (TCG
here) booting the test guest from the node's image cache, disks reflinked on a real btrfs pool,
and an overlay address on a bridge in a network namespace the test made, pinged for real."""

import ipaddress
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from nodeagent import overlay as overlay_state
from nodeagent.facts import disk_class
from nodeagent.functions.registry import WorkloadRegistry
from nodeagent.functions.resources import node_resources
from nodeagent.functions.vms import restart_vms, tap_name
from nodeagent.jobstore import JobStore, QueuedJob
from sal import mycelium, net
from sal.command import run as run_command
from tests.nodeagent.test_runner import final, start_pool  # noqa: F401 - fixture
from tests.sal.conftest import loop_pool, net_required, netns_factory  # noqa: F401 - fixture
from tests.sal.guest import READY_MARKER, build_guest, install_guest_image

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64"
)

GIB = 2**30
SUBNET = "4a1:2b3c:4d5e:6f70::/64"
NODE_ADDRESS = "4a1:2b3c:4d5e:6f70:1234::1"
_ids = iter(range(1_000_000))


@pytest.fixture
def data_dir():
    """Short on purpose: QMP socket paths under it must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="zv-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pool(tmp_path):
    with loop_pool(tmp_path / "btrfs", size=4 * GIB) as pool:
        yield pool


@pytest.fixture
def netns(netns_factory):  # noqa: F811
    return netns_factory()


@pytest.fixture
def node(store: JobStore, pool, data_dir, netns, start_pool):  # noqa: F811
    """A node with 4 cores, 2 GiB, the pool, the guest image and an overlay in `netns`."""
    capacity = {"cru": 4, "mru": 2 * GIB, "sru": 0, "hru": 0, disk_class(pool.mountpoint): 3 * GIB}
    store.publish_node_info({"capacity": capacity, "health": []})
    subnet = ipaddress.IPv6Network(SUBNET)
    mycelium.wire_bridge("zos-myc", subnet, netns=netns)
    overlay_state.publish(
        store.redis,
        overlay_state.Overlay(
            subnet=subnet,
            address=ipaddress.IPv6Address(NODE_ADDRESS),
            bridge="zos-myc",
            netns=netns,
        ),
    )
    resources = node_resources(data_dir, (pool.mountpoint,), "127.0.0.1", netns=netns)
    install_guest_image(resources.vms.images)
    start_pool(
        workers=2,
        data_dir=str(data_dir),
        storage=(str(pool.mountpoint),),
        workload_netns=netns,
    )
    yield store, resources
    registry = WorkloadRegistry(store.redis)
    for record in registry.all(kind="vm"):  # never leak QEMU processes
        resources.vms.hypervisor.delete(record.local_id)


def run(store: JobStore, owner: int, script: str, timeout: float = 120) -> dict:
    job_id = f"v{next(_ids)}"
    job = QueuedJob(
        job_id, 1, owner=owner, signer="ab" * 32, name="t", script=script, timeout=timeout
    )
    assert store.enqueue(job)
    state = final(store, job_id, timeout=timeout)
    if state["state"] == "succeeded":
        state["value"] = json.loads(state["result"])
    return state


def wait_ready(store: JobStore, owner: int, name: str) -> dict:
    """Poll vm_info from a script until the guest says it is ready, like a user's script.

    The wait is for the whole ready line: the console may be read while the guest is still
    writing it, with the hostname not yet there.
    """
    script = f"""
        let info = vm_info("{name}");
        while !info.console.contains("{READY_MARKER} {name}") {{
            if info.state != "running" {{ throw `vm ended: ${{info.state}}`; }}
            sleep(100);
            info = vm_info("{name}");
        }}
        info
    """
    state = run(store, owner, script)
    assert state["state"] == "succeeded", state.get("error")
    return state["value"]


def ping6(netns: str, address: str) -> bool:
    """One ICMPv6 echo from inside `netns` (busybox's ping: iputils is not installed)."""
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "busybox", "ping", "-6", "-c", "1", "-W", "2", address],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.mark.slow
def test_vm_lifecycle_through_scripts(node, pool, netns, data_dir):
    store, resources = node
    spec = (
        '#{name: "web", image: "busybox", cpus: 2, memory_mb: 256, disk_gb: 1, '
        'ssh_keys: ["ssh-ed25519 AAAAC3Nza test@zos"]}'
    )
    made = run(store, 1, f"vm_create({spec})")
    assert made["state"] == "succeeded", made
    vm = made["value"]
    assert vm["name"] == "web" and vm["state"] == "running" and vm["kind"] == "vm"
    address = ipaddress.IPv6Address(vm["mycelium_ip"])
    assert address in ipaddress.IPv6Network(SUBNET)
    assert vm["reserved"] == {"cru": 2, "mru": 256 * 2**20, resources.disk_key: GIB}

    ready = wait_ready(store, 1, "web")
    assert f"{READY_MARKER} web" in ready["console"]  # hostname from the seed
    # the overlay address is configured in the guest and reachable over the bridge
    deadline = time.monotonic() + 20
    while not ping6(netns, str(address)):
        assert time.monotonic() < deadline, (
            f"the VM's overlay address {address} does not answer; console: {ready['console']}"
        )
        time.sleep(0.5)
    # its disk is a reflinked file in the vdisks subvolume, its tap on the overlay bridge
    local_id = "u1-web"
    assert (resources.vms.vdisks / f"{local_id}.raw").stat().st_size == GIB
    tap = net.get_link(tap_name(local_id), netns)
    assert tap is not None and tap.kind == "tap"

    # capacity is held, the same spec again is a no-op, another spec an error
    assert run(store, 1, "node_info().free.cru")["value"] == 2
    again = run(store, 1, f"vm_create({spec})")
    assert again["value"]["mycelium_ip"] == vm["mycelium_ip"]
    changed = run(store, 1, 'vm_create(#{name: "web", image: "busybox", cpus: 1})')
    assert "already exists with a different spec" in changed["error"]
    # another owner sees nothing and can take the same name
    assert "you have no vm named 'web'" in run(store, 2, 'vm_info("web")')["error"]
    assert run(store, 2, "vm_list()")["value"] == []

    stopped = run(store, 1, 'vm_stop("web")')
    assert stopped["value"]["state"] == "stopped" and stopped["value"]["desired"] == "stopped"
    assert "ZOS-GUEST-POWEROFF" in stopped["value"]["console"]  # ACPI, not a kill
    started = run(store, 1, 'vm_start("web"); vm_info("web")')
    assert started["value"]["state"] == "running" and started["value"]["desired"] == "running"
    listed = run(store, 1, "vm_list()")["value"]
    assert [(v["name"], v["state"]) for v in listed] == [("web", "running")]

    # a node reboot: the VM's process and tap are gone; the agent starts it again
    resources.vms.hypervisor.stop(local_id, grace=0.1)
    net.delete_link(tap_name(local_id), netns)
    assert restart_vms(resources.vms, WorkloadRegistry(store.redis)) == [local_id]
    assert resources.vms.hypervisor.info(local_id).state == "running"
    assert net.get_link(tap_name(local_id), netns) is not None

    assert run(store, 1, 'vm_delete("web")')["value"] is True
    assert WorkloadRegistry(store.redis).all() == []
    assert WorkloadRegistry(store.redis).used() == {"cru": 0, "mru": 0, "sru": 0, "hru": 0}
    assert list(resources.vms.vdisks.iterdir()) == []
    assert not (data_dir / "vms" / local_id).exists()
    assert net.get_link(tap_name(local_id), netns) is None
    leftover = run_command(["pgrep", "-f", f"zos-{local_id}"], check=False).stdout
    assert leftover.strip() == ""


def test_vm_create_explains_what_is_wrong(node):
    store, _ = node
    cases = [
        ('vm_create(#{name: "a"})', "image must name an image"),
        ('vm_create(#{name: "a", image: "debian"})', "has no vm image 'debian'; it has: busybox"),
        ('vm_create(#{name: "a", image: "busybox", cpus: 0})', "cpus must be a whole number"),
        ('vm_create(#{name: "a", image: "busybox", gpu: 1})', "unknown spec fields: gpu"),
        ('vm_create(#{name: "a", image: "busybox", kind: "pod"})', 'kind must be "vm"'),
        ('vm_create(#{name: "a", image: "busybox", kind: "container"})', "is a VM image"),
        ('vm_create(#{name: "a", image: "busybox", ssh_keys: [1]})', "ssh_keys entries"),
        ('vm_create(#{name: "a", image: "busybox", env: #{"1x": "y"}})', "not a valid variable"),
        ('vm_create(#{name: "a", image: "busybox", runcmd: ["a\\nb"]})', "runcmd entries"),
        ('vm_create(#{name: "a", image: "busybox", memory_mb: 4096})', "not enough free capacity"),
        ('vm_start("nope")', "you have no vm named 'nope'"),
    ]
    for script, message in cases:
        state = run(store, 1, script)
        assert state["state"] == "failed" and message in state["error"], (script, state)
    assert WorkloadRegistry(store.redis).all() == []  # nothing reserved by a failed create


def test_without_an_overlay_a_vm_needs_mycelium_false(node):
    store, _ = node
    overlay_state.clear(store.redis)
    refused = run(store, 1, 'vm_create(#{name: "a", image: "busybox"})')
    assert "runs no Mycelium overlay" in refused["error"]
    made = run(store, 1, 'vm_create(#{name: "a", image: "busybox", mycelium: false})')
    assert made["value"]["mycelium_ip"] == "" and made["value"]["state"] == "running"
    assert run(store, 1, 'vm_delete("a")')["value"] is True


@pytest.mark.slow
def test_a_container_machine_runs_its_entrypoint(node, pool, tmp_path):
    store, resources = node
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", tree / "bin" / "busybox")
    (tree / "bin" / "sh").symlink_to("busybox")
    tarball = tmp_path / "rootfs.tar"
    run_command(["tar", "-C", str(tree), "-cf", str(tarball), "."])
    images = resources.vms.images
    images.install("tiny", rootfs=tarball, entrypoint=("/bin/sh", "-c", "echo default"))
    guest = build_guest()
    images.install("zos-machine", kernel=guest.kernel, initrd=guest.initrd)

    script = """
        let c = vm_create(#{name: "job", kind: "container", image: "tiny", disk_gb: 1,
                            mycelium: false, env: #{GREETING: "hello"},
                            entrypoint: ["/bin/sh", "-c", "echo $GREETING from $HOSTNAME"]});
        let info = vm_info("job");
        while !info.console.contains("ZOS-CONTAINER-EXIT") { sleep(100); info = vm_info("job"); }
        info
    """
    state = run(store, 1, script)
    assert state["state"] == "succeeded", state
    assert "hello from job" in state["value"]["console"]
    assert "ZOS-CONTAINER-EXIT 0" in state["value"]["console"]
    assert pool.get_limit("ct-u1-job") == GIB
    assert run(store, 1, 'vm_delete("job")')["value"] is True
    assert not pool.exists("ct-u1-job")
