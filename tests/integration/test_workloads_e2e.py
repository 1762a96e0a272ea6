"""Signed scripts through the whole pipeline make real workloads on a node (issue 5's proof).

Real processes throughout: daphne, the coordinator worker, the agent with its redis-server and
runners, QEMU (TCG here) booting the test guest, btrfs on a loop device, a HeroDB redis-server,
and the mycelium daemon's stand-in (tests/sal/fake_mycelium.py: the real binary is in no
reachable registry; the stub checks every request against specs/mycelium.yaml). The VM's tap,
the overlay bridge and the QEMU process live in a network namespace the test made, so nothing
can leave it. One script makes a volume, boots a VM with an overlay address and the volume
mounted, and makes a database; the user sees them in the coordinator's inventory; the agent
restarts and finds the VM still running; a second script is refused the attached volume's
delete, then deletes them all, and nothing is left on the node.
"""

import ipaddress
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import redis

from nodeagent.functions.resources import node_resources
from nodeagent.functions.vms import tap_name
from sal import net
from sal.command import run
from tests.integration.conftest import free_port, wait_for
from tests.integration.test_deployments import running_grid
from tests.sal.conftest import loop_pool, net_required, netns_factory  # noqa: F401 - fixtures
from tests.sal.guest import READY_MARKER, install_guest_image
from tests.sal.spec_stub import SPECS_DIR, make_fake_binary, violations_in

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu"),
]

GIB = 2**30

CREATE = f"""
let volume = volume_create("data", 1);
let vm = vm_create(#{{name: "web", image: "busybox", cpus: 1, memory_mb: 256, disk_gb: 1,
                     ssh_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA e2e@zos"],
                     volumes: [#{{name: "data", mount: "/data"}}]}});
let info = vm_info("web");
while !info.console.contains("{READY_MARKER}") {{
    if info.state != "running" {{ throw `the VM stopped: ${{info.state}}`; }}
    sleep(100);
    info = vm_info("web");
}}
log(`vm web is up at ${{vm.mycelium_ip}}`);
let db = herodb_create(#{{name: "cache", memory_mb: 64, disk_gb: 1}});
#{{vm: vm, volume: volume, db: db, console: info.console}}
"""

DELETE = """
let refused = "";
try { volume_delete("data"); } catch (e) { refused = `${e}`; }
vm_delete("web");
volume_delete("data");
herodb_delete("cache");
#{left: vm_list().len(), refused: refused}
"""


