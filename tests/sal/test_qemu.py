"""The QEMU driver against real QEMU (TCG here) and the real test guest (tests/sal/guest.py).

One guest boots once for the module and is shared by the read-only checks; the lifecycle test
(stop, start, delete) runs last on the same guest. The guest uses user networking with
`restrict=on` and one forward to a server on the host's loopback, so the tests also prove the
guest can reach exactly that and nothing else.
"""

import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from sal.command import run
from sal.hypervisor.cidata import NicConfig, SeedConfig, write_seed
from sal.hypervisor.qemu import QemuHypervisor
from sal.hypervisor.state import spec_from_json, spec_to_json
from sal.hypervisor.vm import (
    HypervisorError,
    NetAttachment,
    VmNotFound,
    VmSpec,
    VmState,
    VolumeDisk,
)
from sal.images import remove_rootfs, unpack_rootfs, write_container_config
from tests.sal.guest import POWEROFF_MARKER, READY_MARKER, build_guest

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64"
)

MAC = "52:54:00:12:00:01"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIzostest test@zos"


@pytest.fixture(scope="module")
def guest():
    if os.geteuid() != 0:
        pytest.skip("building the test guest needs root (apt-get download, cache dir)")
    return build_guest()


@pytest.fixture(scope="module")
def state_root():
    # Short: the QMP socket path must fit a unix socket address (107 bytes).
    root = Path(tempfile.mkdtemp(prefix="zq-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def hv(state_root):
    driver = QemuHypervisor(state_root)
    yield driver
    for info in driver.list_vms():
        driver.delete(info.vm_id)


class _Server:
    """A one-line TCP server on loopback: answers every connection with a fixed line."""

    def __init__(self, reply: bytes) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def servers():
    allowed, forbidden = _Server(b"hello-from-host\n"), _Server(b"should-not-see-this\n")
    yield allowed, forbidden
    allowed.close()
    forbidden.close()


def _spec(guest, vm_id: str, **kw) -> VmSpec:
    base = {"vm_id": vm_id, "cpus": 1, "memory_mb": 256, "kernel": guest.kernel}
    base["initrd"] = guest.initrd
    base.update(kw)
    return VmSpec(**base)


@pytest.fixture(scope="module")
def vm(hv, guest, state_root, servers):
    allowed, forbidden = servers
    seed = write_seed(
        SeedConfig(
            instance_id="vm-one-1",
            hostname="vm-one",
            ssh_keys=(SSH_KEY,),
            nics=(NicConfig(mac=MAC, dhcp4=True),),
            runcmd=(
                "cat /root/.ssh/authorized_keys",
                "nc -w 5 10.0.2.100 8000 </dev/null",
                f"nc -w 3 10.0.2.2 {forbidden.port} </dev/null || echo forbidden-refused",
            ),
        ),
        state_root / "vm-one.cidata",
    )
    disk = state_root / "vm-one.disk"
    with open(disk, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    spec = _spec(
        guest,
        "vm-one",
        cidata=seed,
        disks=(disk,),
        nics=(NetAttachment(mac=MAC, forwards=(("10.0.2.100", 8000, allowed.port),)),),
    )
    started = time.monotonic()
    info = hv.create(spec)
    hv.wait_console("vm-one", f"{READY_MARKER} vm-one", timeout=90)
    return spec, info, time.monotonic() - started


@pytest.mark.slow
def test_create_boots_the_guest_to_its_readiness_marker(hv, vm):
    _, info, boot_seconds = vm
    assert info.state == VmState.RUNNING
    assert info.driver == "qemu" and info.pid and info.cpus == 1 and info.memory_mb == 256
    assert info.console_log == hv.state_root / "vm-one" / "console.log"
    assert boot_seconds < 60
    assert f"{READY_MARKER} vm-one" in hv.console_log("vm-one")


@pytest.mark.slow
def test_the_guest_reads_its_seed_and_reaches_only_the_forward(hv, vm, servers):
    allowed, forbidden = servers
    text = hv.wait_console("vm-one", "forbidden-refused", timeout=60)
    assert SSH_KEY in text
    assert "hello-from-host" in text
    assert "should-not-see-this" not in text
    assert allowed.connections == 1
    assert forbidden.connections == 0


@pytest.mark.slow
def test_info_asks_qemu(hv, vm):
    info = hv.info("vm-one")
    assert info.state == VmState.RUNNING
    assert Path(f"/proc/{info.pid}").exists()
    assert [i.vm_id for i in hv.list_vms()] == ["vm-one"]


@pytest.mark.slow
def test_a_new_driver_adopts_the_running_vm(hv, vm):
    fresh = QemuHypervisor(hv.state_root)
    adopted = fresh.adopt()
    assert [(i.vm_id, i.pid) for i in adopted] == [("vm-one", hv.info("vm-one").pid)]
    assert fresh.info("vm-one").state == VmState.RUNNING


@pytest.mark.slow
def test_create_with_the_same_spec_returns_the_existing_vm(hv, vm):
    spec, info, _ = vm
    again = hv.create(spec)
    assert again.pid == info.pid and again.state == VmState.RUNNING


@pytest.mark.slow
def test_create_with_a_different_spec_is_refused(hv, vm):
    spec, _, _ = vm
    other = VmSpec(**{**spec.__dict__, "memory_mb": 512})
    with pytest.raises(HypervisorError, match=r"different spec \(differs in: memory_mb\)"):
        hv.create(other)


@pytest.mark.slow
def test_stop_start_delete(hv, vm):
    """Runs last on the shared guest: clean ACPI power-off, boot again, delete leaves nothing."""
    started = time.monotonic()
    info = hv.stop("vm-one", grace=30)
    assert info.state == VmState.STOPPED and info.pid is None
    assert time.monotonic() - started < 25, "stop waited for the grace period: not a clean stop"
    assert POWEROFF_MARKER in hv.console_log("vm-one")
    assert hv.stop("vm-one").state == VmState.STOPPED

    info = hv.start("vm-one")
    assert info.state == VmState.RUNNING
    text = hv.wait_console("vm-one", f"{READY_MARKER} vm-one", timeout=90)
    assert POWEROFF_MARKER not in text, "the console log restarts with each boot"
    assert hv.start("vm-one").pid == info.pid

    state_dir = hv.state_root / "vm-one"
    hv.delete("vm-one")
    assert not state_dir.exists()
    assert not (hv.state_root / ".locks" / "vm-one").exists()
    assert (
        not Path(f"/proc/{info.pid}").exists()
        or b"zos-vm-one" not in Path(f"/proc/{info.pid}/cmdline").read_bytes()
    )
    with pytest.raises(VmNotFound):
        hv.info("vm-one")
    hv.delete("vm-one")  # unknown id: no-op


@pytest.mark.slow
def test_concurrent_creates_of_one_vm_start_it_once(hv, guest):
    spec = _spec(guest, "twin")
    results = []
    threads = [threading.Thread(target=lambda: results.append(hv.create(spec))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0].pid == results[1].pid is not None
    hv.delete("twin")


@pytest.mark.slow
def test_a_guest_that_panics_ends_stopped(hv, guest):
    hv.create(_spec(guest, "panics", cmdline="console=ttyS0 panic=-1 rdinit=/bin/false"))
    deadline = time.monotonic() + 60
    while hv.info("panics").state == VmState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
    info = hv.info("panics")
    assert info.state == VmState.STOPPED and info.pid is None
    assert "Kernel panic" in hv.console_log("panics")
    hv.delete("panics")


@pytest.mark.slow
def test_stop_forces_a_guest_after_grace(hv, guest):
    """A guest still in early boot does not handle the power button: stop() must force it."""
    hv.create(_spec(guest, "forced"))
    info = hv.stop("forced", grace=0)
    assert info.state == VmState.STOPPED and info.pid is None
    hv.delete("forced")


def test_spec_round_trips_through_json(tmp_path):
    spec = VmSpec(
        vm_id="a",
        cpus=2,
        memory_mb=128,
        kernel=tmp_path / "k",
        disks=(tmp_path / "d",),
        nics=(NetAttachment(mac=MAC, forwards=(("10.0.2.100", 80, 8080),)),),
        volumes=(VolumeDisk(path=tmp_path / "v", serial="zos-vol0"),),
        extra={"machine": "q35"},
    )
    assert spec_from_json(spec_to_json(spec)) == spec


def test_a_spec_without_volumes_is_recorded_as_before_volumes_existed(tmp_path):
    """spec.json of a VM made before volumes existed has no `volumes` key: the same spec must
    still compare equal, or re-running its create would call it a different VM."""
    spec = VmSpec(vm_id="a", cpus=1, memory_mb=128, kernel=tmp_path / "k")
    assert "volumes" not in spec_to_json(spec)


def test_volumes_are_virtio_disks_with_their_serials(tmp_path):
    hv = QemuHypervisor(tmp_path / "vms")
    disks = (VolumeDisk(tmp_path / "a,b.raw", "zos-vol0"), VolumeDisk(tmp_path / "c", "zos-vol1"))
    argv = hv.command_line(
        VmSpec(vm_id="v", cpus=1, memory_mb=128, kernel=tmp_path / "k", volumes=disks)
    )
    assert argv[argv.index(f"file={tmp_path}/a,,b.raw,if=none,id=vol0,format=raw") + 2] == (
        "virtio-blk-pci,drive=vol0,serial=zos-vol0"
    )
    assert "virtio-blk-pci,drive=vol1,serial=zos-vol1" in argv


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vm_id": "../x"}, "VM id '../x' is invalid"),
        ({"cpus": 0}, "cpus must be 1..64"),
        ({"memory_mb": 16}, "memory_mb must be at least 64"),
        ({"kernel": Path("/nonexistent/vmlinux")}, "kernel /nonexistent/vmlinux does not exist"),
        ({"disks": (Path("/nonexistent.raw"),)}, "disk /nonexistent.raw does not exist"),
        ({"nics": (NetAttachment(mac="nope"),)}, "'nope' is not a lowercase MAC"),
        ({"nics": (NetAttachment(mac=MAC), NetAttachment(mac=MAC))}, "used twice"),
        ({"nics": (NetAttachment(mac=MAC, tap="a/b"),)}, "not a valid tap name"),
        (
            {"nics": (NetAttachment(mac=MAC, forwards=(("10.0.2.100", 0, 80),)),)},
            "invalid port 0",
        ),
        ({"cmdline": "a\nb"}, "one line"),
        ({"extra": {"machine": "isapc"}}, "unknown machine type 'isapc'"),
        ({"extra": {"netns": "x y"}}, "invalid network namespace"),
        (
            {"volumes": (VolumeDisk(Path("/nonexistent.raw"), "zos-vol0"),)},
            "volume disk /nonexistent.raw does not exist",
        ),
        ({"volumes": (VolumeDisk(Path(__file__), "x" * 21),)}, "1-20 letters"),
        ({"volumes": (VolumeDisk(Path(__file__), "a,b"),)}, "volume serial 'a,b'"),
    ],
)
def test_bad_specs_are_refused_before_anything_runs(tmp_path, change, message):
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"")
    hv = QemuHypervisor(tmp_path / "vms")
    spec = VmSpec(**{"vm_id": "bad", "cpus": 1, "memory_mb": 128, "kernel": kernel, **change})
    with pytest.raises(HypervisorError, match=message.replace("(", r"\(").replace(".", r"\.")):
        hv.create(spec)
    assert not (tmp_path / "vms" / "bad").exists()


def test_a_state_root_too_long_for_a_socket_is_refused(tmp_path):
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"")
    hv = QemuHypervisor(tmp_path / ("x" * 100))
    with pytest.raises(HypervisorError, match="too long for a unix socket"):
        hv.create(VmSpec(vm_id="a", cpus=1, memory_mb=128, kernel=kernel))


