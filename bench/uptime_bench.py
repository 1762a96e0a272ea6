"""Signed node registrations and uptime reports per second on the production profile.

Issue 19's first figure. Starts the production profile (PostgreSQL, Redis, `--workers` ASGI
workers (`--asgi-server`, uvicorn by default) behind HAProxy, the coordinator workers; no node),
then:

1. registration: `--nodes` fresh ed25519 keys register in the bootstrap farm (pending nodes);
2. re-registration: the same nodes register again, as a fleet rebooting after a power cut does;
3. uptime: `--reports` uptime reports spread over those nodes.

Every request is signed (ZOS-Ed25519 header, its own nonce) before the clock starts and sent by
`bench/loadgen.py` over `--concurrency` keep-alive connections from one asyncio loop, so the
server checks every signature, clock window and nonce (Redis) as in production while the
generator's own CPU stays small; it is reported next to the server's.

    .venv/bin/python bench/uptime_bench.py [--nodes 200] [--reports 20000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from nacl.signing import SigningKey

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import Result, fire, http_request  # noqa: E402
from bench.production_box import ProductionBox, cpu_delta  # noqa: E402
from bench.report import Report  # noqa: E402
from bench.stats import per_request_ms, summarize  # noqa: E402
from box.grid import ASGI_SERVERS  # noqa: E402
from signing.node_request import sign_request  # noqa: E402

CAPACITY = {"cru": 4, "mru": 8 << 30, "sru": 100 << 30, "hru": 0}


def signed(key: SigningKey, method: str, path: str, host: str, payload: dict) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Authorization": sign_request(key, method, path, body),
        "Content-Type": "application/json",
    }
    return http_request(method, path, host, body, headers)


def measure(box: ProductionBox, requests: list[bytes], concurrency: int, keep: bool):
    before = box.control_plane_cpu()
    result = fire("127.0.0.1", box.port, requests, concurrency=concurrency, keep_bodies=keep)
    return result, cpu_delta(before, box.control_plane_cpu(), result.seconds)


def describe(report: Report, what: str, result: Result, cpu: dict, targets: bool) -> None:
    bad = {s: n for s, n in result.statuses.items() if s >= 300}
    if bad:
        report.notes.append(f"{what}: unexpected answers {bad}")
    lat = summarize(result.latencies_ms)
    report.add(f"{what}: rate", result.rate, "req/s", ">= 1000" if targets else "")
    report.add(f"{what}: p50", lat.p50, "ms")
    report.add(f"{what}: p99", lat.p99, "ms", "< 50" if targets else "")
    report.add(
        f"{what}: load generator CPU", result.cpu_seconds / result.seconds * 100, "% of a core"
    )
    workers = sum(v for k, v in cpu.items() if k.startswith("asgi-"))
    report.add(f"{what}: ASGI workers CPU", workers * 100, "% of a core")
    # Steadier than the rate on a shared machine: what one request costs the server.
    report.add(f"{what}: ASGI CPU per request", per_request_ms(workers, result.rate), "ms")
    report.add(
        f"{what}: PostgreSQL CPU per request",
        per_request_ms(cpu.get("postgres", 0.0), result.rate),
        "ms",
    )
    for name in ("haproxy", "postgres", "redis"):
        report.add(f"{what}: {name} CPU", cpu.get(name, 0.0) * 100, "% of a core")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200, help="nodes registered and reporting")
    parser.add_argument("--reports", type=int, default=20000, help="uptime reports sent")
    parser.add_argument("--workers", type=int, default=2, help="ASGI workers behind HAProxy")
    parser.add_argument(
        "--asgi-server", choices=ASGI_SERVERS, default="uvicorn", help="the workers' server"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="keep-alive connections")
    parser.add_argument(
        "--chunk", type=int, default=2000, help="reports signed, then sent, at a time"
    )
    parser.add_argument("--json", help="write the figures here (bench/report.py)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and its logs")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="zos-uptime-"))
    report = Report("uptime", params=vars(args) | {"json": None, "keep": None})
    try:
        with ProductionBox(
            workdir, 0, 0, workers=args.workers, coordinators=1, asgi_server=args.asgi_server
        ) as box:
            run(box, args, report)
    finally:
        if args.keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report.print()
    report.write(args.json)
    return 0


def run(box: ProductionBox, args: argparse.Namespace, report: Report) -> None:
    host = f"127.0.0.1:{box.port}"
    keys = [SigningKey.generate() for _ in range(args.nodes)]
    registration = {
        "farm": box.farm,
        "capacity": CAPACITY,
        "interfaces": [{"name": "eth0", "mac": "52:54:00:00:00:01", "ips": ["10.0.0.2"]}],
        "agent_version": "bench",
    }
    requests = [signed(k, "POST", "/api/v1/nodes", host, registration) for k in keys]
    print(f"registering {len(keys)} nodes", file=sys.stderr)
    result, cpu = measure(box, requests, args.concurrency, keep=True)
    node_ids = [body["id"] for body in result.json_bodies()]
    describe(report, "registration", result, cpu, targets=False)

    print(f"registering {len(keys)} nodes again (a fleet rebooting)", file=sys.stderr)
    requests = [signed(k, "POST", "/api/v1/nodes", host, registration) for k in keys]
    result, cpu = measure(box, requests, args.concurrency, keep=False)
    describe(report, "re-registration", result, cpu, targets=False)

    # Signed in chunks just before each is sent: a run must fit in the clock window (300 s).
    uptime = {"uptime": 3600, "used": {"cru": 1, "mru": 1 << 30}, "health": []}
    result, cpu, signing = Result(), {}, 0.0
    for first in range(0, args.reports, args.chunk):
        started = time.monotonic()
        requests = []
        for i in range(first, min(args.reports, first + args.chunk)):
            key, node = keys[i % len(keys)], node_ids[i % len(keys)]
            requests.append(signed(key, "POST", f"/api/v1/nodes/{node}/uptime", host, uptime))
        signing += time.monotonic() - started
        print(f"sending reports {first}..{first + len(requests)}", file=sys.stderr)
        part, part_cpu = measure(box, requests, args.concurrency, keep=False)
        result.merge(part)
        for name, share in part_cpu.items():  # shares of a core, weighted by the part's time
            cpu[name] = cpu.get(name, 0.0) + share * part.seconds
    cpu = {name: busy / result.seconds for name, busy in cpu.items()}
    describe(report, "uptime", result, cpu, targets=True)
    report.notes.append(
        f"{args.reports} uptime reports from {args.nodes} nodes over {args.concurrency} "
        f"connections through HAProxy to {args.workers} {args.asgi_server} workers; "
        f"pre-signing took {signing:.1f} s (not counted)"
    )


if __name__ == "__main__":
    sys.exit(main())
