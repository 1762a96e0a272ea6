"""Issue 5's figure: a signed script submitted → its VM's guest ready, against bare QEMU.

Starts the real system in a short temporary directory (daphne, the coordinator worker, one node
agent with its redis-server and runners, `--storage` on a btrfs pool on a loop device,
`--mycelium off`), installs the test guest (tests/sal/guest.py) as image `busybox` in the node's
image cache, then for each run, interleaved (the order alternates so host load hits both alike):

- pipeline: POST a signed deployment whose script calls `vm_create(#{name: "b<i>", image:
  "busybox", cpus: 1, memory_mb: 256, disk_gb: 1, mycelium: false})`, logs, then polls
  `vm_info(name).console` every 20 ms until the guest prints `ZOS-GUEST-READY`, and returns;
  timed from the POST to the deployment's `succeeded` event arriving on the owner's live feed
  (`/ws/deployments/`), as a user would see it. A second deployment (not timed) deletes the VM.
- bare: `qemu-system-x86_64 -kernel ... -initrd ...` of the same guest to the same marker
  (bench/vm_bench.py's `bare_boot`).

Prints p50/p90 of each, the ratio of the p50s (target ≤ 1.3) and the median of the per-run
ratios, and where the pipeline's time goes, from the job's events (node timestamps) and a
watcher on the VM's console file: submit → runner started the job, → `vm_create` returned, →
marker in the console file (the guest's boot), → script noticed it and ended (its polling),
→ `succeeded` on the feed.

    .venv/bin/python bench/vm_pipeline_bench.py [--runs 10] [--poll-ms 20] [--keep]

Needs root (loop device, mount, the guest build), qemu-system-x86, btrfs-progs, redis-server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.deploy_bench import Box, Feed, percentile  # noqa: E402
from bench.report import Report  # noqa: E402
from bench.vm_bench import bare_boot, wait_marker  # noqa: E402
from nodeagent.functions.resources import node_resources  # noqa: E402
from tests.sal.conftest import loop_pool, storage_missing  # noqa: E402
from tests.sal.guest import READY_MARKER, build_guest, install_guest_image  # noqa: E402

POOL_SIZE = 4 * 2**30
MACHINE = "q35"  # the node's QEMU driver default, so the bare boot runs the same machine
CREATED_LOG = "vm_create returned"

CREATE = """
let vm = vm_create(#{name: "NAME", image: "busybox", cpus: 1, memory_mb: 256, disk_gb: 1,
                     mycelium: false});
log("CREATED_LOG");
let info = vm_info("NAME");
while !info.console.contains("READY_MARKER") {
    if info.state != "running" { throw `the VM stopped: ${info.state}`; }
    sleep(POLL_MS);
    info = vm_info("NAME");
}
vm.name
"""

DELETE = 'vm_delete("NAME")'


def script(template: str, name: str, poll_ms: int = 20) -> str:
    return (
        template.replace("NAME", name)
        .replace("CREATED_LOG", CREATED_LOG)
        .replace("READY_MARKER", READY_MARKER)
        .replace("POLL_MS", str(poll_ms))
    )


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


class Pipeline:
    """The running system and the user's feed; one VM deployment at a time."""

    def __init__(self, box: Box, poll_ms: int) -> None:
        self.box = box
        self.poll_ms = poll_ms
        self.node = box.node_ids[0]
        self.feed = Feed(box)
        self.session = requests.Session()

    def deploy(self, source: str, timeout: float) -> tuple[int, float, float]:
        """Submit and wait for `succeeded`: (deployment, wall time of the POST, seconds)."""
        submitted_wall = time.time()
        started = time.perf_counter()
        deployment = self.box.submit(self.node, self.session, source, name="vm-bench")
        ended, status = self.feed.wait(deployment, timeout=timeout)
        if status != "succeeded":
            error = self.deployment(deployment)["job"].get("error")
            raise SystemExit(f"deployment {deployment} ended {status}: {error}")
        return deployment, submitted_wall, ended - started

    def deployment(self, deployment: int) -> dict:
        response = self.session.get(
            f"{self.box.url}/api/v1/deployments/{deployment}", headers=self.box.headers, timeout=5
        )
        response.raise_for_status()
        return response.json()

    def events(self, deployment: int) -> list[dict]:
        response = self.session.get(
            f"{self.box.url}/api/v1/deployments/{deployment}/events",
            headers=self.box.headers,
            timeout=5,
        )
        response.raise_for_status()
        return response.json()["results"]

    def vm_run(self, name: str) -> dict[str, float]:
        """One timed create-to-ready deployment, then the untimed delete."""
        console = Console(self.box.node_dir(0) / "vms", name)
        deployment, submitted, total = self.deploy(script(CREATE, name, self.poll_ms), timeout=300)
        events = self.events(deployment)
        self.deploy(script(DELETE, name), timeout=120)
        return split(events, submitted, total, console.ready_at())


class Console:
    """Watches the VM's console file from outside, so the split can tell the guest's boot from
    the time the script takes to notice it (wall clock, like the node's event stamps)."""

    def __init__(self, state: Path, name: str) -> None:
        self.state, self.name = state, name
        self.seen: float | None = None
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            found = list(self.state.glob(f"*-{self.name}/console.log"))
            if found:
                wait_marker(found[0], timeout=deadline - time.monotonic())
                self.seen = time.time()
                return
            time.sleep(0.01)

    def ready_at(self) -> float:
        self.thread.join(timeout=10)
        if self.seen is None:
            raise SystemExit(f"never saw {READY_MARKER} in VM {self.name}'s console file")
        return self.seen