def test_unknown_vms(tmp_path):
    hv = QemuHypervisor(tmp_path)
    with pytest.raises(VmNotFound, match="no VM 'ghost'"):
        hv.info("ghost")
    with pytest.raises(VmNotFound):
        hv.stop("ghost")
    hv.delete("ghost")
    assert hv.list_vms() == [] and hv.adopt() == []


def test_a_qemu_that_fails_to_start_says_why(tmp_path):
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"not a kernel")
    hv = QemuHypervisor(Path(tempfile.mkdtemp(prefix="zq-", dir="/tmp")))
    try:
        with pytest.raises(HypervisorError, match="did not start"):
            hv.create(VmSpec(vm_id="nokernel", cpus=1, memory_mb=128, kernel=kernel))
        assert hv.list_vms() == []
    finally:
        shutil.rmtree(hv.state_root, ignore_errors=True)


@pytest.fixture(scope="module")
def container_tarball(state_root):
    """A tiny container image: busybox as /bin/sh and a file to read."""
    tree = state_root / "ctree"
    (tree / "bin").mkdir(parents=True)
    (tree / "etc").mkdir()
    shutil.copy2("/bin/busybox", tree / "bin/busybox")
    for applet in ("sh", "cat", "echo", "sleep", "ls"):
        (tree / "bin" / applet).symlink_to("busybox")
    (tree / "etc/greeting").write_text("from-the-image\n")
    tarball = state_root / "ctree.tar.gz"
    run(["tar", "-czf", str(tarball), "-C", str(tree), "."])
    shutil.rmtree(tree)
    return tarball


