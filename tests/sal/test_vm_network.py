"""Two VMs on one bridge really talk to each other: ping and a TCP echo, read from the console.

The bridge is wired the way the node wires its Mycelium bridge (`mycelium.wire_bridge`: the
overlay /64's `::1` on it) and each VM gets its overlay address from `mycelium.vm_address`, so
the IPv6 pings prove VM-to-VM connectivity on overlay addresses; IPv4 carries the TCP echo.

Everything lives in a fresh network namespace (bridge, taps, and the QEMU processes themselves,
through the driver's `netns` extra), so no packet can leave it: the namespace has no route
anywhere but its own bridge.
"""

import ipaddress
import shutil
import tempfile
from pathlib import Path

import pytest

from sal import mycelium, net
from sal.command import run
from sal.hypervisor.cidata import NicConfig, SeedConfig, write_seed
from sal.hypervisor.qemu import QemuHypervisor
from sal.hypervisor.vm import NetAttachment, VmSpec
from tests.sal.guest import READY_MARKER, build_guest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu"),
]

SUBNET = "10.77.0"
OVERLAY = ipaddress.IPv6Network("4a1:2b3c:4d5e:6f70::/64")


@pytest.fixture
def state_root():
    root = Path(tempfile.mkdtemp(prefix="zn-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _overlay_address(name: str) -> ipaddress.IPv6Address:
    return mycelium.vm_address(OVERLAY, name)


def _vm(hv, guest, netns, root, name, index, runcmd):
    mac = f"52:54:00:77:00:{index:02x}"
    tap = f"zt{index}"
    net.create_tap(tap, netns=netns)
    mycelium.attach_vm_tap(tap, "br0", netns=netns)
    addresses = (f"{SUBNET}.{index}/24", f"{_overlay_address(name)}/64")
    seed = write_seed(
        SeedConfig(
            instance_id=name,
            hostname=name,
            nics=(NicConfig(mac=mac, addresses=addresses, gateway6=f"{OVERLAY[1]}"),),
            runcmd=runcmd,
        ),
        root / f"{name}.cidata",
    )
    return hv.create(
        VmSpec(
            vm_id=name,
            cpus=1,
            memory_mb=256,
            kernel=guest.kernel,
            initrd=guest.initrd,
            cidata=seed,
            nics=(NetAttachment(mac=mac, tap=tap),),
            extra={"netns": netns},
        )
    )


def test_two_vms_on_a_bridge_reach_each_other(netns, state_root):
    guest = build_guest()
    mycelium.wire_bridge("br0", OVERLAY, netns=netns)
    net.add_address("br0", f"{SUBNET}.1/24", netns=netns)
    server6 = _overlay_address("server")
    routes = run(["ip", "-n", netns, "route", "show", "default"]).stdout
    assert routes.strip() == "", "the test namespace must have no way out"

    hv = QemuHypervisor(state_root)
    try:
        _vm(hv, guest, netns, state_root, "server", 2, ("nc -ll -p 7000 -e /bin/cat &",))
        _vm(
            hv,
            guest,
            netns,
            state_root,
            "client",
            3,
            (
                f"for i in $(seq 30); do ping -c1 -W1 {SUBNET}.2 >/dev/null && break; done;"
                f" ping -c 2 -W 2 {SUBNET}.2",
                f"echo overlay; ping -6 -c 2 -W 2 {server6}",
                f"for i in $(seq 10); do printf 'echo-%s\\n' ok | nc -w 2 {SUBNET}.2 7000"
                " && break; sleep 1; done",
            ),
        )
        hv.wait_console("server", f"{READY_MARKER} server", timeout=90)
        text = hv.wait_console("client", "\necho-ok", timeout=120)
        assert "2 packets transmitted, 2 packets received" in text, text[-1500:]
        assert "\noverlay\r\n" in text, text[-1500:]  # the serial console writes CRLF
        overlay_part = text.split("\noverlay\r\n", 1)[1]
        assert "2 packets transmitted, 2 packets received" in overlay_part, text[-1500:]
        assert "\necho-ok" in text, text[-1500:]
        # The namespace side of the bridge (the overlay gateway) reaches both guests too.
        for name in ("server", "client"):
            ping = ["busybox", "ping", "-6", "-c", "1", "-W", "5", str(_overlay_address(name))]
            run(["ip", "netns", "exec", netns, *ping])
        for host in (2, 3):
            run(
                [
                    "ip",
                    "netns",
                    "exec",
                    netns,
                    "busybox",
                    "ping",
                    "-c",
                    "1",
                    "-W",
                    "5",
                    f"{SUBNET}.{host}",
                ]
            )
    finally:
        for info in hv.list_vms():
            hv.delete(info.vm_id)
