"""Submit-to-succeeded latency and sustained throughput of deployments on one box.

Starts its own control plane (daphne), coordinator worker and node agents (each with its own
redis-server and runners) in a temporary directory, registers a user key, then:

1. latency: submits trivial scripts one after another and times each from the POST to the
   `succeeded` event arriving on the user's live feed (`/ws/deployments/`); prints p50/p90/p99;
2. throughput: submits a burst from several threads to all nodes and reports jobs/second.

    .venv/bin/python bench/deploy_bench.py [--count 1000] [--nodes 3] [--runners 2] [--burst 300]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import requests
from nacl.signing import SigningKey
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import Report, tree_cpu_seconds  # noqa: E402
from bench.stats import percentile  # noqa: E402
from contracts.key_proof import sign_key_proof  # noqa: E402
from signing.keys import public_key_hex  # noqa: E402
from zoscli.envelope import build_payload, sign_deployment  # noqa: E402

FINAL = {"succeeded", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Box:
    """The whole system in a temp dir; every process is stopped on exit."""

    def __init__(
        self, workdir: Path, nodes: int, runners: int, agent_args: tuple[str, ...] = ()
    ) -> None:
        """`agent_args` are extra `nodeagent run` flags for every node (e.g. `--storage`)."""
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "ZOS_VAR_DIR": str(workdir / "var"),
            "ZOS_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: list[subprocess.Popen] = []
        self.named: dict[str, subprocess.Popen] = {}
        self.nodes, self.runners = nodes, runners
        self.agent_args = agent_args

    def node_dir(self, i: int) -> Path:
        """Node `i`'s data directory (its identity, Redis, VM state)."""
        return self.workdir / f"node{i}"

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def spawn(self, name: str, *argv: str) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append(process)
        self.named[name] = process
        log.close()

    def __enter__(self) -> Box:
        try:
            return self._start()
        except BaseException:
            self.__exit__()  # what started before the failure stops too
            raise

    def _start(self) -> Box:
        (self.workdir / "var").mkdir()
        print(f"setting up in {self.workdir}", file=sys.stderr)
        self.manage("migrate", "--no-input", "-v0")
        self.manage("createcachetable")
        boot = json.loads(self.manage("bootstrap_local"))
        self.token = self.manage("drf_create_token", boot["username"]).split()[2]
        py = sys.executable
        self.spawn(
            "daphne",
            py,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "grid.asgi:application",
        )
        self.spawn("coordinator", py, "manage.py", "coordinator", "--every", "0.2")
        self._wait(lambda: requests.get(f"{self.url}/api/v1/farms", timeout=1).ok, "daphne")
        enroll = self.manage(
            "create_enrollment_token", str(boot["farm"]), "--uses", str(self.nodes)
        ).split()[-1]
        for i in range(self.nodes):
            self.spawn(
                f"node{i}",
                py,
                "-m",
                "nodeagent",
                "run",
                "--ledger",
                self.url,
                "--farm",
                str(boot["farm"]),
                "--enroll",
                enroll,
                "--data",
                str(self.node_dir(i)),
                "--runners",
                str(self.runners),
                *self.agent_args,
            )
        self.node_ids = self._wait(self._online_nodes, f"{self.nodes} nodes online", timeout=60)
        self._register_key()
        return self

    def _register_key(self) -> None:
        """A signing key for the bench user, registered with its proof as a user would."""
        self.key = SigningKey.generate()
        challenge = requests.post(
            f"{self.url}/api/v1/keys/challenge", headers=self.headers, timeout=5
        ).json()
        proof = sign_key_proof(
            self.key,
            user=challenge["user"],
            challenge=challenge["challenge"],
            issued_at=int(time.time()),
        )
        requests.post(
            f"{self.url}/api/v1/keys",
            headers=self.headers,
            timeout=5,
            json={"name": "bench", "public_key": public_key_hex(self.key), "proof": proof},
        ).raise_for_status()

    def _online_nodes(self) -> list[int]:
        nodes = requests.get(f"{self.url}/api/v1/nodes", timeout=2).json()["results"]
        online = [n["id"] for n in nodes if n["status"] == "online"]
        return online if len(online) >= self.nodes else []

    def _wait(self, predicate, what: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = predicate()
            except requests.RequestException:
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise SystemExit(f"timed out waiting for {what}; logs in {self.workdir}")

    def __exit__(self, *exc) -> None:
        for process in reversed(self.processes):
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Token {self.token}"}

    def submit(
        self, node: int, session: requests.Session, script: str = "40 + 2", name: str = "bench"
    ) -> int:
        """Sign `script` as the bench user, POST it for `node`; the deployment's id."""
        payload = build_payload(script=script, target={"node": node}, name=name)
        envelope = sign_deployment(self.key, payload)
        response = session.post(
            f"{self.url}/api/v1/deployments",
            json={"envelope": envelope},
            headers=self.headers,
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["id"]


class Feed:
    """The user's live feed; records when each deployment reached a final state."""

    def __init__(self, box: Box) -> None:
        ws_url = box.url.replace("http://", "ws://") + "/ws/deployments/"
        self.ws = connect(ws_url, additional_headers=box.headers)
        self.finished: dict[int, tuple[float, str]] = {}
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):  # the box shutting down ends the feed
            self._collect()

    def _collect(self) -> None:
        for raw in self.ws:
            event = json.loads(raw)
            if event.get("status") in FINAL:
                with self.changed:
                    self.finished[event["deployment"]] = (time.perf_counter(), event["status"])
                    self.changed.notify_all()

    def wait(self, deployment: int, timeout: float = 60) -> tuple[float, str]:
        with self.changed:
            if not self.changed.wait_for(lambda: deployment in self.finished, timeout=timeout):
                raise SystemExit(f"deployment {deployment} did not finish in {timeout}s")
            return self.finished[deployment]


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (not its children): less swayed by a busy machine
    than wall-clock latency, so a change's cost shows even when the figures above are noisy."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Control-plane components by the name prefix the production profile gives their processes.
_GROUPS = (
    ("asgi-", "ASGI workers"),
    ("coordinator-", "coordinator workers"),
    ("postgres", "PostgreSQL"),
    ("redis", "control-plane redis"),
    ("haproxy", "HAProxy"),
    ("ledger-monitor", "ledger monitor"),
)


def component_cpu(box: Box) -> dict[str, float]:
    """CPU seconds so far of every component, summed per kind: the control plane's parts (the
    production profile's, or the one-box daphne and coordinator), each node agent, and what the
    agents started (their runners and redis-server). Read twice around a run, the difference per
    deployment is the figure to compare between changes on a shared machine."""
    totals: dict[str, float] = {}
    if hasattr(box, "control_plane_cpu"):
        for name, seconds in box.control_plane_cpu().items():
            label = next((label for prefix, label in _GROUPS if name.startswith(prefix)), name)
            totals[label] = totals.get(label, 0.0) + seconds
    else:
        for name, label in (("daphne", "ASGI workers"), ("coordinator", "coordinator workers")):
            totals[label] = tree_cpu_seconds(box.named[name].pid)
    totals["bench client"] = time.process_time()
    for name, process in box.named.items():
        if name.startswith("node"):
            own = cpu_seconds(process.pid)
            totals["node agents"] = totals.get("node agents", 0.0) + own
            started = tree_cpu_seconds(process.pid) - own
            totals["node runners + redis"] = totals.get("node runners + redis", 0.0) + started
    return totals


def report_cpu(report: Report, what: str, box: Box, before: dict[str, float], count: int) -> None:
    """CPU per deployment of each component since the `before` reading (`component_cpu`), of the
    control plane in all, and of this bench process itself (submitters and feed), with the load
    average the run ended at (a wall-clock figure means little without it)."""
    after = component_cpu(box)
    per = {name: (after[name] - before.get(name, 0.0)) * 1000 / count for name in after}
    control = sum(v for k, v in per.items() if not k.startswith(("node", "bench")))
    report.add(f"{what}: CPU per deployment, control plane", control, "ms")
    for name, value in per.items():
        report.add(f"{what}: CPU per deployment, {name}", value, "ms")
    report.add(f"{what}: load average at the end", os.getloadavg()[0], "")


STEPS = ("queued", "dispatched", "accepted", "running", "succeeded")


def report_steps(
    report: Report, what: str, box: Box, session: requests.Session, timed: list
) -> None:
    """Where a sequential deployment's time goes, from when each of its events was stored (the
    events API's `created`; the bench and the control plane share a clock): the POST until
    `queued` is stored, each stored status to the next, and from `succeeded` stored until the
    owner's feed told it. Fetched after the timed run, so not in its figures."""
    steps: dict[str, list[float]] = {}
    for deployment, submitted_at, took in timed:
        response = session.get(
            f"{box.url}/api/v1/deployments/{deployment}/events", headers=box.headers, timeout=10
        )
        response.raise_for_status()
        stored = {
            e["status"]: datetime.fromisoformat(e["created"]).timestamp()
            for e in response.json()["results"]
        }
        marks = [("submit", submitted_at), *((s, stored[s]) for s in STEPS)]
        marks.append(("feed", submitted_at + took))
        for (before, at), (after, then) in itertools.pairwise(marks):
            steps.setdefault(f"{before} -> {after}", []).append((then - at) * 1000)
    for step, values in steps.items():
        report.add(f"{what}: {step} p50", percentile(values, 0.5), "ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="sequential deployments timed")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--runners", type=int, default=2, help="runner processes per node")
    parser.add_argument("--burst", type=int, default=300, help="deployments in the burst")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and its logs")
    parser.add_argument(
        "--unique",
        action="store_true",
        help="a different script for each sequential deployment, so none is answered from the "
        "coordinator's compile cache (the default repeats one script, as a fleet deploy does)",
    )
    parser.add_argument(
        "--production",
        action="store_true",
        help="run on the production profile (PostgreSQL, Redis, ASGI workers behind HAProxy, "
        "coordinator workers: bench/production_box.py) instead of one daphne on SQLite",
    )
    parser.add_argument("--workers", type=int, default=2, help="ASGI workers (--production)")
    parser.add_argument(
        "--coordinators", type=int, default=2, help="coordinator workers (--production)"
    )
    parser.add_argument(
        "--celery",
        type=int,
        default=0,
        metavar="N",
        help="after the sequential run, time N round trips of the same trivial job through "
        "Celery with a Redis broker (bench/celery_bench.py) and report the ratio of the p50s",
    )
    parser.add_argument("--json", help="write the figures here (bench/report.py)")
    args = parser.parse_args(argv)
    report = Report(
        "deploy" + ("_production" if args.production else ""),
        params={k: v for k, v in vars(args).items() if k not in ("json", "keep")},
    )
    workdir = Path(tempfile.mkdtemp(prefix="zos-bench-"))
    try:
        run(args, workdir, report)
    finally:
        if args.keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report.print()
    report.write(args.json)
    return 0


def make_box(args: argparse.Namespace, workdir: Path) -> Box:
    if not args.production:
        return Box(workdir, args.nodes, args.runners)
    from bench.production_box import ProductionBox

    return ProductionBox(
        workdir,
        args.nodes,
        args.runners,
        workers=args.workers,
        coordinators=args.coordinators,
    )


def run(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    shape = f"{args.nodes} node{'s' if args.nodes > 1 else ''} x {args.runners} runners"
    with make_box(args, workdir) as box:
        feed = Feed(box)
        session = requests.Session()
        latencies, timed = [], []
        report.add(f"sequential, {shape}: load average at its start", os.getloadavg()[0], "")
        cpu_before = component_cpu(box)
        for i in range(args.count):
            submitted_at, started = time.time(), time.perf_counter()
            script = f"40 + 2 // {i}" if args.unique else "40 + 2"
            deployment = box.submit(box.node_ids[i % len(box.node_ids)], session, script)
            ended, status = feed.wait(deployment)
            if status != "succeeded":
                raise SystemExit(f"deployment {deployment} ended {status}")
            latencies.append((ended - started) * 1000)
            timed.append((deployment, submitted_at, ended - started))
            if (i + 1) % 100 == 0:
                print(f"  {i + 1}/{args.count} done", file=sys.stderr)
        what = f"sequential, {shape}"
        report.add(f"{what}: submit -> succeeded p50", percentile(latencies, 0.5), "ms", "< 30")
        report.add(f"{what}: submit -> succeeded p90", percentile(latencies, 0.9), "ms")
        report.add(f"{what}: submit -> succeeded p99", percentile(latencies, 0.99), "ms", "< 100")
        report.add(f"{what}: mean", statistics.mean(latencies), "ms")
        report.add(f"{what}: max", max(latencies), "ms")
        report_cpu(report, what, box, cpu_before, args.count)
        report_steps(report, what, box, session, timed)
        if args.celery:
            from bench.celery_bench import celery_round_trips

            trips = celery_round_trips(args.celery, workdir)
            ours, theirs = percentile(latencies, 0.5), percentile(trips, 0.5)
            report.add("celery: apply_async -> result p50", theirs, "ms")
            report.add("celery: apply_async -> result p99", percentile(trips, 0.99), "ms")
            report.add(
                f"ratio of our submit -> succeeded p50 ({shape}) to Celery's",
                ours / theirs,
                "x",
                "<= 3",
            )

        cpu_before = component_cpu(box)
        load = os.getloadavg()[0]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = list(
                pool.map(
                    lambda i: box.submit(box.node_ids[i % len(box.node_ids)], requests.Session()),
                    range(args.burst),
                )
            )
        for deployment in ids:
            feed.wait(deployment, timeout=300)
        elapsed = time.perf_counter() - started
        report.add(
            f"burst of {args.burst}, {shape}: throughput", args.burst / elapsed, "jobs/s", ">= 200"
        )
        report.add(f"burst of {args.burst}: load average at its start", load, "")
        report_cpu(report, f"burst of {args.burst}, {shape}", box, cpu_before, args.burst)


if __name__ == "__main__":
    sys.exit(main())
