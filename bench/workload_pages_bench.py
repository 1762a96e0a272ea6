"""Server time of the workloads pages with many rows: /workloads and /workloads/<id>.

Runs in-process (Django's test client, no network) against a fresh SQLite database in a
temporary directory: one user with `--workloads` workloads spread over two nodes, then
`--requests` GETs of each page, timed from request to rendered response (session, queries,
template). Prints p50/p95/max per page and the number of queries each page made, and exits 1 if
a page fails; missing the p95 target (`--target`, ms) is reported, not an error exit.

    .venv/bin/python bench/workload_pages_bench.py [--workloads 100] [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--target", type=float, default=50.0, help="p95 target in ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zos-bench-") as var:
        os.environ["ZOS_VAR_DIR"] = var
        os.environ.setdefault("ZOS_LOG_LEVEL", "WARNING")
        os.environ["DJANGO_SETTINGS_MODULE"] = "grid.settings"
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", "--no-input", verbosity=0)
        call_command("createcachetable", verbosity=0)
        return run(args)


def run(args: argparse.Namespace) -> int:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from coordinator.models import Workload
    from ledger.models import Farm, Node

    user = get_user_model().objects.create_user("bench")  # force_login: no password
    farm = Farm.objects.create(name="bench", owner=user)
    nodes = [Node.objects.create(farm=farm, public_key=f"{i:064x}") for i in (1, 2)]
    Workload.objects.bulk_create(
        Workload(
            owner=user,
            node=nodes[i % 2],
            kind=("vm", "volume", "herodb")[i % 3],
            name=f"w-{i}",
            state="ready",
            reserved={"cru": 1, "mru": 2**30, "sru": 2**30},
            details={"mycelium_ip": "400::1", "address": "[400::1]:6379", "image": "debian-12"},
        )
        for i in range(args.workloads)
    )
    first = Workload.objects.filter(owner=user, kind="vm").first()
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    failed = False
    print(f"{args.workloads} workloads, {args.requests} requests per page")
    print(f"{'page':<20} {'queries':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  target")
    for path in ("/workloads", f"/workloads/{first.pk}"):
        queries: list[str] = []

        def count(execute, sql, params, many, context, queries=queries):
            queries.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            response = client.get(path)
        if response.status_code != 200:
            print(f"{path}: answered {response.status_code}")
            failed = True
            continue
        times = []
        for _ in range(args.requests):
            start = time.perf_counter()
            client.get(path)
            times.append((time.perf_counter() - start) * 1000)
        p95 = statistics.quantiles(times, n=20)[18]
        verdict = "met" if p95 < args.target else f"MISSED ({args.target:g} ms)"
        label = "/workloads/<id>" if path != "/workloads" else path
        print(
            f"{label:<20} {len(queries):>7} {statistics.median(times):>8.1f} {p95:>8.1f} "
            f"{max(times):>8.1f}  {verdict}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
