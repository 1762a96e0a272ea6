"""The cloud-hypervisor driver against a fake VMM that checks every request against the published
API spec (cloud-hypervisor cannot be installed here; see docs/sal/cloud-hypervisor-and-mycelium.md).

Each test spawns the fake exactly as the driver spawns the real binary and fails if any request
the driver sent was not valid per specs/cloud-hypervisor.yaml.
"""

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sal.hypervisor.cloud_hypervisor import CloudHypervisor
from sal.hypervisor.vm import (
    HypervisorError,
    NetAttachment,
    VmNotFound,
    VmSpec,
    VmState,
    VolumeDisk,
)
from sal.unix_http import HttpApi
from tests.sal.spec_stub import SPECS_DIR, make_fake_binary, read_log, violations_in

FAKE = "tests.sal.fake_cloud_hypervisor"
pytestmark = pytest.mark.skipif(
    not SPECS_DIR.is_dir(), reason=f"needs the published API specs in {SPECS_DIR}"
)


@pytest.fixture
def env(tmp_path: Path):
    """A state root, a kernel and disks, the fake binary (and one whose guest ignores ACPI)."""
    bins = tmp_path / "bin"
    bins.mkdir()
    log = tmp_path / "requests.jsonl"
    binary = make_fake_binary(bins, "cloud-hypervisor", FAKE, log_path=log)
    stubborn = make_fake_binary(
        bins, "ch-stubborn", FAKE, log_path=log, env={"ZOS_FAKE_CH_GUEST": "ignore"}
    )
    files = tmp_path / "files"
    files.mkdir()
    for name in ("vmlinux", "initrd.img", "root.raw", "cidata.img"):
        (files / name).write_bytes(b"\0" * 512)
    state_root = tmp_path / "vms"
    ns = SimpleNamespace(
        log=log,
        files=files,
        state_root=state_root,
        driver=CloudHypervisor(state_root, binary=str(binary)),
        stubborn=CloudHypervisor(state_root, binary=str(stubborn)),
    )
    yield ns
    # only the VMMs this test started: the pid files in its own state root
    for pid_file in state_root.glob("*/vmm.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if str(state_root).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
    assert violations_in(log) == [], "the driver sent requests the spec does not allow"


def make_spec(env, vm_id: str = "vm1", **overrides) -> VmSpec:
    fields = {
        "vm_id": vm_id,
        "cpus": 2,
        "memory_mb": 512,
        "kernel": env.files / "vmlinux",
        "initrd": env.files / "initrd.img",
        "cmdline": "console=ttyS0 panic=-1",
        "disks": (env.files / "root.raw",),
        "cidata": env.files / "cidata.img",
        "nics": (NetAttachment(mac="52:54:00:00:00:01", tap="tap-vm1"),),
        **overrides,
    }
    return VmSpec(**fields)


def calls(env) -> list[str]:
    """The state-changing requests the VMMs received, in order (pings and vm.info left out)."""
    return [
        f"{e['method']} {e['path'].removeprefix('/api/v1')}"
        for e in read_log(env.log)
        if "violation" not in e and e["method"] != "GET"
    ]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_full_lifecycle(env):
    driver = env.driver
    info = driver.create(make_spec(env))
    assert info.state == VmState.RUNNING
    assert info.driver == "cloud-hypervisor"
    assert (info.cpus, info.memory_mb) == (2, 512)
    assert alive(info.pid)
    vm_dir = env.state_root / "vm1"
    assert sorted(p.name for p in vm_dir.iterdir()) == [
        "api.sock",
        "console.log",
        "spec.json",
        "vmm.log",
        "vmm.pid",
    ]
    assert "Kernel command line: console=ttyS0 panic=-1" in driver.console_log("vm1")
    assert [v.vm_id for v in driver.list_vms()] == ["vm1"]

    stopped = driver.stop("vm1", grace=5)
    assert stopped.state == VmState.STOPPED and stopped.pid is None
    assert not alive(info.pid)
    assert driver.stop("vm1").state == VmState.STOPPED  # already stopped: left alone

    restarted = driver.start("vm1")
    assert restarted.state == VmState.RUNNING and restarted.pid != info.pid
    assert driver.start("vm1").pid == restarted.pid  # running: left alone

    driver.delete("vm1")
    assert not vm_dir.exists()
    assert not alive(restarted.pid)
    with pytest.raises(VmNotFound):
        driver.info("vm1")
    driver.delete("vm1")  # unknown id: no-op

    assert calls(env) == [
        "PUT /vm.create",
        "PUT /vm.boot",
        "PUT /vm.power-button",  # stop(): the guest powers off and the VMM exits
        "PUT /vm.create",  # start(): a fresh VMM
        "PUT /vm.boot",
        "PUT /vm.shutdown",  # delete(): forced off, then the VMM ends
        "PUT /vm.delete",
        "PUT /vmm.shutdown",
    ]


def test_vm_config_sent_to_the_vmm(env):
    env.driver.create(make_spec(env))
    body = next(e["body"] for e in read_log(env.log) if e.get("path") == "/api/v1/vm.create")
    files = env.files
    assert body == {
        "cpus": {"boot_vcpus": 2, "max_vcpus": 2},
        "memory": {"size": 512 * 2**20},
        "payload": {
            "kernel": str(files / "vmlinux"),
            "initramfs": str(files / "initrd.img"),
            "cmdline": "console=ttyS0 panic=-1",
        },
        "serial": {"mode": "File", "file": str(env.state_root / "vm1" / "console.log")},
        "console": {"mode": "Off"},
        "rng": {"src": "/dev/urandom"},
        "disks": [
            {"path": str(files / "root.raw")},
            {"path": str(files / "cidata.img"), "readonly": True},
        ],
        "net": [{"tap": "tap-vm1", "mac": "52:54:00:00:00:01"}],
    }
    env.driver.delete("vm1")


def test_volumes_are_sent_as_disks_with_their_serials(env):
    volume = env.files / "root.raw"  # any existing file: the fake checks the request only
    env.driver.create(make_spec(env, volumes=(VolumeDisk(volume, "zos-vol0"),)))
    body = next(e["body"] for e in read_log(env.log) if e.get("path") == "/api/v1/vm.create")
    assert body["disks"][-1] == {"path": str(volume), "serial": "zos-vol0"}
    assert not [e for e in read_log(env.log) if "violation" in e]  # valid against the spec
    env.driver.delete("vm1")


def test_create_is_idempotent(env):
    first = env.driver.create(make_spec(env))
    again = env.driver.create(make_spec(env))
    assert again.pid == first.pid and again.state == VmState.RUNNING
    assert calls(env).count("PUT /vm.create") == 1
    with pytest.raises(HypervisorError, match="different spec"):
        env.driver.create(make_spec(env, cpus=4))
    env.driver.delete("vm1")


def test_adopt_after_agent_restart(env):
    first = env.driver.create(make_spec(env, "a"))
    env.driver.create(make_spec(env, "b"))
    env.driver.stop("b", grace=5)

    restarted = CloudHypervisor(env.state_root, binary=env.driver.binary)
    adopted = restarted.adopt()
    assert [(v.vm_id, v.state, v.pid) for v in adopted] == [("a", VmState.RUNNING, first.pid)]
    assert restarted.info("b").state == VmState.STOPPED

    # the VMM dies behind the agent's back: adopt clears it, start boots it afresh
    os.kill(first.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(first.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    fresh = CloudHypervisor(env.state_root, binary=env.driver.binary)
    assert fresh.adopt() == []
    assert not (env.state_root / "a" / "vmm.pid").exists()
    assert fresh.start("a").state == VmState.RUNNING
    # stopping a VMM this driver did not spawn (not its child) works too
    assert restarted.stop("a", grace=5).state == VmState.STOPPED
    for vm_id in ("a", "b"):
        fresh.delete(vm_id)


def test_stop_forces_a_guest_that_ignores_the_power_button(env):
    info = env.stubborn.create(make_spec(env))
    started = time.monotonic()
    assert env.stubborn.stop("vm1", grace=0.5).state == VmState.STOPPED
    assert time.monotonic() - started < 5
    assert not alive(info.pid)
    assert calls(env)[-3:] == ["PUT /vm.power-button", "PUT /vm.shutdown", "PUT /vmm.shutdown"]
    # a VMM whose VM is shut down but which still runs: start boots it again
    env.stubborn.start("vm1")
    api = HttpApi(socket_path=str(env.state_root / "vm1" / "api.sock"), prefix="/api/v1")
    api.call("PUT", "/vm.shutdown")
    assert env.stubborn.info("vm1").state == VmState.STOPPED
    assert env.stubborn.start("vm1").state == VmState.RUNNING
    env.stubborn.delete("vm1")


def test_fake_refuses_out_of_order_calls(env):
    env.driver.create(make_spec(env))
    api = HttpApi(socket_path=str(env.state_root / "vm1" / "api.sock"), prefix="/api/v1")
    assert api.request("PUT", "/vm.boot").status == 500  # already running
    assert api.request("PUT", "/vm.resume").status == 405  # not paused
    assert api.request("PUT", "/vm.create", json_body={"payload": {}}).status == 500  # exists
    api.call("PUT", "/vm.shutdown")
    assert api.request("PUT", "/vm.shutdown").status == 405
    assert api.request("PUT", "/vm.power-button").status == 405
    api.call("PUT", "/vm.delete")
    assert api.request("GET", "/vm.info").status == 404
    assert api.request("PUT", "/vm.boot").status == 404
    env.driver.delete("vm1")


def test_pause_is_reported_and_start_resumes(env):
    env.driver.create(make_spec(env))
    api = HttpApi(socket_path=str(env.state_root / "vm1" / "api.sock"), prefix="/api/v1")
    api.call("PUT", "/vm.pause")
    assert env.driver.info("vm1").state == VmState.PAUSED
    assert env.driver.start("vm1").state == VmState.RUNNING
    env.driver.delete("vm1")


def test_failures_leave_nothing_behind(env):
    with pytest.raises(HypervisorError, match=r"vm\.boot.*HTTP 500.*No such file"):
        env.driver.create(make_spec(env, kernel=env.files / "missing"))
    assert not (env.state_root / "vm1").exists()

    missing = CloudHypervisor(env.state_root, binary=str(env.files / "no-such-binary"))
    with pytest.raises(HypervisorError, match="cannot start"):
        missing.create(make_spec(env))
    assert not (env.state_root / "vm1").exists()

    with pytest.raises(HypervisorError, match="needs a tap"):
        env.driver.create(make_spec(env, nics=(NetAttachment(mac="52:54:00:00:00:02"),)))
    with pytest.raises(HypervisorError, match="virtiofsd"):
        env.driver.create(make_spec(env, shared_dir=env.files))
    with pytest.raises(HypervisorError, match=r"VM id '\.\./escape' is invalid"):
        env.driver.create(make_spec(env, "../escape"))
    assert not (env.state_root / "vm1").exists()


def test_minimal_spec_sends_a_minimal_config(env):
    spec = VmSpec(vm_id="tiny", cpus=1, memory_mb=128, kernel=env.files / "vmlinux")
    assert env.driver.create(spec).state == VmState.RUNNING
    body = next(e["body"] for e in read_log(env.log) if e.get("path") == "/api/v1/vm.create")
    assert "disks" not in body and "net" not in body
    assert body["payload"] == {"kernel": str(env.files / "vmlinux"), "cmdline": spec.cmdline}
    env.driver.delete("tiny")


def test_concurrent_operations_on_one_vm_serialize(env):
    """Two runners creating one VM at once start one VMM: the second waits for the first's lock
    and finds the running VM (unlocked, it read the half-made VM as stopped)."""
    spec = make_spec(env)
    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(env.driver.create(spec))) for _ in "ab"
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0].pid == results[1].pid is not None
    assert calls(env).count("PUT /vm.create") == 1
    env.driver.delete("vm1")
    assert not (env.state_root / ".locks" / "vm1").exists()
