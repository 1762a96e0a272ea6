"""The agent refuses to start, with exit code 2 and a message saying what to fix."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _nodeagent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nodeagent", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _run_agent(*args: str) -> subprocess.CompletedProcess:
    return _nodeagent("run", *args)


def test_corrupt_seed_stops_the_agent_and_is_left_untouched(tmp_path: Path):
    seed = tmp_path / "identity" / "seed"
    seed.parent.mkdir()
    seed.write_bytes(b"short")
    done = _run_agent("--ledger", "http://127.0.0.1:9", "--farm", "1", "--data", str(tmp_path))
    assert done.returncode == 2
    assert str(seed) in done.stderr
    assert seed.read_bytes() == b"short"


def test_bad_facts_file_is_refused_before_anything_is_sent(tmp_path: Path):
    facts = tmp_path / "facts.json"
    facts.write_text('{"capacity": {"cru": -1}}')
    done = _run_agent(
        "--ledger",
        "http://127.0.0.1:9",
        "--farm",
        "1",
        "--data",
        str(tmp_path / "d"),
        "--facts",
        str(facts),
    )
    assert done.returncode == 2
    assert "capacity.cru" in done.stderr


def test_missing_ledger_says_which_flag_to_pass(tmp_path: Path):
    done = _run_agent("--farm", "1", "--data", str(tmp_path))
    assert done.returncode == 2
    assert "--ledger" in done.stderr


def test_settings_come_from_a_kernel_command_line_file_and_a_missing_one_is_named(
    tmp_path: Path,
):
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("console=ttyS0 zos.ledger=ftp://media.example zos.farm=4")
    done = _run_agent("--data", str(tmp_path / "d"), "--kernel-cmdline", str(cmdline))
    assert done.returncode == 2
    assert "ledger URL 'ftp://media.example' must start with http" in done.stderr  # it was read
    missing = tmp_path / "no-such-cmdline"
    done = _run_agent("--data", str(tmp_path / "d"), "--kernel-cmdline", str(missing))
    assert done.returncode == 2
    assert f"--kernel-cmdline {missing}: there is no such file" in done.stderr


def test_status_shows_the_saved_state(tmp_path: Path):
    (tmp_path / "agent-state.json").write_text('{"node_id": 7, "status": "online"}')
    done = subprocess.run(
        [sys.executable, "-m", "nodeagent", "status", "--data", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert '"node_id": 7' in done.stdout


def _images(*args: str) -> subprocess.CompletedProcess:
    return _nodeagent("images", *args)


def test_operators_install_list_and_remove_images_on_the_pool(tmp_path: Path):
    from tests.sal.conftest import loop_pool

    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"\x7fELF kernel")
    tarball = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-cf", str(tarball), "-T", "/dev/null"], check=True)
    with loop_pool(tmp_path / "btrfs") as pool:
        storage = ("--storage", str(pool.mountpoint))
        made = _images(*storage, "install", "tiny", "--kernel", str(kernel), "--min-disk-gb", "2")
        assert made.returncode == 0, made.stderr
        container = _images(
            *storage, "install", "box", "--rootfs", str(tarball), "--entrypoint", "/bin/sh -c 'x y'"
        )
        assert container.returncode == 0, container.stderr
        listed = _images(*storage, "list").stdout.splitlines()
        assert [line.split("\t")[:3] for line in listed] == [
            ["box", "container", "min_disk_gb=0"],
            ["tiny", "vm", "min_disk_gb=2"],
        ]
        assert (pool.mountpoint / "images" / "tiny" / "kernel").read_bytes() == kernel.read_bytes()
        missing = _images(*storage, "install", "x", "--kernel", str(tmp_path / "nope"))
        assert missing.returncode == 1 and "no such file" in missing.stderr
        both = _images(*storage, "install", "x", "--kernel", str(kernel), "--rootfs", str(tarball))
        assert both.returncode == 1 and "either a kernel" in both.stderr
        built = tmp_path / "built"  # an image directory as `python -m image` writes one
        built.mkdir()
        (built / "kernel").write_bytes(b"\x7fELF built")
        (built / "image.json").write_text('{"cmdline": "root=LABEL=r", "min_disk_gb": 3}')
        from_dir = _images(*storage, "install", "deb", "--from", str(built))
        assert from_dir.returncode == 0, from_dir.stderr
        assert (pool.mountpoint / "images/deb/kernel").read_bytes() == b"\x7fELF built"
        assert "deb\tvm\tmin_disk_gb=3" in _images(*storage, "list").stdout
        mixed = _images(*storage, "install", "x", "--from", str(built), "--kernel", str(kernel))
        assert mixed.returncode == 1 and "no part options" in mixed.stderr
        no_image = _images(*storage, "install", "x", "--from", str(tmp_path))
        assert no_image.returncode == 1 and "has no image.json" in no_image.stderr
        assert _images(*storage, "remove", "tiny").returncode == 0
        gone = _images(*storage, "remove", "tiny")
        assert gone.returncode == 1 and "not in the image cache" in gone.stderr
    not_pool = _images("--storage", str(tmp_path), "list")
    assert not_pool.returncode == 1 and "not a btrfs pool" in not_pool.stderr
