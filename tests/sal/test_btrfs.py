"""btrfs SAL on real loop-mounted pools."""

from pathlib import Path

import pytest

from sal import btrfs
from sal.command import SalError, run


def test_pool_fixture_is_a_mounted_btrfs_with_quotas(btrfs_pool):
    assert (
        run(["findmnt", "-n", "-o", "FSTYPE", str(btrfs_pool.mountpoint)]).stdout.strip() == "btrfs"
    )
    assert "Qgroupid" in run(["btrfs", "qgroup", "show", str(btrfs_pool.mountpoint)]).stdout


def test_shared_pool_fixture_is_mounted(btrfs_pool_module):
    assert Path(btrfs_pool_module.mountpoint).is_dir()


@pytest.mark.parametrize("name", ["", "a/b", "..", ".hidden"])
def test_bad_names_are_refused(name):
    with pytest.raises(SalError):
        btrfs.validate_name(name)