@pytest.fixture
def data_dir():
    """Short on purpose: QMP socket paths under it must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ze-", dir="/tmp"))
    yield path
    run(["pkill", "-KILL", "-f", str(path)], check=False)  # a failed test leaks no server
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pool(tmp_path):
    with loop_pool(tmp_path / "btrfs", size=4 * GIB) as pool:
        yield pool


def _ping6(netns: str, address: str) -> bool:
    argv = ["ip", "netns", "exec", netns, "busybox", "ping", "-6", "-c", "1", "-W", "2", address]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def _workloads(user) -> list[tuple[str, str]]:
    results = user.plane.get("/api/v1/workloads", headers=user.headers)["results"]
    return sorted((w["kind"], w["name"]) for w in results)


def test_scripts_make_and_remove_a_vm_a_volume_and_a_database(
    control_plane,
    start_agent,
    tmp_path,
    data_dir,
    pool,
    netns_factory,  # noqa: F811
):
    if not SPECS_DIR.is_dir():
        pytest.skip(f"needs the published API specs in {SPECS_DIR}")
    netns = netns_factory()
    images = node_resources(data_dir, (pool.mountpoint,), "127.0.0.1").vms.images
    install_guest_image(images)
    requests_log = tmp_path / "mycelium-requests.jsonl"
    fake_mycelium = make_fake_binary(
        tmp_path, "mycelium", "tests.sal.fake_mycelium", log_path=requests_log
    )
    agent_args = (
        "--storage", str(pool.mountpoint),
        "--workload-netns", netns,
        "--mycelium", str(fake_mycelium),
        "--mycelium-api", f"127.0.0.1:{free_port()}",
    )  # fmt: skip
    with running_grid(control_plane, start_agent, tmp_path, *agent_args, data_dir=data_dir) as (
        user,
        agent,
    ):
        node = control_plane.get(f"/api/v1/nodes/{user.node}")
        node_address = ipaddress.IPv6Address(node["mycelium_address"])
        subnet = ipaddress.IPv6Network(f"{node_address}/64", strict=False)

        created = user.deploy(CREATE)
        done = user.wait_final(created["id"], timeout=180)
        assert done["status"] == "succeeded", (done["job"].get("error"), agent.log()[-3000:])
        result = done["job"]["result"]
        vm, db = result["vm"], result["db"]
        volumes = [s.name for s in pool.list_subvolumes() if s.name.startswith("vol-")]
        assert len(volumes) == 1 and re.fullmatch(r"vol-u\d+-data", volumes[0]), volumes
        owner = volumes[0].split("-")[1]  # u<user id>: node-wide ids are per owner
        local_id = f"{owner}-web"

        # the VM runs, has an overlay address in the node's /64 and answers on it
        address = ipaddress.IPv6Address(vm["mycelium_ip"])
        assert address in subnet and address != node_address
        assert vm["state"] == "running"
        assert vm["volumes"] == [{"name": "data", "mount": "/data"}]
        assert "ZOS-GUEST-VOLUME /data" in result["console"]  # mounted before it was ready
        wait_for(lambda: _ping6(netns, str(address)), timeout=30, what="the VM to answer ping")
        # the volume is a quota'd subvolume; the database takes a password and keeps data
        assert pool.get_limit(volumes[0]) == GIB
        host, port = db["address"].rsplit(":", 1)
        client = redis.Redis(host=host, port=int(port), password=db["password"])
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        client.close()

        # the coordinator knows them, from the node's inventory
        wait_for(
            lambda: _workloads(user) == [("herodb", "cache"), ("vm", "web"), ("volume", "data")],
            timeout=30,
            what="the inventory to list the VM, the volume and the database",
        )

        # the agent restarts: the VM keeps running (same process) and is adopted
        pid_file = data_dir / "vms" / local_id / "qemu.pid"
        vm_pid = pid_file.read_text().strip()
        assert agent.stop() == 0
        agent = start_agent("--ledger", control_plane.url, *agent_args, data_dir=data_dir)
        after = user.wait_final(user.deploy('vm_info("web")')["id"], timeout=60)
        assert after["job"]["result"]["state"] == "running", after["job"].get("error")
        assert pid_file.read_text().strip() == vm_pid

        deleted = user.deploy(DELETE)
        done = user.wait_final(deleted["id"], timeout=120)
        assert done["status"] == "succeeded", (done["job"].get("error"), agent.log()[-3000:])
        assert done["job"]["result"]["left"] == 0
        assert "volume 'data' is attached to vm 'web'" in done["job"]["result"]["refused"]
        wait_for(lambda: _workloads(user) == [], timeout=30, what="the inventory to empty")

        # nothing left behind: processes, taps, disks, subvolumes, state
        assert run(["pgrep", "-f", f"zos-{local_id}"], check=False).stdout.strip() == ""
        assert run(["pgrep", "-f", f"{data_dir}/herodb"], check=False).stdout.strip() == ""
        assert net.get_link(tap_name(local_id), netns) is None
        assert sorted(s.name for s in pool.list_subvolumes()) == ["images", "vdisks"]
        assert list((pool.mountpoint / "vdisks").iterdir()) == []
        assert not (data_dir / "vms" / local_id).exists()
        assert agent.stop() == 0
    assert violations_in(requests_log) == [], "the agent sent requests the spec does not allow"
