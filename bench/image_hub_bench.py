"""The image hub's figures: push throughput, re-push cost, and a node's first fetch of an image.

Starts the real system in a short temporary directory (daphne, the coordinator worker, one node
agent with its redis-server and runners, `--storage` on a btrfs pool on a loop device,
`--mycelium off`), makes an image directory of the test guest (tests/sal/guest.py: kernel and
initramfs) plus a random `disk.raw` of `--disk-mib`, then:

1. push: `zos image push`'s code (hash, HEAD, stream the parts) publishes it; timed end to end;
2. re-push: the same directory as a new version, every part already on the hub;
3. first create: a script calls `vm_create` on a node that has never seen the image (fetch with
   signed requests, sha256 and size checked, atomic install, VM disk reflinked) — timed from the
   script's log line before the call to the one after it (node clock);
4. cached create: a second VM from the now-cached image, timed the same way.

The fetch rate is the image size over (first create - cached create). Loopback only: these are
the software's costs (hashing, fsync, Django and daphne), not a network's.

    .venv/bin/python bench/image_hub_bench.py [--disk-mib 256] [--keep]

Needs root (loop device, mount, the guest build), qemu-system-x86, btrfs-progs, redis-server.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.deploy_bench import Box  # noqa: E402
from bench.report import Report  # noqa: E402
from bench.vm_pipeline_bench import kill_leftover_vms  # noqa: E402
from client.api import Api  # noqa: E402
from contracts.image_manifest import sign_manifest  # noqa: E402
from tests.sal.conftest import loop_pool, storage_missing  # noqa: E402
from tests.sal.guest import build_guest  # noqa: E402
from zoscli.images import read_image_dir, upload_missing  # noqa: E402

POOL_SIZE = 8 * 2**30
CREATE = """
log("before");
vm_create(#{{name: "{name}", image: "bench", cpus: 1, memory_mb: 256, disk_gb: 1,
            mycelium: false}});
log("after");
"""


def image_dir(workdir: Path, disk_mib: int) -> Path:
    guest = build_guest()
    image = workdir / "image"
    image.mkdir()
    (image / "kernel").symlink_to(guest.kernel)
    (image / "initrd").symlink_to(guest.initrd)
    with open(image / "disk.raw", "wb") as disk:
        for _ in range(disk_mib):
            disk.write(os.urandom(2**20))
    (image / "image.json").write_text('{"cmdline": "", "min_disk_gb": 1}\n')
    return image


def push(box: Box, directory: Path, version: str) -> tuple[float, int]:
    """Publish like `zos image push`; (seconds, bytes uploaded)."""
    started = time.monotonic()
    local = read_image_dir(str(directory), name="bench", version=version)
    api = Api(box.url, box.token, timeout=300)
    _, sent = upload_missing(api, local, io.StringIO())
    api.publish_image(sign_manifest(box.key, local.manifest))
    return time.monotonic() - started, sent


def run(box: Box, script: str) -> list[dict]:
    """Deploy `script` to the node, wait for it to succeed; its events."""
    with requests.Session() as session:
        deployment = box.submit(box.node_ids[0], session, script, name="bench")
        url = f"{box.url}/api/v1/deployments/{deployment}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            state = session.get(url, headers=box.headers, timeout=10).json()
            if state["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.2)
        if state["status"] != "succeeded":
            raise SystemExit(f"the script {state['status']}: {state['job'].get('error')}")
        return session.get(f"{url}/events", headers=box.headers, timeout=10).json()["results"]


def create(box: Box, name: str) -> float:
    """Seconds between the script's log lines around `vm_create` (the node's clock)."""
    events = run(box, CREATE.format(name=name))
    at = {e["log"]: datetime.fromisoformat(e["ts"]) for e in events if e["log"]}
    return (at["after"] - at["before"]).total_seconds()


def bench(disk_mib: int, workdir: Path, report: Report) -> None:
    directory = image_dir(workdir, disk_mib)
    size = sum(p.stat().st_size for p in directory.iterdir() if p.name != "image.json")
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(loop_pool(workdir / "btrfs", size=POOL_SIZE))
        agent_args = ("--storage", str(pool.mountpoint), "--mycelium", "off")
        box = Box(workdir, nodes=1, runners=2, agent_args=agent_args)
        stack.callback(kill_leftover_vms, box.node_dir(0) / "vms")
        stack.enter_context(box)
        pushed, sent = push(box, directory, "1")
        repushed, resent = push(box, directory, "2")
        first = create(box, "a")
        cached = create(box, "b")
        run(box, 'vm_delete("a"); vm_delete("b")')
    mib = size / 2**20
    print(f"image: {mib:.1f} MiB (kernel, initrd, {disk_mib} MiB disk.raw)")
    print(f"  push            {pushed:6.2f}s  {sent / 2**20 / pushed:7.1f} MiB/s (hash + upload)")
    print(f"  re-push         {repushed:6.2f}s  uploaded {resent} bytes (hash + HEAD only)")
    print(f"  first create    {first:6.2f}s  (fetch, verify, install, VM)")
    print(f"  cached create   {cached:6.2f}s")
    print(f"  fetch rate      {mib / max(first - cached, 1e-3):7.1f} MiB/s")
    report.add("image size", mib, "MiB")
    report.add("push (hash + upload)", pushed, "s")
    report.add("push rate", sent / 2**20 / pushed, "MiB/s")
    report.add("re-push (hash + HEAD only)", repushed, "s")
    report.add("first vm_create (fetch, verify, install, VM)", first, "s")
    report.add("cached vm_create", cached, "s")
    report.add("fetch rate", mib / max(first - cached, 1e-3), "MiB/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--disk-mib", type=int, default=256, help="size of the random disk.raw")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and its logs")
    parser.add_argument("--json", help="write the figures here (bench/report.py)")
    args = parser.parse_args()
    report = Report("image_hub", params={"disk_mib": args.disk_mib})
    reason = storage_missing()
    if reason:
        raise SystemExit(f"image_hub_bench {reason}")
    # Short on purpose: QMP socket paths under the node's data dir must fit in 107 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="zh-", dir="/tmp"))
    try:
        bench(args.disk_mib, workdir, report)
    finally:
        if args.keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
