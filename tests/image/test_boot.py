"""The boot proof (issue 6): a farm's USB image from the ledger boots a node that joins by itself.

A real control plane (daphne on loopback) registers the session's build as its boot image and
serves the farm's `usb.img` from `/boot/<farm>/usb.img`. QEMU boots it the way a server would:
q35, UEFI firmware (OVMF), a blank disk, a NIC whose only way out is a forward to the ledger's
port (`restrict=on`). Nothing in the guest is told anything but what the image carries.

One guest serves the module: first boot (pool made, registered approved with QEMU's capacity,
uptime sent), power button (clean power-off), second boot from the same disks (same identity,
the pool reused, not remade), power button again.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from image.vm import BootFailed, Guest, blank_disk
from tests.image.conftest import BuiltImage, GuestLedger, farm_nodes, fetch
from tests.integration.conftest import bootstrap, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1500)]

CPUS = 2
MEMORY_MIB = 2048
DISK_MIB = 2048
GIB = 1 << 30
BOOT_TIMEOUT = 300
POWEROFF_TIMEOUT = 90
BTRFS_MAGIC_OFFSET = 0x10040  # superblock at 64 KiB, magic at +0x40, label at +0x12B
BTRFS_LABEL_OFFSET = 0x1012B


@dataclass
class Boot:
    node: dict
    console: str
    registered_after: float
    poweroff_code: int
    poweroff_console: str


@dataclass
class Node:
    ledger: GuestLedger
    farm: int
    guest: Guest
    disk: Path
    first: Boot | None = None
    second: Boot | None = None


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, built_image: BuiltImage) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("boot")
    ledger = GuestLedger(var_dir=work / "var")
    ledger.var_dir.mkdir()
    ledger.migrate()
    ledger.manage("build_image", "--skip-build", "--out", str(built_image.directory))
    ledger.start()
    operator = bootstrap(ledger)  # owns the farm: its download approves the node
    farm = operator["farm"]
    usb = fetch(ledger, f"/boot/{farm}/usb.img", work / "usb.img", api_token=operator["api_token"])
    disk = blank_disk(work / "disk.img", DISK_MIB)
    guest = Guest(
        workdir=work,
        boot_disk=usb,
        ledger_port=ledger.port,
        disks=[disk],
        cpus=CPUS,
        memory_mib=MEMORY_MIB,
    )
    state = Node(ledger=ledger, farm=farm, guest=guest, disk=disk)
    yield state
    guest.kill()
    ledger.kill()


def boot_until_reporting(state: Node, *, previous: dict | None = None) -> Boot:
    """Start the guest, wait for it to register and report uptime twice, then power it off."""
    guest = state.guest
    started = time.monotonic()
    guest.start()

    def registered() -> dict | None:
        if guest.process.poll() is not None:
            raise BootFailed(f"QEMU exited ({guest.process.returncode}):\n{guest.tail()}")
        nodes = farm_nodes(state.ledger, state.farm)
        fresh = [
            n
            for n in nodes
            if n["status"] == "online"
            and n.get("uptime") is not None
            and (previous is None or n["last_seen"] != previous["last_seen"])
        ]
        return fresh[0] if fresh else None

    try:
        node = wait_for(registered, timeout=BOOT_TIMEOUT, what="the node to register", every=1)
    except AssertionError as exc:
        raise BootFailed(f"{exc}; console:\n{guest.tail(60)}") from None
    registered_after = time.monotonic() - started
    wait_for(
        lambda: farm_nodes(state.ledger, state.farm)[0]["uptime"] > node["uptime"],
        timeout=60,
        what="a second uptime report",
    )
    console = guest.console()
    code = guest.powerdown(timeout=POWEROFF_TIMEOUT)
    return Boot(
        node=farm_nodes(state.ledger, state.farm)[0],
        console=console,
        registered_after=registered_after,
        poweroff_code=code,
        poweroff_console=guest.console(),
    )


@pytest.fixture(scope="module")
def first_boot(node: Node) -> Boot:
    if node.first is None:
        node.first = boot_until_reporting(node)
    return node.first


@pytest.fixture(scope="module")
def second_boot(node: Node, first_boot: Boot) -> Boot:
    if node.second is None:
        node.second = boot_until_reporting(node, previous=first_boot.node)
    return node.second


def test_the_agent_starts_by_itself_and_registers_approved(node: Node, first_boot: Boot):
    console = first_boot.console
    for marker in ("step modules", "step network", "step storage", "step agent"):
        assert f"[zos] {marker}" in console
    assert "[zos] FAILED" not in console
    assert f"zos.farm={node.farm}" in console  # the farm's command line came from the ledger
    assert first_boot.node["status"] == "online"
    assert f"registered as node {first_boot.node['id']} (online)" in console
    print(f"boot to registered: {first_boot.registered_after:.1f}s")


def test_registered_capacity_is_what_qemu_gave_the_machine(first_boot: Boot):
    capacity = first_boot.node["capacity"]
    assert capacity["cru"] == CPUS
    assert 0.85 * MEMORY_MIB * 2**20 < capacity["mru"] <= MEMORY_MIB * 2**20
    # The blank disk became the pool; the USB stick did not count.
    assert 0.9 * DISK_MIB * 2**20 <= capacity["sru"] + capacity["hru"] <= DISK_MIB * 2**20
    assert first_boot.node["health"] == []
    interfaces = first_boot.node["interfaces"]
    assert any("10.0.2.15/24" in i["ips"] for i in interfaces)
    assert first_boot.node["virtualized"] is True


def test_the_blank_disk_became_a_btrfs_pool(node: Node, first_boot: Boot):
    assert "storage: /dev/vdb is empty: making it a btrfs pool" in first_boot.console
    with open(node.disk, "rb") as disk:
        disk.seek(BTRFS_MAGIC_OFFSET)
        assert disk.read(8) == b"_BHRfS_M"
        disk.seek(BTRFS_LABEL_OFFSET)
        assert disk.read(9) == b"zos-pool\0"


def test_uptime_is_reported(first_boot: Boot):
    assert first_boot.node["uptime"] > 0
    assert first_boot.node["last_seen"]


def test_the_power_button_powers_off_cleanly(first_boot: Boot):
    assert first_boot.poweroff_code == 0
    assert "[zos] step shutdown: stopping the agent (poweroff)" in first_boot.poweroff_console
    assert "[zos] step shutdown: done, poweroff now" in first_boot.poweroff_console
    assert "FAILED: unmounting" not in first_boot.poweroff_console


def test_after_a_reboot_the_node_comes_back_with_the_same_identity(
    node: Node, first_boot: Boot, second_boot: Boot
):
    nodes = farm_nodes(node.ledger, node.farm)
    assert len(nodes) == 1
    assert second_boot.node["id"] == first_boot.node["id"]
    assert second_boot.node["public_key"] == first_boot.node["public_key"]
    assert second_boot.node["status"] == "online"
    console = second_boot.console
    assert "created a new one" not in console  # the seed came from the pool
    assert "is empty: making it a btrfs pool" not in console  # the pool was mounted, not remade
    assert "storage: cache /var/cache/zos on /mnt/zos/" in console
    assert second_boot.poweroff_code == 0
