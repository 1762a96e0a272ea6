"""The same trivial job through Celery with a Redis broker: what a Python team would use instead
of ZOS for job dispatch (issue 19), as the yardstick for deploy_bench's latency.

Starts a redis-server (broker and result backend) and a Celery worker (prefork, `--concurrency`
processes, like a node's runners) in a temporary directory, then times `--count` round trips of
`answer.apply_async((40, 2)).get()` one after another, after a warm-up. Celery checks no
signature anywhere; ZOS checks the user's at the control plane and again on the node.

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/celery_bench.py [--count 500]
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import Report  # noqa: E402
from bench.stats import percentile  # noqa: E402
from box.grid import free_port, redis_answers  # noqa: E402

WARM_UP = 20


def celery_round_trips(count: int, workdir: Path, concurrency: int = 2) -> list[float]:
    """Milliseconds of each of `count` sequential apply_async → result round trips."""
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    os.environ["ZOS_BENCH_CELERY_REDIS"] = redis_url
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (workdir / "celery-redis").mkdir(exist_ok=True)
    started = [
        subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--dir",
                str(workdir / "celery-redis"),
            ],
            stdout=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 20
        while not redis_answers(port):
            if time.monotonic() > deadline:
                raise SystemExit("the Celery bench's redis-server did not start")
            time.sleep(0.1)
        log = open(workdir / "celery-worker.log", "ab")  # noqa: SIM115
        started.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "bench.celery_app",
                    "worker",
                    "--pool",
                    "prefork",
                    "--concurrency",
                    str(concurrency),
                    "--loglevel",
                    "WARNING",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
        from bench.celery_app import answer

        answer.apply_async((40, 2)).get(timeout=60)  # the worker is up
        trips = []
        for i in range(WARM_UP + count):
            t0 = time.perf_counter()
            if answer.apply_async((40, 2)).get(timeout=30) != 42:
                raise SystemExit("Celery returned a wrong answer")
            if i >= WARM_UP:
                trips.append((time.perf_counter() - t0) * 1000)
        gc.collect()  # results unsubscribe from the backend when collected: while it is up
        return trips
    finally:
        for process in reversed(started):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--json", help="write the figures here (bench/report.py)")
    args = parser.parse_args(argv)
    report = Report("celery", params={"count": args.count, "concurrency": args.concurrency})
    workdir = Path(tempfile.mkdtemp(prefix="zos-celery-"))
    try:
        trips = celery_round_trips(args.count, workdir, args.concurrency)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.add("celery: apply_async -> result p50", percentile(trips, 0.5), "ms")
    report.add("celery: apply_async -> result p99", percentile(trips, 0.99), "ms")
    report.print()
    report.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
