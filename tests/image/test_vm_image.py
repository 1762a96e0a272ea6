"""The Debian 12 VM image: built from Debian packages, installed with the node's CLI, created by
a script through real runners (QEMU under TCG, a disk reflinked on a real btrfs pool, the seed,
an overlay address on a bridge in a test network namespace), and reached over SSH with the key
from the seed."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from image.vm_image import READY_MARKER, VM_FILES
from sal.hypervisor.cidata import NicConfig, SeedConfig, render
from tests.image.conftest import BUILD_TIMEOUT, ROOT
from tests.nodeagent.conftest import redis_server, store  # noqa: F401 - fixtures
from tests.nodeagent.test_runner import start_pool  # noqa: F401 - fixture
from tests.nodeagent.test_vm_functions import data_dir, netns, node, pool, run  # noqa: F401
from tests.sal.conftest import net_required, netns_factory  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None or shutil.which("ssh") is None,
    reason="needs qemu-system-x86_64 and ssh (scripts/setup.sh installs them)",
)

IMAGE_DIR = ROOT / "build/images/debian-12"
QUOTED = 'it\'s "quoted" \\ $HOME'  # an env value that naive quoting would mangle


def build(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "image", "vm-image", "debian-12", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="session")
def debian_image() -> Path:
    """`python -m image vm-image debian-12` into build/images (a later session reuses it)."""
    done = build(IMAGE_DIR)
    if done.returncode != 0 and "is unreachable" in done.stderr:
        pytest.skip(f"no Debian package archive reachable: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, f"VM image build failed:\n{done.stderr[-4000:]}"
    return IMAGE_DIR


def test_an_unknown_distribution_is_refused_naming_the_known_ones(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "image", "vm-image", "debian-99", "--out", str(tmp_path / "o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "no VM image recipe 'debian-99': known are debian-12" in done.stderr
    assert not (tmp_path / "o").exists()


def test_the_guest_reads_the_network_config_the_node_writes():
    """image/files/vm/network.awk (run by the guest's busybox awk) against cidata's output."""
    seed = SeedConfig(
        instance_id="i",
        hostname="h",
        nics=(
            NicConfig(
                mac="52:54:00:AA:bb:01",
                addresses=("4a1:2b3c::5/64", "10.1.0.5/24"),
                gateway4="10.1.0.1",
                gateway6="4a1:2b3c::1",
                nameservers=("10.1.0.53", "4a1:2b3c::53"),
            ),
            NicConfig(mac="52:54:00:aa:bb:02", dhcp4=True),
        ),
    )
    done = subprocess.run(
        ["busybox", "awk", "-f", str(VM_FILES / "network.awk")],
        input=render(seed)["network-config"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "nic 52:54:00:aa:bb:01",
        "addr 4a1:2b3c::5/64",
        "addr 10.1.0.5/24",
        "gw4 10.1.0.1",
        "gw6 4a1:2b3c::1",
        "dns 10.1.0.53",
        "dns 4a1:2b3c::53",
        "nic 52:54:00:aa:bb:02",
        "dhcp4",
    ]


@pytest.mark.slow
def test_a_second_build_with_the_same_inputs_builds_nothing(debian_image: Path):
    before = {p: (debian_image / p).stat().st_mtime_ns for p in ("kernel", "initrd", "disk.raw")}
    done = build(debian_image)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "is current (package lists and builder unchanged)" in done.stderr
    assert "resolving" not in done.stderr and "unpacking" not in done.stderr
    assert {p: (debian_image / p).stat().st_mtime_ns for p in before} == before


def _fingerprint(public_key: Path) -> str:
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(public_key)], capture_output=True, text=True, check=True
    )
    return listed.stdout.split()[1]


def _ssh(namespace: str, key: Path, known_hosts: Path, address: str, command: str) -> str:
    argv = [
        "ip", "netns", "exec", namespace, "ssh", "-i", str(key),
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "StrictHostKeyChecking=accept-new",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "LogLevel=ERROR",
        f"root@{address}", command,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"ssh failed ({done.returncode}): {done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_a_debian_vm_boots_with_its_seed_and_takes_ssh_with_the_seed_key(
    debian_image: Path,
    node,  # noqa: F811
    pool,  # noqa: F811
    netns,  # noqa: F811
    tmp_path: Path,
):
    jobs, resources = node
    installed = subprocess.run(
        [sys.executable, "-m", "nodeagent", "images", "--storage", str(pool.mountpoint),
         "install", "debian-12", "--from", str(debian_image)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    image = resources.vms.images.get("debian-12")
    assert image.kernel and image.initrd and image.disk and "root=LABEL=zos-root" in image.cmdline

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    script = f"""
        let vm = vm_create(#{{name: "deb", image: "debian-12", cpus: 1, memory_mb: 512,
                              disk_gb: 2, ssh_keys: ["{public}"],
                              env: #{{GREETING: "hello from the seed",
                                      QUOTED: {json.dumps(QUOTED)}}}}});
        let info = vm_info("deb");
        while !info.console.contains("{READY_MARKER} deb") {{
            if info.state != "running" {{ throw `vm ended: ${{info.state}}: ${{info.console}}`; }}
            sleep(200);
            info = vm_info("deb");
        }}
        info
    """
    state = run(jobs, 1, script, timeout=300)
    assert state["state"] == "succeeded", state.get("error")
    vm = state["value"]
    console = vm["console"]
    assert f"{READY_MARKER} deb" in console  # the hostname from the seed
    assert f"ZOS-VM-ADDRESS {vm['mycelium_ip']}/64" in console  # the overlay address
    assert _fingerprint(key.with_suffix(".pub")) in re.findall(r"ZOS-VM-AUTHKEY \d+ (\S+)", console)
    host_key = re.search(r"ZOS-VM-HOSTKEY \d+ (\S+)", console).group(1)

    known_hosts = tmp_path / "known_hosts"
    out = _ssh(
        netns,
        key,
        known_hosts,
        vm["mycelium_ip"],
        'hostname; echo "$GREETING"; echo "$QUOTED"; cat /root/.ssh/authorized_keys; '
        "df -k / | tail -n 1",
    )
    hostname, greeting, quoted, *rest = out.splitlines()
    assert hostname == "deb"
    assert greeting == "hello from the seed"  # the seed's env reaches SSH sessions
    assert quoted == QUOTED  # as given: nothing expanded or lost
    assert public in rest[:-1]
    root_kib = int(rest[-1].split()[1])
    assert root_kib > 1.5 * 2**20  # the root file system grew to the 2 GiB disk
    # The host key that answered is the one the VM printed at first boot.
    scanned = tmp_path / "scanned.pub"
    scanned.write_text(" ".join(known_hosts.read_text().split()[1:3]) + "\n")
    assert _fingerprint(scanned) == host_key

    stopped = run(jobs, 1, 'vm_stop("deb")', timeout=120)
    assert stopped["state"] == "succeeded", stopped.get("error")
    assert stopped["value"]["state"] == "stopped"
    assert "ZOS-VM-POWEROFF" in stopped["value"]["console"]  # the power button, not a kill
    assert run(jobs, 1, 'vm_delete("deb")')["value"] is True