def split(
    events: list[dict], submitted: float, total: float, console_ready: float
) -> dict[str, float]:
    """Where one pipeline run's seconds went, from the job's node-stamped events."""

    def first(status: str, log: str | None = None) -> float:
        for event in events:
            if event["status"] == status and (log is None or event["log"] == log):
                return _epoch(event["ts"])
        raise SystemExit(f"no {status} {log or ''} event in {events}")

    running = first("running")
    created = first("running", CREATED_LOG)
    succeeded = first("succeeded")
    return {
        "total": total,
        "pickup": running - submitted,
        "vm_create": created - running,
        "boot": console_ready - created,
        "notice": succeeded - console_ready,
        "report": submitted + total - succeeded,
    }


def kill_leftover_vms(state: Path) -> None:
    """QEMU daemonizes, so a VM the bench did not get to delete outlives the agent: stop it by
    the pid its own pid file holds (only if that pid still runs that VM)."""
    for pid_file in state.glob("*/qemu.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(pid_file.parent).encode() in cmdline:
                os.kill(pid, signal.SIGKILL)
                print(f"killed leftover VM {pid_file.parent.name} (pid {pid})", file=sys.stderr)


def _terminate(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through every cleanup below


def stats(values: list[float]) -> str:
    return f"p50 {statistics.median(values):6.2f}s  p90 {percentile(values, 0.9):6.2f}s"


def bench(runs: int, runners: int, poll_ms: int, workdir: Path, report: Report) -> bool:
    guest = build_guest()
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(loop_pool(workdir / "btrfs", size=POOL_SIZE))
        agent_args = ("--storage", str(pool.mountpoint), "--mycelium", "off")
        box = Box(workdir, nodes=1, runners=runners, agent_args=agent_args)
        stack.callback(kill_leftover_vms, box.node_dir(0) / "vms")
        stack.enter_context(box)
        images = node_resources(box.node_dir(0), (pool.mountpoint,), "127.0.0.1").vms.images
        install_guest_image(images)
        pipeline = Pipeline(box, poll_ms)

        bare: list[float] = []
        rows: list[dict[str, float]] = []
        ratios: list[float] = []
        for n in range(runs):
            if n % 2 == 0:
                bare.append(bare_boot(guest, workdir, MACHINE))
                rows.append(pipeline.vm_run(f"b{n}"))
            else:
                rows.append(pipeline.vm_run(f"b{n}"))
                bare.append(bare_boot(guest, workdir, MACHINE))
            row = rows[-1]
            ratios.append(row["total"] / bare[-1])
            print(
                f"  run {n + 1}: bare {bare[-1]:.2f}s  pipeline {row['total']:.2f}s "
                f"(pickup {row['pickup']:.2f}  vm_create {row['vm_create']:.2f}  "
                f"boot {row['boot']:.2f}  notice {row['notice']:.2f}  "
                f"report {row['report']:.2f})",
                flush=True,
            )

    totals = [r["total"] for r in rows]
    ratio = statistics.median(totals) / statistics.median(bare)
    met = ratio <= 1.3
    print(f"guest ready over {runs} interleaved runs (machine {MACHINE}, TCG):")
    print(f"  bare qemu -kernel          {stats(bare)}")
    print(f"  pipeline submit -> ready   {stats(totals)}")
    print(
        f"  ratio pipeline/bare (p50s) {ratio:.2f}  -> target <= 1.3 "
        f"{'met' if met else 'NOT met'}; median of per-run ratios {statistics.median(ratios):.2f}"
    )
    print("  pipeline split (p50 of each part):")
    for key, what in (
        ("pickup", "submit -> runner starts the job"),
        ("vm_create", "vm_create (seed, vdisk, QEMU start)"),
        ("boot", "vm_create returned -> marker in console file"),
        ("notice", "marker in console file -> script ends"),
        ("report", "job ended on node -> succeeded on the feed"),
    ):
        print(f"    {what:<48} {statistics.median(r[key] for r in rows):6.2f}s")
        report.add(f"split: {what} p50", statistics.median(r[key] for r in rows), "s")
    report.add("bare qemu -kernel to guest ready p50", statistics.median(bare), "s")
    report.add("pipeline submit -> guest ready p50", statistics.median(totals), "s")
    report.add("ratio pipeline / bare (p50s)", ratio, "x", "<= 1.3")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--runners", type=int, default=2, help="runner processes on the node")
    parser.add_argument(
        "--poll-ms", type=int, default=20, help="the script's sleep between vm_info polls"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir and its logs")
    parser.add_argument("--json", help="write the figures here (bench/report.py)")
    args = parser.parse_args()
    report = Report("vm_pipeline", params={"runs": args.runs, "poll_ms": args.poll_ms})
    reason = storage_missing()
    if reason:
        raise SystemExit(f"vm_pipeline_bench {reason}")
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a background job ignores it
        signal.signal(signum, _terminate)
    # Short on purpose: QMP socket paths under the node's data dir must fit in 107 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="zp-", dir="/tmp"))
    try:
        bench(args.runs, args.runners, args.poll_ms, workdir, report)
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc or 'Ctrl-C'}); everything the bench started is stopped")
        return 130
    finally:
        if args.keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
