"""btrfs SAL on real pools: sparse files on loop devices, formatted and mounted by sal.btrfs."""

import errno
import os
import time
from pathlib import Path

import pytest

from sal import btrfs
from sal.command import SalError, run

from .conftest import loop_pool

MiB = 2**20


def write_file(path: Path, size: int, chunk: int = MiB) -> None:
    """Write `size` bytes of incompressible data and make sure they reached the filesystem."""
    block = os.urandom(chunk)
    with path.open("wb") as f:
        for _ in range(size // chunk):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())


def test_pool_fixture_is_a_mounted_btrfs_with_quotas(btrfs_pool):
    fstype = run(["findmnt", "-n", "-o", "FSTYPE", str(btrfs_pool.mountpoint)]).stdout
    assert fstype.strip() == "btrfs"
    assert "Qgroupid" in run(["btrfs", "qgroup", "show", str(btrfs_pool.mountpoint)]).stdout


@pytest.mark.parametrize("name", ["", "a/b", "..", ".", ".hidden", "x" * 256])
def test_bad_names_are_refused(btrfs_pool_module, name):
    with pytest.raises(SalError, match="name"):
        btrfs_pool_module.create_subvolume(name)


def test_create_is_idempotent_and_listed(btrfs_pool_module):
    pool = btrfs_pool_module
    path = pool.create_subvolume("vol-idem")
    assert pool.create_subvolume("vol-idem") == path == pool.mountpoint / "vol-idem"
    assert pool.exists("vol-idem")
    listed = {s.name: s for s in pool.list_subvolumes()}
    assert listed["vol-idem"].path == path
    assert not listed["vol-idem"].readonly
    pool.delete_subvolume("vol-idem")


def test_create_refuses_a_plain_directory(btrfs_pool_module):
    (btrfs_pool_module.mountpoint / "plain").mkdir()
    with pytest.raises(SalError, match="exists and is not one"):
        btrfs_pool_module.create_subvolume("plain")


def test_limit_is_set_read_changed_and_removed(btrfs_pool_module):
    pool = btrfs_pool_module
    pool.create_subvolume("vol-limit", limit=64 * MiB)
    assert pool.get_limit("vol-limit") == 64 * MiB
    pool.set_limit("vol-limit", 128 * MiB)
    assert pool.get_limit("vol-limit") == 128 * MiB
    pool.set_limit("vol-limit", None)
    assert pool.get_limit("vol-limit") is None
    with pytest.raises(SalError, match="positive"):
        pool.set_limit("vol-limit", 0)
    with pytest.raises(SalError, match="no subvolume 'missing'"):
        pool.set_limit("missing", MiB)
    pool.delete_subvolume("vol-limit")


def test_quota_is_enforced(btrfs_pool_module):
    pool = btrfs_pool_module
    path = pool.create_subvolume("vol-full", limit=16 * MiB)
    with pytest.raises(OSError) as err:
        write_file(path / "big", 64 * MiB)
    assert err.value.errno in (errno.EDQUOT, errno.ENOSPC)
    assert pool.usage("vol-full").referenced <= 17 * MiB
    pool.delete_subvolume("vol-full")


def test_usage_numbers_are_plausible(btrfs_pool_module):
    pool = btrfs_pool_module
    before = pool.pool_usage()
    assert before.size == 2 * 2**30
    path = pool.create_subvolume("vol-usage")
    write_file(path / "data", 32 * MiB)
    usage = pool.usage("vol-usage")
    assert 32 * MiB <= usage.referenced < 33 * MiB
    assert 32 * MiB <= usage.exclusive < 33 * MiB
    assert usage.limit is None
    assert pool.usages()["vol-usage"] == usage
    after = pool.pool_usage()
    assert after.used - before.used >= 32 * MiB
    assert 0 < after.free < before.free <= before.size
    pool.delete_subvolume("vol-usage")


def test_snapshot_keeps_the_content_of_its_moment(btrfs_pool_module):
    pool = btrfs_pool_module
    src = pool.create_subvolume("vol-snap")
    (src / "note").write_text("before")
    snap = pool.snapshot("vol-snap", "vol-snap-1", readonly=True)
    (src / "note").write_text("after")
    assert (snap / "note").read_text() == "before"
    with pytest.raises(OSError) as err:
        (snap / "note").write_text("changed")
    assert err.value.errno == errno.EROFS
    listed = {s.name: s for s in pool.list_subvolumes()}
    assert listed["vol-snap-1"].readonly
    writable = pool.snapshot("vol-snap", "vol-snap-2")
    (writable / "note").write_text("mine")
    assert (src / "note").read_text() == "after"
    with pytest.raises(SalError, match="already exists"):
        pool.snapshot("vol-snap", "vol-snap-2")
    with pytest.raises(SalError, match="no subvolume 'nope'"):
        pool.snapshot("nope", "vol-snap-3")
    for name in ("vol-snap-2", "vol-snap-1", "vol-snap"):
        pool.delete_subvolume(name)


def test_delete_leaves_no_subvolume_or_qgroup(btrfs_pool_module):
    pool = btrfs_pool_module
    path = pool.create_subvolume("vol-gone", limit=8 * MiB)
    write_file(path / "data", 2 * MiB)
    subvol_id = int(run(["btrfs", "inspect-internal", "rootid", str(path)]).stdout)
    started = time.monotonic()
    pool.delete_subvolume("vol-gone")
    assert time.monotonic() - started < 5
    assert not path.exists()
    assert "vol-gone" not in {s.name for s in pool.list_subvolumes()}
    qgroups = run(["btrfs", "qgroup", "show", "--raw", str(pool.mountpoint)]).stdout
    assert f"0/{subvol_id} " not in qgroups
    pool.delete_subvolume("vol-gone")  # idempotent


def test_reflink_copy_shares_extents(btrfs_pool):
    pool = btrfs_pool
    images = pool.create_subvolume("images")
    write_file(images / "base.img", 512 * MiB, chunk=8 * MiB)
    before = pool.pool_usage().used
    started = time.monotonic()
    btrfs.reflink_copy(images / "base.img", images / "vm1.img")
    assert time.monotonic() - started < 3
    assert (images / "vm1.img").stat().st_size == 512 * MiB
    run(["btrfs", "filesystem", "sync", str(pool.mountpoint)])
    assert pool.pool_usage().used - before < 16 * MiB
    shared = run(["btrfs", "filesystem", "du", "--raw", "-s", str(images)]).stdout.splitlines()[-1]
    total, exclusive, set_shared = (int(x) for x in shared.split()[:3])
    assert set_shared >= 512 * MiB and exclusive < MiB and total >= 1024 * MiB
    with pytest.raises(SalError, match="already exists"):
        btrfs.reflink_copy(images / "base.img", images / "vm1.img")


def test_reflink_copy_explains_why_it_cannot(btrfs_pool_module, tmp_path):
    pool = btrfs_pool_module
    (pool.mountpoint / "cow.img").write_bytes(b"x" * 4096)
    with pytest.raises(SalError, match="different filesystems"):
        btrfs.reflink_copy(pool.mountpoint / "cow.img", tmp_path / "copy.img")
    vdisks = pool.nocow_dir("vdisks-mixed")
    with pytest.raises(SalError, match="nodatacow"):
        btrfs.reflink_copy(pool.mountpoint / "cow.img", vdisks / "copy.img")
    assert not (vdisks / "copy.img").exists()


def test_nocow_dir_marks_new_files(btrfs_pool_module):
    pool = btrfs_pool_module
    pool.create_subvolume("vdisks")
    vdisks = pool.nocow_dir("vdisks")
    (vdisks / "disk.raw").write_bytes(b"\0" * 4096)
    flags = run(["lsattr", str(vdisks / "disk.raw")]).stdout.split()[0]
    assert "C" in flags
    nested = pool.nocow_dir(pool.mountpoint / "vdisks" / "sub")
    assert nested.is_dir()
    with pytest.raises(SalError):
        pool.nocow_dir("../escape")
    with pytest.raises(SalError, match="not inside pool"):
        pool.nocow_dir("/tmp")


def test_make_pool_refuses_a_used_disk(btrfs_pool):
    device = run(["findmnt", "-n", "-o", "SOURCE", str(btrfs_pool.mountpoint)]).stdout.strip()
    with pytest.raises(SalError, match=r"already holds a btrfs filesystem.*wipefs --all"):
        btrfs.make_pool(device, "again")


def test_make_pool_refuses_a_partitioned_disk(root_required, tmp_path):
    image = tmp_path / "disk.img"
    with image.open("wb") as f:
        f.truncate(64 * MiB)
    run(["sgdisk", "--new=1:0:0", str(image)])
    device = run(["losetup", "--find", "--show", str(image)]).stdout.strip()
    try:
        with pytest.raises(SalError, match="gpt partition table"):
            btrfs.make_pool(device, "again")
    finally:
        run(["losetup", "--detach", device])


def test_find_pools_sees_a_pool_and_its_mountpoint(btrfs_pool):
    device = run(["findmnt", "-n", "-o", "SOURCE", str(btrfs_pool.mountpoint)]).stdout.strip()
    found = [p for p in btrfs.find_pools() if device in p.devices]
    assert len(found) == 1
    assert found[0].label == "zos-test"
    assert found[0].mountpoints == [str(btrfs_pool.mountpoint)]


def test_remount_finds_existing_subvolumes(root_required, tmp_path):
    with loop_pool(tmp_path, size=256 * MiB) as pool:
        pool.create_subvolume("keep", limit=8 * MiB)
        device = run(["findmnt", "-n", "-o", "SOURCE", str(pool.mountpoint)]).stdout.strip()
        btrfs.unmount_pool(pool.mountpoint)
        btrfs.unmount_pool(pool.mountpoint)  # idempotent
        again = btrfs.mount_pool(device, pool.mountpoint)
        assert again.exists("keep") and again.get_limit("keep") == 8 * MiB
