"""Facts read from this real machine, checked against independent tools (ARCHITECTURE §2 step 5)."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nodeagent.facts import Capacity, Interface, NodeFacts, read_facts


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, check=True, text=True, timeout=10).stdout


def _needs(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def _df(path: Path, column: str) -> str:
    return _run("df", "-B1", f"--output={column}", str(path)).splitlines()[1].strip()


def _machine_macs() -> dict[str, str]:
    """Device-backed links as iproute2 sees them (`parentbus` names the bus of the device)."""
    links = json.loads(_run("ip", "-json", "-details", "link", "show"))
    return {link["ifname"]: link.get("address", "") for link in links if "parentbus" in link}


@pytest.fixture(scope="module")
def facts() -> NodeFacts:
    return read_facts()


def test_cru_is_what_nproc_counts(facts):
    _needs("nproc")
    assert facts.capacity.cru == int(_run("nproc"))


def test_mru_is_the_total_memory_free_reports(facts):
    _needs("free")
    mem = next(line for line in _run("free", "-b").splitlines() if line.startswith("Mem:"))
    assert facts.capacity.mru == int(mem.split()[1])


def test_mru_matches_getconf(facts):
    _needs("getconf")
    pages, page_size = int(_run("getconf", "_PHYS_PAGES")), int(_run("getconf", "PAGESIZE"))
    assert facts.capacity.mru == pages * page_size


def test_interfaces_are_the_device_backed_links_with_their_macs(facts):
    _needs("ip")
    assert {i.name: i.mac for i in facts.interfaces} == _machine_macs()


def test_interface_addresses_include_every_host_address(facts):
    _needs("hostname")
    ips = {ip.split("/")[0] for i in facts.interfaces for ip in i.ips}
    assert set(_run("hostname", "-I").split()) <= ips
    assert all("/" in ip for i in facts.interfaces for ip in i.ips)
    assert not {"127.0.0.1", "::1"} & ips


def test_without_iproute2_interfaces_come_from_sysfs(monkeypatch, tmp_path):
    _needs("ip")
    machine = _machine_macs()
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `ip` to run

    interfaces = read_facts().interfaces

    assert {i.name: i.mac for i in interfaces} == machine
    assert all(i.ips == [] for i in interfaces)


def test_without_storage_there_is_no_disk_capacity(facts):
    assert (facts.capacity.sru, facts.capacity.hru) == (0, 0)


def test_a_pool_counts_its_filesystem_size_as_ssd_or_hdd_by_its_disk(tmp_path):
    capacity = read_facts(storage_paths=[tmp_path]).capacity

    assert capacity.sru + capacity.hru == int(_df(tmp_path, "size"))
    vfs = os.statvfs(tmp_path)
    assert capacity.sru + capacity.hru == vfs.f_blocks * vfs.f_frsize
    source = _df(tmp_path, "source")
    if shutil.which("lsblk") and source.startswith("/dev/"):
        rotational = _run("lsblk", "-dno", "ROTA", source).strip() == "1"
        assert (capacity.hru > 0) == rotational
        assert (capacity.sru > 0) == (not rotational)


def test_paths_on_one_filesystem_are_counted_once(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    once = read_facts(storage_paths=[tmp_path]).capacity
    thrice = read_facts(storage_paths=[tmp_path / "a", tmp_path / "b", tmp_path]).capacity

    assert (thrice.sru, thrice.hru) == (once.sru, once.hru)


def test_memory_filesystems_are_not_disk():
    shm = Path("/dev/shm")
    if not shm.is_dir() or _df(shm, "fstype") != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm")
    capacity = read_facts(storage_paths=[shm]).capacity
    assert (capacity.sru, capacity.hru) == (0, 0)


def test_a_missing_storage_path_is_skipped_not_fatal(tmp_path):
    capacity = read_facts(storage_paths=[tmp_path / "not-mounted"]).capacity
    assert (capacity.sru, capacity.hru) == (0, 0)


def test_virtualized_agrees_with_systemd_detect_virt(facts):
    _needs("systemd-detect-virt")
    detected = subprocess.run(
        ["systemd-detect-virt", "--vm"], capture_output=True, text=True, timeout=10
    )
    assert facts.virtualized == (detected.returncode == 0)


def test_secure_boot_is_off_without_efi(facts):
    if Path("/sys/firmware/efi").exists():
        pytest.skip("this machine boots by EFI")
    assert facts.secure_boot is False


def test_serial_is_empty_without_dmi(facts):
    if Path("/sys/class/dmi/id").exists():
        pytest.skip("this machine has DMI")
    assert facts.serial == ""


def test_to_dict_is_the_register_shape_and_json_ready(tmp_path):
    data = read_facts(storage_paths=[tmp_path]).to_dict()

    assert json.loads(json.dumps(data)) == data
    assert set(data) == {"capacity", "interfaces", "serial", "secure_boot", "virtualized"}
    assert set(data["capacity"]) == {"cru", "mru", "sru", "hru"}
    assert all(set(i) == {"name", "mac", "ips"} for i in data["interfaces"])


def test_a_capacity_override_merges_into_what_was_read(facts):
    overridden = read_facts(overrides={"capacity": {"mru": 4 * 2**30}})

    assert overridden.capacity == Capacity(
        cru=facts.capacity.cru, mru=4 * 2**30, sru=0, hru=facts.capacity.hru
    )
    assert overridden.interfaces == facts.interfaces


def test_top_level_overrides_replace_what_was_read():
    overrides = {
        "interfaces": [{"name": "eth9", "mac": "52:54:00:00:00:09", "ips": ["10.9.0.2/24"]}],
        "serial": "SN-TEST",
        "secure_boot": True,
        "virtualized": False,
    }

    facts = read_facts(overrides=overrides)

    assert facts.interfaces == [Interface("eth9", "52:54:00:00:00:09", ["10.9.0.2/24"])]
    assert (facts.serial, facts.secure_boot, facts.virtualized) == ("SN-TEST", True, False)
    assert facts.to_dict()["interfaces"] == overrides["interfaces"]


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"capacity": {"mru": "4G"}}, "capacity.mru"),
        ({"capacity": {"cru": -1}}, "capacity.cru"),
        ({"capacity": {"cru": True}}, "capacity.cru"),
        ({"capacity": {"gpu": 1}}, "capacity.gpu"),
        ({"capacity": 8}, "capacity"),
        ({"secure_boot": "yes"}, "secure_boot"),
        ({"virtualized": 1}, "virtualized"),
        ({"serial": 42}, "serial"),
        ({"interfaces": {"name": "eth0"}}, "interfaces"),
        ({"interfaces": [{"name": "eth0", "ips": "10.0.0.1/8"}]}, "interfaces[0].ips"),
        ({"interfaces": [{"mac": "52:54:00:00:00:01"}]}, "interfaces[0].name"),
        ({"hostname": "x"}, "hostname"),
    ],
)
def test_bad_overrides_are_refused_naming_the_key(overrides, names):
    with pytest.raises(ValueError, match=re.escape(f"'{names}'")):
        read_facts(overrides=overrides)
