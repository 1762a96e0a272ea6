"""Volumes in VMs and container machines, through scripts on real runners: QEMU (TCG) booting the
test guest, volumes as btrfs subvolumes on a real pool (loop device), each attached as a
virtio-blk disk the guest finds by its serial and mounts. (The Debian image's own init is tested
the same way, over SSH, in tests/image/test_vm_volumes.py.)"""

import shutil
import subprocess
from pathlib import Path

import pytest

from nodeagent.functions.registry import WorkloadRegistry
from sal.command import run as run_command
from tests.nodeagent.test_runner import start_pool  # noqa: F401 - fixture
from tests.nodeagent.test_vm_functions import data_dir, netns, node, pool, run  # noqa: F401
from tests.sal.conftest import net_required, netns_factory  # noqa: F401 - fixtures
from tests.sal.guest import build_guest

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64"
)


def ok(state: dict) -> object:
    assert state["state"] == "succeeded", state.get("error")
    return state["value"]


def failed(state: dict) -> str:
    assert state["state"] == "failed", state
    return state["error"]


def vm_with(name: str, *volumes: tuple[str, str]) -> str:
    listed = ", ".join(f'#{{name: "{v}", mount: "{m}"}}' for v, m in volumes)
    return (
        f'vm_create(#{{name: "{name}", image: "busybox", memory_mb: 128, disk_gb: 1, '
        f"mycelium: false, volumes: [{listed}]}})"
    )


def wait_console(store, owner: int, name: str, marker: str) -> str:
    script = f"""
        let info = vm_info("{name}");
        while !info.console.contains("{marker}") {{
            if info.state != "running" {{ throw `vm ended: ${{info.console}}`; }}
            sleep(100);
            info = vm_info("{name}");
        }}
        info.console
    """
    return ok(run(store, owner, script))


def lsattr(path: Path) -> str:
    return run_command(["lsattr", "-d", str(path)]).stdout.split()[0]


@pytest.mark.slow
def test_a_volume_is_attached_to_one_vm_at_a_time_and_outlives_it(node, pool):  # noqa: F811
    store, _ = node
    ok(run(store, 1, 'volume_create("data", 1)'))
    vm = ok(run(store, 1, vm_with("a", ("data", "/data"))))
    assert vm["volumes"] == [{"name": "data", "mount": "/data"}]
    # The guest found the disk by its serial and mounted it where the script said.
    assert "ZOS-GUEST-VOLUME /data" in wait_console(store, 1, "a", "ZOS-GUEST-VOLUME")

    disk = pool.path("vol-u1-data") / "disk.raw"
    assert "C" in lsattr(disk)  # copy-on-write off
    assert run_command(["blkid", "-o", "value", "-s", "TYPE", str(disk)]).stdout.strip() == "ext4"
    assert disk.stat().st_size <= 2**30  # within the volume's quota

    held = "volume 'data' is attached to vm 'a'"
    assert held in failed(run(store, 1, vm_with("b", ("data", "/data"))))
    assert [vm["name"] for vm in ok(run(store, 1, "vm_list()"))] == ["a"]  # b was not made
    assert held in failed(run(store, 1, 'volume_delete("data")'))
    assert ok(run(store, 1, vm_with("a", ("data", "/data"))))["name"] == "a"  # a re-run

    assert ok(run(store, 1, 'vm_delete("a")')) is True
    assert disk.is_file()  # the VM is gone, its volume is not
    # ...and was unmounted cleanly: the delete pressed the power button before forcing.
    features = run_command(["dumpe2fs", "-h", str(disk)]).stdout
    assert "has_journal" in features and "needs_recovery" not in features
    ok(run(store, 1, vm_with("b", ("data", "/srv/data"))))
    assert "ZOS-GUEST-VOLUME /srv/data" in wait_console(store, 1, "b", "ZOS-GUEST-VOLUME")
    assert "volume 'data' is attached to vm 'b'" in failed(run(store, 1, 'volume_delete("data")'))
    ok(run(store, 1, 'vm_delete("b")'))
    assert ok(run(store, 1, 'volume_delete("data")')) is True
    assert not pool.exists("vol-u1-data")
    assert not store.redis.hgetall(WorkloadRegistry(store.redis).holders)


@pytest.mark.slow
def test_only_the_owners_writable_volumes_attach_where_a_path_is_valid(node, pool):  # noqa: F811
    store, _ = node
    ok(run(store, 2, 'volume_create("data", 1); volume_snapshot("data", "monday")'))
    cases = [
        (1, ("data", "/data"), "you have no volume named 'data' on this node"),
        (2, ("monday", "/data"), "volume 'monday' is a read-only snapshot of 'data'"),
        (2, ("data", "data"), "mount must be an absolute path"),
        (2, ("data", "/srv/../etc"), "mount must be an absolute path"),
        (2, ("data", "/etc"), "/etc is a system directory of the guest"),
        (2, ("data", "/"), "mount must be an absolute path"),
    ]
    for owner, volume, message in cases:
        assert message in failed(run(store, owner, vm_with("x", volume))), volume
    twice = vm_with("x", ("data", "/a"), ("data", "/b"))
    assert "volume 'data' is listed twice" in failed(run(store, 2, twice))
    assert "one machine at a time" not in failed(run(store, 2, twice))
    # Nothing was made or held by the refused creates.
    assert ok(run(store, 2, "vm_list()")) == [] and ok(run(store, 1, "vm_list()")) == []
    assert not store.redis.hgetall(WorkloadRegistry(store.redis).holders)
    assert not (pool.path("vol-u2-data") / "disk.raw").exists()
    assert ok(run(store, 2, 'volume_delete("monday"); volume_delete("data")')) is True


@pytest.mark.slow
def test_a_container_machines_volume_keeps_its_data_for_the_next_machine(node, pool, tmp_path):  # noqa: F811
    store, resources = node
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", tree / "bin" / "busybox")
    (tree / "bin" / "sh").symlink_to("busybox")
    tarball = tmp_path / "rootfs.tar"
    run_command(["tar", "-C", str(tree), "-cf", str(tarball), "."])
    images = resources.vms.images
    images.install("tiny", rootfs=tarball, entrypoint=("/bin/sh", "-c", "true"))
    guest = build_guest()
    images.install("zos-machine", kernel=guest.kernel, initrd=guest.initrd)

    def machine(name: str, command: str) -> str:
        script = f"""
            vm_create(#{{name: "{name}", kind: "container", image: "tiny", disk_gb: 1,
                         mycelium: false, volumes: [#{{name: "data", mount: "/var/data"}}],
                         entrypoint: ["/bin/sh", "-c", "{command}"]}});
            let info = vm_info("{name}");
            while !info.console.contains("ZOS-CONTAINER-EXIT") {{
                sleep(100);
                info = vm_info("{name}");
            }}
            info.console
        """
        return ok(run(store, 1, script))

    ok(run(store, 1, 'volume_create("data", 1)'))
    wrote = machine("writer", "echo kept across machines > /var/data/note; echo wrote")
    assert "wrote" in wrote and "ZOS-CONTAINER-EXIT 0" in wrote
    ok(run(store, 1, 'vm_delete("writer")'))
    read = machine("reader", "cat /var/data/note")
    assert "kept across machines" in read and "ZOS-CONTAINER-EXIT 0" in read
    ok(run(store, 1, 'vm_delete("reader")'))
    # The data lives in the volume's disk, not in either machine's root tree.
    done = subprocess.run(
        ["debugfs", "-R", "cat /note", str(pool.path("vol-u1-data") / "disk.raw")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "kept across machines\n"
    assert ok(run(store, 1, 'volume_delete("data")')) is True
