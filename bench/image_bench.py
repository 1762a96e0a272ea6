"""Boot image figures: build times, re-stamp time, size, and boot-to-registered over USB and iPXE.

    sudo .venv/bin/python bench/image_bench.py [--skip-cold] [--no-ipxe] [--keep]

1. cold build: `python -m image build` with an empty cache (downloads every package);
   `--skip-cold` uses the repository's build/cache instead and reports only the cached build;
2. cached build: the same command again (nothing changed: the base layer is reused);
3. re-stamp: `python -m image stamp` for a farm (new .cmdline in the UKI + a new usb.img);
4. sizes: the UKI (what a USB stick or the ledger carries), initrd, usb.img;
5. USB boot: a control plane on loopback registers the build, the farm's usb.img is fetched from
   `/boot/<farm>/usb.img` and booted under q35 + OVMF (TCG here) with a blank disk; timed from
   QEMU's start to the node being online in the ledger with an uptime report;
6. iPXE boot: the same farm booted from `ipxe.efi` (ipxe package) on an EFI system partition;
   the DHCP server (QEMU's) hands out `/boot/<farm>/boot.ipxe` on the ledger as the boot file,
   as a site's DHCP server would; timed the same way.

Targets (issue 6): image ≤ 70 MB, cached build < 60 s, re-stamp < 5 s, boot-to-registered < 40 s.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bootimage.usb import make_esp_disk  # noqa: E402
from image.manifest import read_manifest  # noqa: E402
from image.vm import GUEST_LEDGER, IPXE_EFI, Guest, blank_disk, kvm_usable  # noqa: E402
from tests.image.conftest import GuestLedger, farm_nodes, fetch  # noqa: E402
from tests.integration.conftest import bootstrap, wait_for  # noqa: E402

MB = 1_000_000
WIDTH = 38
TARGETS = {
    "UKI size (MB)": 70,
    "cached build (s)": 60,
    "re-stamp (s)": 5,
    "USB boot to registered (s)": 40,
}


def report(name: str, value: float) -> None:
    target = TARGETS.get(name)
    verdict = (
        "" if target is None else ("  ok" if value <= target else f"  MISSED (target {target})")
    )
    print(f"{name:<{WIDTH}} {value:8.1f}{verdict}", flush=True)


def timed_build(out: Path, cache: Path) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "image", "build", "--out", str(out), "--cache", str(cache)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"image build failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - started


def timed_stamp(image: Path, out: Path) -> float:
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "image",
            "stamp",
            "--farm",
            "1",
            "--ledger",
            "http://10.0.0.1:8000",
            "--enroll",
            "zet_bench",
            "--image",
            str(image),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return time.monotonic() - started


def boot_to_registered(
    ledger: GuestLedger,
    farm: int,
    boot_disk: Path,
    workdir: Path,
    known: set[str],
    net_options: str = "",
) -> tuple[float, str]:
    """Boot a new machine from `boot_disk`; seconds until a new node is online with uptime."""
    workdir.mkdir()
    guest = Guest(
        workdir=workdir,
        boot_disk=boot_disk,
        ledger_port=ledger.port,
        disks=[blank_disk(workdir / "disk.img", 2048)],
        net_options=net_options,
    )
    started = time.monotonic()
    guest.start()

    def new_node() -> dict | None:
        if guest.process.poll() is not None:
            raise SystemExit(f"QEMU exited early; console:\n{guest.tail(40)}")
        for node in farm_nodes(ledger, farm):
            if node["public_key"] not in known and node["status"] == "online" and node["uptime"]:
                return node
        return None

    try:
        node = wait_for(new_node, timeout=600, what="the node to register", every=0.5)
        seconds = time.monotonic() - started
        guest.powerdown(timeout=90)
    except AssertionError as exc:
        raise SystemExit(f"{exc}; console:\n{guest.tail(40)}") from None
    finally:
        guest.kill()
    return seconds, node["public_key"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cold", action="store_true", help="use build/cache, no cold build")
    parser.add_argument("--no-ipxe", action="store_true", help="skip the iPXE boot")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="zos-image-bench-"))
    out = work / "out"
    ledger: GuestLedger | None = None
    try:
        cache = ROOT / "build/cache" if args.skip_cold else work / "cache"
        if not args.skip_cold:
            report("cold build (s)", timed_build(out, cache))
        report("cached build (s)", timed_build(out, cache))
        report("re-stamp (s)", timed_stamp(out, work / "stamped"))
        manifest = read_manifest(out)
        for name in ("zos.efi", "initrd", "usb.img"):
            label = "UKI size (MB)" if name == "zos.efi" else f"{name} size (MB)"
            report(label, manifest["files"][name]["size"] / MB)
        print(f"image {manifest['version']}, zstd -{manifest['zstd_level']}", flush=True)

        ledger = GuestLedger(var_dir=work / "var")
        ledger.var_dir.mkdir()
        ledger.manage("migrate", "--no-input", "-v0")
        ledger.manage("createcachetable")
        ledger.manage("build_image", "--skip-build", "--out", str(out))
        ledger.start()
        farm = bootstrap(ledger)["farm"]
        started = time.monotonic()
        usb = fetch(ledger, f"/boot/{farm}/usb.img", work / "usb.img")
        report("ledger stamp + download usb.img (s)", time.monotonic() - started)
        accel = "KVM" if kvm_usable() else "TCG"
        print(f"boots under {accel}, q35 + OVMF, 2 vCPU, 2 GiB RAM, 2 GiB blank disk", flush=True)
        seconds, key = boot_to_registered(ledger, farm, usb, work / "usb-boot", set())
        report("USB boot to registered (s)", seconds)
        if not args.no_ipxe:
            ipxe_disk = work / "ipxe.img"
            make_esp_disk({"EFI/BOOT/BOOTX64.EFI": IPXE_EFI}, ipxe_disk)
            bootfile = f"bootfile=http://{GUEST_LEDGER}/boot/{farm}/boot.ipxe"
            seconds, _ = boot_to_registered(
                ledger, farm, ipxe_disk, work / "ipxe-boot", {key}, net_options=bootfile
            )
            report("iPXE boot to registered (s)", seconds)
    finally:
        if ledger is not None:
            ledger.kill()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    return 0


if __name__ == "__main__":
    sys.exit(main())