@pytest.mark.slow
def test_a_container_machine_runs_its_entrypoint_and_stops_when_it_exits(
    hv, guest, state_root, container_tarball
):
    root = unpack_rootfs(container_tarball, state_root / "c1-root")
    write_container_config(
        root,
        [
            "/bin/sh",
            "-c",
            'echo "hi $GREETING $(cat /etc/greeting) $HOSTNAME"; ls /proc/self >/dev/null'
            " && echo proc-ok; echo written > /out.txt; exit 7",
        ],
        {"GREETING": "big world"},
    )
    hv.create(_spec(guest, "c1", shared_dir=root, cmdline="console=ttyS0 panic=-1 zos.hostname=c1"))
    text = hv.wait_console("c1", "ZOS-CONTAINER-EXIT", timeout=90)
    deadline = time.monotonic() + 30
    while hv.info("c1").state == VmState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
    text = hv.console_log("c1")
    assert "hi big world from-the-image c1" in text
    assert "proc-ok" in text and "ZOS-CONTAINER-EXIT 7" in text
    assert hv.info("c1").state == VmState.STOPPED
    assert (root / "out.txt").read_text() == "written\n"
    hv.delete("c1")
    remove_rootfs(root)
    assert not root.exists()


@pytest.mark.slow
def test_stopping_a_container_machine_signals_its_entrypoint(
    hv, guest, state_root, container_tarball
):
    root = unpack_rootfs(container_tarball, state_root / "c2-root")
    write_container_config(
        root,
        ["/bin/sh", "-c", "trap 'echo got-term; exit 0' TERM; while true; do sleep 1; done"],
        {},
    )
    hv.create(_spec(guest, "c2", shared_dir=root))
    hv.wait_console("c2", READY_MARKER, timeout=90)
    time.sleep(0.5)
    started = time.monotonic()
    assert hv.stop("c2", grace=30).state == VmState.STOPPED
    assert time.monotonic() - started < 20
    text = hv.console_log("c2")
    assert "got-term" in text and "ZOS-CONTAINER-EXIT 0" in text
    hv.delete("c2")
    remove_rootfs(root)
