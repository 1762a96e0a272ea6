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
import json
import os
import secrets
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
from pathlib import Path

import requests
from nacl.signing import SigningKey
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts.key_proof import sign_key_proof  # noqa: E402
from contracts.payload_types import DEPLOYMENT_TYPE  # noqa: E402
from signing.dsse import sign_envelope  # noqa: E402
from signing.keys import public_key_hex  # noqa: E402

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
        return self

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
        now = int(time.time())
        payload = {
            "script": script,
            "target": {"node": node},
            "nonce": secrets.token_hex(16),
            "issued_at": now,
            "expires_at": now + 3600,
            "name": name,
        }
        envelope = sign_envelope(self.key, DEPLOYMENT_TYPE, json.dumps(payload).encode())
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
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
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="zos-bench-"))
    try:
        run(args, workdir)
    finally:
        if args.keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path) -> None:
    with Box(workdir, args.nodes, args.runners) as box:
        feed = Feed(box)
        session = requests.Session()
        latencies = []
        watched = {name: box.named[name].pid for name in ("daphne", "node0")}
        cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
        for i in range(args.count):
            started = time.perf_counter()
            script = f"40 + 2 // {i}" if args.unique else "40 + 2"
            deployment = box.submit(box.node_ids[i % len(box.node_ids)], session, script)
            ended, status = feed.wait(deployment)
            if status != "succeeded":
                raise SystemExit(f"deployment {deployment} ended {status}")
            latencies.append((ended - started) * 1000)
            if (i + 1) % 100 == 0:
                print(f"  {i + 1}/{args.count} done", file=sys.stderr)
        print(f"latency over {args.count} sequential deployments (submit -> succeeded event):")
        for q in (0.5, 0.9, 0.99):
            print(f"  p{int(q * 100):<3} {percentile(latencies, q):8.1f} ms")
        print(f"  mean {statistics.mean(latencies):8.1f} ms   max {max(latencies):8.1f} ms")
        cpu = {
            name: (cpu_seconds(pid) - cpu_before[name]) * 1000 / args.count
            for name, pid in watched.items()
        }
        print(
            f"  CPU per deployment: control plane (daphne) {cpu['daphne']:.1f} ms, "
            f"node agent {cpu['node0']:.1f} ms (without its runners and compile workers)"
        )
        print(
            "  targets: p50 < 50 ms, p99 < 200 ms ->",
            "met"
            if percentile(latencies, 0.5) < 50 and percentile(latencies, 0.99) < 200
            else "NOT met",
        )

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
        print(
            f"throughput: {args.burst} deployments on {len(box.node_ids)} nodes x "
            f"{args.runners} runners in {elapsed:.1f} s = {args.burst / elapsed:.1f} jobs/s"
        )


if __name__ == "__main__":
    main()
