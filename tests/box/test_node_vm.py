"""`box.node_vm`: how the local node VM is started (the boot itself, under `scripts/up
--node-image`, is tests/box/test_up_node_image.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from box.node_vm import GUEST_LEDGER, NodeVm, NodeVmError
from tests.integration.conftest import ROOT

CMDLINE = "console=ttyS0,115200 panic=-1 quiet zos.version=1+abc"


def _build(tmp_path: Path) -> Path:
    build = tmp_path / "build"
    build.mkdir(parents=True)
    for name in ("vmlinuz", "initrd"):
        (build / name).write_bytes(b"x")
    (build / "manifest.json").write_text(json.dumps({"cmdline": CMDLINE}))
    return build


def _vm(tmp_path: Path, **changes) -> NodeVm:
    settings = dict(
        image_dir=_build(tmp_path),
        state_dir=tmp_path / "state",
        ledger_port=18123,
        farm=7,
        enroll_token="tok",
    )
    return NodeVm(**{**settings, **changes})


def _option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_the_node_reaches_only_the_control_plane_on_loopback(tmp_path: Path):
    argv = _vm(tmp_path).argv()
    [netdev] = _option(argv, "-netdev")
    options = netdev.split(",")
    assert options[0] == "user" and "restrict=on" in options
    forwards = [o for o in options if o.startswith(("guestfwd=", "hostfwd="))]
    assert forwards == [f"guestfwd=tcp:{GUEST_LEDGER}-cmd:socat - TCP:127.0.0.1:18123"]
    assert len(_option(argv, "-nic")) == 0 and len(_option(argv, "-net")) == 0


def test_the_node_boots_the_build_with_the_farms_command_line(tmp_path: Path):
    vm = _vm(tmp_path)
    argv = vm.argv()
    assert _option(argv, "-kernel") == [str(vm.image_dir / "vmlinuz")]
    assert _option(argv, "-initrd") == [str(vm.image_dir / "initrd")]
    assert _option(argv, "-append") == [
        f"{CMDLINE} zos.farm=7 zos.ledger=http://{GUEST_LEDGER} zos.enroll=tok"
    ]
    assert f"file={vm.state_dir / 'pool.img'}" in _option(argv, "-drive")[0]


def test_the_pool_disk_is_made_blank_once_and_then_kept(tmp_path: Path):
    vm = _vm(tmp_path, disk_gib=2)
    vm.prepare_disk()
    assert vm.disk.stat().st_size == 2 << 30
    assert vm.disk.stat().st_blocks == 0  # sparse: costs nothing until the node writes
    with open(vm.disk, "r+b") as disk:
        disk.write(b"pool")
    _vm(tmp_path / "again", state_dir=vm.state_dir, disk_gib=4).prepare_disk()
    assert vm.disk.stat().st_size == 2 << 30
    assert vm.disk.read_bytes()[:4] == b"pool"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"memory_mib": 512}, "memory must be at least 1024 MiB, got 512"),
        ({"cpus": 0}, "cpus must be between 1 and 64, got 0"),
        ({"disk_gib": 0}, "the pool disk must be at least 1 GiB, got 0"),
    ],
)
def test_bad_settings_are_refused_by_name(tmp_path: Path, changes: dict, message: str):
    with pytest.raises(NodeVmError, match=message):
        _vm(tmp_path, **changes).check()


def test_without_a_build_it_says_how_to_make_one(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "box.node_vm", "run", "--image", str(tmp_path / "none"),
         "--state", str(tmp_path / "state"), "--port", "1", "--farm", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "has no vmlinuz, initrd, manifest.json: build the node image first" in done.stderr
    assert "python -m image build --out" in done.stderr
    assert not (tmp_path / "state").exists()
