"""What the QEMU driver and the image cache cost, against doing the same thing by hand.

1. boot: create → `ZOS-GUEST-READY` on the console through `QemuHypervisor`, against a bare
   `qemu-system-x86_64 -kernel ... -initrd ...` boot of the same test guest, interleaved in the
   same run (so host load hits both alike); prints p50 of each and the ratio (target ≤ 1.3).
2. disk: a new VM disk from a 2 GiB image by reflink (`ImageCache.vdisk_from`) against a full
   copy (`cp --reflink=never`), both fsync'ed, on a btrfs pool on a loop device the bench makes
   and removes; prints p50 of each and the ratio.

    .venv/bin/python bench/vm_bench.py [--runs 10] [--copy-runs 3] [--skip-disk]

Needs root (loop devices, the guest build), qemu-system-x86, btrfs-progs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sal import btrfs  # noqa: E402
from sal.command import run  # noqa: E402
from sal.hypervisor.qemu import QemuHypervisor  # noqa: E402
from sal.hypervisor.vm import VmSpec  # noqa: E402
from sal.images import GIB, ImageCache  # noqa: E402
from tests.sal.guest import READY_MARKER, build_guest  # noqa: E402

CMDLINE = "console=ttyS0 panic=-1"


def wait_marker(log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if READY_MARKER.encode() in log.read_bytes():
                return
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"no {READY_MARKER} in {log} within {timeout:g}s")


def bare_boot(guest, work: Path, machine: str) -> float:
    log = work / "bare.log"
    log.unlink(missing_ok=True)
    argv = [
        "qemu-system-x86_64", "-M", machine, "-accel", "tcg", "-m", "256",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", str(guest.kernel), "-initrd", str(guest.initrd), "-append", CMDLINE,
        "-serial", f"file:{log}",
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        wait_marker(log)
        return time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()


def driver_boot(hv: QemuHypervisor, guest, n: int) -> tuple[float, float]:
    """Seconds to the readiness marker, and how long `create()` itself took."""
    vm_id = f"bench{n}"
    spec = VmSpec(
        vm_id=vm_id, cpus=1, memory_mb=256, kernel=guest.kernel, initrd=guest.initrd,
        cmdline=CMDLINE,
    )  # fmt: skip
    started = time.monotonic()
    hv.create(spec)
    created = time.monotonic() - started
    try:
        wait_marker(hv.state_root / vm_id / "console.log")
        return time.monotonic() - started, created
    finally:
        hv.delete(vm_id)


def bench_boot(runs: int, machine: str) -> dict[str, float]:
    guest = build_guest()
    work = Path(tempfile.mkdtemp(prefix="zb-", dir="/tmp"))
    hv = QemuHypervisor(work / "vms", machine=machine)
    bare, driver, create, pair = [], [], [], []
    try:
        for n in range(runs):
            bare.append(bare_boot(guest, work, machine))
            boot, created = driver_boot(hv, guest, n)
            driver.append(boot)
            create.append(created)
            pair.append(boot / bare[-1])
            print(
                f"  run {n + 1}: bare {bare[-1]:.2f}s  driver {boot:.2f}s "
                f"(create() returned after {created:.2f}s)",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "bare": statistics.median(bare),
        "driver": statistics.median(driver),
        "create": statistics.median(create),
        "pair_ratio": statistics.median(pair),
    }


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bench_disk(runs: int, copy_runs: int) -> tuple[float, float]:
    work = Path(tempfile.mkdtemp(prefix="zb-disk-", dir="/var/tmp"))
    image_file = work / "pool.img"
    with open(image_file, "wb") as f:
        f.truncate(8 * GIB)
    device = run(["losetup", "--find", "--show", str(image_file)]).stdout.strip()
    mnt = work / "pool"
    try:
        btrfs.make_pool(device, "zos-bench")
        pool = btrfs.mount_pool(device, mnt)
        cache = ImageCache(pool.nocow_dir("images"))
        vdisks = pool.nocow_dir("vdisks")
        src = work / "disk.raw"
        block = os.urandom(1024 * 1024)
        with open(src, "wb") as f:
            for _ in range(2048):
                f.write(block)
        print("  writing the 2 GiB image into the cache ...", flush=True)
        cache.install("bench", kernel=src, disk=src)
        run(["sync"], timeout=300)
        reflink, full = [], []
        for n in range(runs):
            dst = vdisks / f"r{n}.raw"
            started = time.monotonic()
            cache.vdisk_from("bench", dst, 4)
            _fsync(dst)
            reflink.append(time.monotonic() - started)
            dst.unlink()
        for n in range(copy_runs):
            dst = vdisks / f"c{n}.raw"
            started = time.monotonic()
            run(["cp", "--reflink=never", str(cache.get("bench").disk), str(dst)], timeout=600)
            with open(dst, "ab") as f:
                f.truncate(4 * GIB)
            _fsync(dst)
            full.append(time.monotonic() - started)
            dst.unlink()
            run(["sync"], timeout=300)
    finally:
        run(["umount", str(mnt)], check=False)
        run(["losetup", "--detach", device], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return statistics.median(reflink), statistics.median(full)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--copy-runs", type=int, default=3)
    parser.add_argument("--machine", default="q35")
    parser.add_argument("--skip-disk", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("vm_bench needs root (guest build, loop devices)")

    print(f"boot: {args.runs} interleaved runs, machine {args.machine}, TCG", flush=True)
    b = bench_boot(args.runs, args.machine)
    ratio = b["driver"] / b["bare"]
    verdict = "ok" if ratio <= 1.3 else "MISSES target 1.3"
    print(
        f"boot p50: bare {b['bare']:.2f}s  driver {b['driver']:.2f}s  ratio {ratio:.2f} "
        f"({verdict}); median of per-run ratios {b['pair_ratio']:.2f}; "
        f"create() p50 {b['create']:.2f}s"
    )

    if not args.skip_disk:
        print(f"disk: 2 GiB image, {args.runs} reflink and {args.copy_runs} full copies")
        reflink, full = bench_disk(args.runs, args.copy_runs)
        print(
            f"disk p50: reflink {reflink * 1000:.1f} ms  full copy {full:.2f}s  "
            f"ratio full/reflink {full / reflink:.0f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
