"""Server time of every dashboard page for a user with many rows.

Seeds a throwaway SQLite database (in a temporary directory, removed afterwards) with one user
owning 1,000 deployments (each with its job and 3 events), 100 workloads, and nodes with 30 days
of uptime reports, then renders each page `--runs` times through Django's test Client and prints
p50/p95 per page against the target p95 < 50 ms. Server time only: no network, no browser.

    .venv/bin/python bench/dashboard_bench.py [--runs 50] [--deployments 1000] [--workloads 100]
                                              [--nodes 3] [--report-days 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import Report  # noqa: E402

TARGET_P95_MS = 50.0
PAGES = [
    "/",
    "/deploy",
    "/deployments",
    "/deployments?status=failed",
    "/deployments?page=20",
    "/deployments/{deployment}",
    "/keys",
    "/account/tokens",
    "/nodes",
    "/nodes/{node}",
    "/workloads",  # when the branch has it; a 404 is reported, not timed
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--workloads", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=3, help="nodes in the directory (10 a page)")
    parser.add_argument("--report-days", type=int, default=30)
    parser.add_argument("--json", help="write the figures here (bench/report.py)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="zos-dashboard-bench-"))
    os.environ.update(
        ZOS_VAR_DIR=str(workdir),
        ZOS_ALLOWED_HOSTS="testserver",
        DJANGO_SETTINGS_MODULE="grid.settings",
    )
    os.environ.pop("DATABASE_URL", None)
    try:
        return run(args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from coordinator.models import Deployment
    from tests.dashboard.seed import add_deployments, add_workloads, seed_user

    call_command("migrate", "--no-input", verbosity=0)
    started = time.perf_counter()
    seeded = seed_user("bench", nodes=args.nodes, report_days=args.report_days)
    add_deployments(seeded, args.deployments)
    add_workloads(seeded, args.workloads)
    print(
        f"seeded {args.deployments} deployments (with jobs and events), {args.workloads} "
        f"workloads, {len(seeded.nodes)} nodes with {args.report_days} days of uptime "
        f"reported in {time.perf_counter() - started:.1f} s"
    )
    client = Client()
    client.force_login(seeded.user)
    report = Report("dashboard", params={"runs": args.runs, "nodes": args.nodes})
    first = Deployment.objects.filter(owner=seeded.user).earliest("id").pk
    print(f"{'page':36} {'p50 ms':>8} {'p95 ms':>8}  target p95 < {TARGET_P95_MS:.0f} ms")
    missed = []
    for template in PAGES:
        path = template.format(deployment=first, node=seeded.nodes[0].pk)
        status = client.get(path).status_code  # warm-up: templates, caches
        if status == 404:
            print(f"{path:36} {'not in this branch':>18}")
            continue
        if status != 200:
            print(f"{path:36} answered {status}")
            missed.append(path)
            continue
        times = []
        for _ in range(args.runs):
            begin = time.perf_counter()
            client.get(path)
            times.append((time.perf_counter() - begin) * 1000)
        p50 = statistics.median(times)
        p95 = statistics.quantiles(times, n=20)[18] if len(times) >= 2 else times[0]
        verdict = "ok" if p95 < TARGET_P95_MS else "MISSED"
        if p95 >= TARGET_P95_MS:
            missed.append(path)
        print(f"{path:36} {p50:8.1f} {p95:8.1f}  {verdict}")
        report.add(f"{template} p50", p50, "ms")
        report.add(f"{template} p95", p95, "ms", f"< {TARGET_P95_MS:g}")
    print("all pages within target" if not missed else f"missed: {', '.join(missed)}")
    report.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
