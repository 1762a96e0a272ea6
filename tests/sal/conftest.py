"""Real storage and networking for SAL tests: btrfs pools on loop devices, network namespaces.

Nothing here mocks the kernel. A pool is a sparse file attached to a loop device, formatted and
mounted through sal.btrfs with quotas on; a namespace is a real `ip netns`. Teardown always runs,
even when the test failed, and leaves no mount, loop device, file or namespace behind. Tests that
need these facilities are skipped with the reason when the machine lacks them (not root, no loop
devices, no btrfs, no iproute2).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sal import btrfs
from sal.command import CommandFailed, run

POOL_SIZE = 2 * 2**30


def storage_missing() -> str | None:
    """Why btrfs-on-loop tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root for loop devices and mounts"
    if not Path("/dev/loop-control").exists():
        return "needs loop devices (/dev/loop-control is missing)"
    for tool in ("losetup", "mkfs.btrfs", "btrfs", "blkid", "mount"):
        if shutil.which(tool) is None:
            return f"needs {tool} (btrfs-progs / util-linux)"
    return None


def net_missing() -> str | None:
    """Why network-namespace tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None:
        return "needs ip (iproute2)"
    return None


@pytest.fixture
def root_required() -> None:
    """Skip unless this machine can make btrfs pools on loop devices."""
    reason = storage_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def net_required() -> None:
    """Skip unless this machine can make network namespaces."""
    reason = net_missing()
    if reason:
        pytest.skip(reason)


@contextlib.contextmanager
def loop_pool(
    workdir: Path, *, size: int = POOL_SIZE, label: str = "zos-test"
) -> Iterator[btrfs.Pool]:
    """A btrfs pool on a sparse file behind a loop device, mounted at workdir/pool."""
    reason = storage_missing()
    if reason:
        pytest.skip(reason)
    workdir.mkdir(parents=True, exist_ok=True)
    image = workdir / "pool.img"
    mountpoint = workdir / "pool"
    with image.open("wb") as f:
        f.truncate(size)
    device = run(["losetup", "--find", "--show", str(image)]).stdout.strip()
    try:
        btrfs.make_pool(device, label)
        yield btrfs.mount_pool(device, mountpoint)
    finally:
        _unmount(mountpoint)
        run(["losetup", "--detach", device], check=False)
        image.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            mountpoint.rmdir()


def _unmount(mountpoint: Path) -> None:
    """Unmount; if a leftover process keeps it busy, detach it lazily so nothing stays mounted."""
    try:
        btrfs.unmount_pool(mountpoint)
    except CommandFailed:
        run(["umount", "--lazy", str(mountpoint)], check=False)


@pytest.fixture
def btrfs_pool(root_required, tmp_path: Path) -> Iterator[btrfs.Pool]:
    """A fresh 2 GiB btrfs pool (quotas on) for one test."""
    with loop_pool(tmp_path / "btrfs") as pool:
        yield pool


@pytest.fixture(scope="module")
def btrfs_pool_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[btrfs.Pool]:
    """One 2 GiB btrfs pool (quotas on) shared by the tests of a module."""
    with loop_pool(tmp_path_factory.mktemp("btrfs")) as pool:
        yield pool


def _add_netns(name: str) -> None:
    run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def _remove_netns(name: str) -> None:
    """Kill what still runs inside, then delete the namespace; its virtual links go with it."""
    pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    run(["ip", "netns", "delete", name], check=False)


@pytest.fixture
def netns_factory(net_required) -> Iterator[Callable[[], str]]:
    """Make fresh namespaces (`zt-<hex>`, loopback up) on demand; all are deleted afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"zt-{secrets.token_hex(4)}"
        _add_netns(name)
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in reversed(made):
            _remove_netns(name)


@pytest.fixture
def netns(netns_factory: Callable[[], str]) -> str:
    """A fresh network namespace for one test, deleted afterwards with everything in it."""
    return netns_factory()
