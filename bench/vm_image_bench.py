"""The Debian 12 VM image: what it weighs and how long it takes to be ready under TCG.

1. build: `python -m image vm-image debian-12` (build/images/debian-12, packages cached in
   build/cache), then the same build again (inputs unchanged: nothing is rebuilt);
2. size: each part as stored (`kernel`, `initrd`, `disk.raw` apparent and allocated) and
   compressed with `zstd -9` (what a transfer of the part would cost);
3. boot: `--runs` first boots through `QemuHypervisor` (1 vCPU, 512 MiB, a fresh 2 GiB disk from
   the template each time, a NoCloud seed with a hostname and an SSH key, a NIC on user
   networking with `restrict=on`): seconds from `create()` to `ZOS-VM-READY <hostname>` on the
   console; a first boot makes the SSH host key and grows the root file system. p50, min, max.
   Interleaved with them, the same number of boots of the busybox test guest (tests/sal/guest.py:
   the same kernel, no disk, no sshd) to `ZOS-GUEST-READY`: the floor the host's load sets.

    sudo .venv/bin/python bench/vm_image_bench.py [--runs 5]

Needs root (the build) and qemu-system-x86.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import Report  # noqa: E402
from image.vm_image import READY_MARKER, VmImageOptions, build_vm_image  # noqa: E402
from sal.hypervisor.cidata import SeedConfig, write_seed  # noqa: E402
from sal.hypervisor.qemu import QemuHypervisor  # noqa: E402
from sal.hypervisor.vm import NetAttachment, VmSpec  # noqa: E402
from sal.images import GIB  # noqa: E402
from tests.sal.guest import READY_MARKER as GUEST_READY  # noqa: E402
from tests.sal.guest import build_guest  # noqa: E402

OUT = ROOT / "build/images/debian-12"
CACHE = ROOT / "build/cache"
MIB = 2**20


def timed_build() -> float:
    started = time.monotonic()
    build_vm_image(VmImageOptions(distribution="debian-12", out=OUT, cache=CACHE))
    return time.monotonic() - started


def compressed(path: Path) -> int:
    done = subprocess.run(
        ["zstd", "-q", "-9", "-T2", "-c", str(path)], capture_output=True, check=True
    )
    return len(done.stdout)


def sizes() -> list[tuple[str, int, int, int]]:
    """(part, bytes, bytes allocated on disk, bytes after zstd -9)."""
    rows = []
    for name in ("kernel", "initrd", "disk.raw"):
        path = OUT / name
        stat = path.stat()
        rows.append((name, stat.st_size, stat.st_blocks * 512, compressed(path)))
    return rows


def boot(hv: QemuHypervisor, work: Path, n: int, cmdline: str, key: str) -> float:
    vm_id = f"deb{n}"
    disk = work / f"{vm_id}.raw"
    shutil.copyfile(OUT / "disk.raw", disk)
    with open(disk, "ab") as f:
        f.truncate(2 * GIB)
    name = f"bench-{n}"
    seed = write_seed(
        SeedConfig(instance_id=vm_id, hostname=name, ssh_keys=(key,)), work / f"{vm_id}.cidata"
    )
    spec = VmSpec(
        vm_id=vm_id, cpus=1, memory_mb=512, kernel=OUT / "kernel", initrd=OUT / "initrd",
        cmdline=f"console=ttyS0 panic=-1 {cmdline}", disks=(disk,), cidata=seed,
        nics=(NetAttachment(mac=f"52:54:00:00:00:{n:02x}"),),
    )  # fmt: skip
    started = time.monotonic()
    hv.create(spec)
    try:
        hv.wait_console(vm_id, f"{READY_MARKER} {name}", timeout=300)
        return time.monotonic() - started
    finally:
        hv.delete(vm_id)
        disk.unlink()


def guest_boot(hv: QemuHypervisor, guest, n: int) -> float:
    vm_id = f"guest{n}"
    spec = VmSpec(
        vm_id=vm_id, cpus=1, memory_mb=512, kernel=guest.kernel, initrd=guest.initrd,
        cmdline="console=ttyS0 panic=-1", nics=(NetAttachment(mac=f"52:54:00:00:01:{n:02x}"),),
    )  # fmt: skip
    started = time.monotonic()
    hv.create(spec)
    try:
        hv.wait_console(vm_id, GUEST_READY, timeout=300)
        return time.monotonic() - started
    finally:
        hv.delete(vm_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="first boots to time (5)")
    parser.add_argument("--json", help="write the figures here (bench/report.py)")
    args = parser.parse_args()
    report = Report("vm_image", params={"runs": args.runs})

    first = timed_build()
    again = timed_build()
    print(f"build: {first:.1f} s, again with unchanged inputs {again:.1f} s")
    print("\n| part | bytes | allocated | zstd -9 |\n|---|---|---|---|")
    rows = sizes()
    rows.append(("total", *(sum(row[i] for row in rows) for i in (1, 2, 3))))
    for name, *figures in rows:
        print(f"| {name} | " + " | ".join(f"{f / MIB:.1f} MiB" for f in figures) + " |")
    report.add("build, cold", first, "s")
    report.add("build again, inputs unchanged", again, "s")
    report.add("image size (total, zstd -9)", rows[-1][3] / MIB, "MiB")

    cmdline = json.loads((OUT / "image.json").read_text())["cmdline"]
    with tempfile.TemporaryDirectory(prefix="zvb-", dir="/tmp") as tmp:
        work = Path(tmp)
        key_file = work / "key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)], check=True
        )
        key = key_file.with_suffix(".pub").read_text().strip()
        hv = QemuHypervisor(work / "state")
        guest = build_guest()
        times, floor = [], []
        for n in range(args.runs):
            times.append(boot(hv, work, n, cmdline, key))
            floor.append(guest_boot(hv, guest, n))
    for what, figures in ((f"debian-12 to {READY_MARKER}", times), ("busybox guest", floor)):
        print(
            f"{what} ({hv.accel}, {args.runs} boots): p50 {statistics.median(figures):.2f} s, "
            f"min {min(figures):.2f} s, max {max(figures):.2f} s"
        )
        report.add(f"{what} p50", statistics.median(figures), "s")
    report.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
