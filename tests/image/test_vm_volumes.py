"""A volume in the Debian 12 VM image, end to end: a script attaches it, the image's init mounts
it, a user writes to it over SSH, a snapshot taken while the VM runs holds what was synced, and
after the VM is deleted a new VM mounts the same volume elsewhere and reads the data back (QEMU
under TCG, a real btrfs pool, an overlay bridge in a test network namespace)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from image.vm_image import READY_MARKER
from tests.image.conftest import ROOT
from tests.image.test_vm_image import _ssh, debian_image  # noqa: F401 - fixture
from tests.nodeagent.conftest import redis_server, store  # noqa: F401 - fixtures
from tests.nodeagent.test_runner import start_pool  # noqa: F401 - fixture
from tests.nodeagent.test_vm_functions import data_dir, netns, node, pool, run  # noqa: F401
from tests.sal.conftest import net_required, netns_factory  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None or shutil.which("ssh") is None,
    reason="needs qemu-system-x86_64 and ssh (scripts/setup.sh installs them)",
)


def boot(jobs, name: str, public_key: str, mount: str) -> dict:
    script = f"""
        vm_create(#{{name: "{name}", image: "debian-12", memory_mb: 512, disk_gb: 1,
                    ssh_keys: ["{public_key}"], volumes: [#{{name: "data", mount: "{mount}"}}]}});
        let info = vm_info("{name}");
        while !info.console.contains("{READY_MARKER}") {{
            if info.state != "running" {{ throw `vm ended: ${{info.state}}: ${{info.console}}`; }}
            sleep(200);
            info = vm_info("{name}");
        }}
        info
    """
    state = run(jobs, 1, script, timeout=300)
    assert state["state"] == "succeeded", state.get("error")
    return state["value"]


@pytest.mark.slow
def test_a_volume_keeps_its_data_from_one_debian_vm_to_the_next(
    debian_image: Path,  # noqa: F811
    node,  # noqa: F811
    pool,  # noqa: F811
    netns,  # noqa: F811
    tmp_path: Path,
):
    jobs, _ = node
    installed = subprocess.run(
        [sys.executable, "-m", "nodeagent", "images", "--storage", str(pool.mountpoint),
         "install", "debian-12", "--from", str(debian_image)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    assert run(jobs, 1, 'volume_create("data", 1)')["state"] == "succeeded"

    first = boot(jobs, "one", public, "/data")
    assert "ZOS-VM-VOLUME /data" in first["console"]
    out = _ssh(
        netns,
        key,
        tmp_path / "known_one",
        first["mycelium_ip"],
        "echo written by one > /data/greeting && sync && awk '$2 == \"/data\" { print $3 }' "
        "/proc/mounts",
    )
    assert out == "ext4\n"  # the volume's disk, not a directory on the root disk

    # A snapshot of the attached volume, taken while the VM runs, holds what the guest synced.
    snap = run(jobs, 1, 'volume_snapshot("data", "data-snap")')
    assert snap["state"] == "succeeded", snap.get("error")
    copied = subprocess.run(
        ["debugfs", "-R", "cat /greeting", str(pool.path("vol-u1-data-snap") / "disk.raw")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert copied.stdout == "written by one\n"

    assert run(jobs, 1, 'vm_delete("one")')["value"] is True
    second = boot(jobs, "two", public, "/srv/data")
    assert "ZOS-VM-VOLUME /srv/data" in second["console"]
    out = _ssh(netns, key, tmp_path / "known_two", second["mycelium_ip"], "cat /srv/data/greeting")
    assert out == "written by one\n"
    assert run(jobs, 1, 'vm_delete("two")')["value"] is True
    done = run(jobs, 1, 'volume_delete("data-snap"); volume_delete("data")')
    assert done["state"] == "succeeded", done.get("error")


@pytest.mark.slow
def test_the_vm_with_volume_example_mounts_its_volume_and_snapshots_it(
    debian_image: Path,  # noqa: F811
    node,  # noqa: F811
    pool,  # noqa: F811
):
    jobs, resources = node
    resources.vms.images.install_directory("debian-12", debian_image)
    done = run(jobs, 1, (ROOT / "examples/vm-with-volume.rhai").read_text(), timeout=300)
    assert done["state"] == "succeeded", done.get("error")
    result = done["value"]
    assert result["vm"] == "notes" and result["volume"] == "data"
    assert result["snapshot"].startswith("data-day-") and result["mycelium_ip"]
    console = run(jobs, 1, 'vm_info("notes").console')["value"]
    assert "ZOS-VM-VOLUME /data" in console
    assert pool.exists(f"vol-u1-{result['snapshot']}")
    assert run(jobs, 1, 'vm_delete("notes")')["value"] is True
