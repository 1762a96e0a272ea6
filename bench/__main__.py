"""`python -m bench`: run every bench and write one report, JSON and Markdown, each figure next
to its target (docs/performance.md explains them).

    .venv/bin/python -m bench                      # everything, full size (about an hour)
    .venv/bin/python -m bench --quick              # every bench, small sizes (minutes)
    .venv/bin/python -m bench --only uptime node_sim --out var/bench

Each bench runs as its own process (`bench/<name>.py ... --json FILE`, bench/report.py), one after
another so none measures another's load; its output goes to OUT/logs/<name>.log. A bench that
needs what this machine lacks (root, btrfs on loop devices) or that fails is named in the
report with its log, and the others still run. Exit status 1 if any bench failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...] | None  # None: too long for --quick (named as skipped)
    what: str
    needs_root: bool = False


BENCHES = [
    Bench(
        "uptime",
        "uptime_bench.py",
        ("--nodes", "200", "--reports", "10000"),
        ("--nodes", "20", "--reports", "1000"),
        "signed registrations and uptime reports, production profile",
    ),
    Bench(
        "node_sim",
        "node_sim_bench.py",
        ("--nodes", "1000", "--deployments", "300", "--rate", "20"),
        (
            "--nodes",
            "50",
            "--deployments",
            "20",
            "--rate",
            "10",
            "--settle",
            "3",
            "--idle",
            "5",
            "--after-storm",
            "5",
        ),
        "simulated nodes on real links and reconnect storms, production profile",
    ),
    Bench(
        "deploy_1_node",
        "deploy_bench.py",
        (
            "--production",
            "--nodes",
            "1",
            "--runners",
            "4",
            "--count",
            "1000",
            "--burst",
            "300",
            "--celery",
            "500",
        ),
        (
            "--production",
            "--nodes",
            "1",
            "--runners",
            "4",
            "--count",
            "30",
            "--burst",
            "30",
            "--celery",
            "30",
        ),
        "sequential latency, burst throughput and Celery beside it, 1 node x 4 runners",
    ),
    Bench(
        "deploy_3_nodes",
        "deploy_bench.py",
        ("--production", "--nodes", "3", "--runners", "2", "--count", "300", "--burst", "300"),
        ("--production", "--nodes", "3", "--runners", "2", "--count", "20", "--burst", "30"),
        "sequential latency and burst throughput, 3 nodes x 2 runners",
    ),
    Bench("rhai", "rhai_bench.py", (), ("--runs", "1"), "Rhai engine against Python"),
    Bench(
        "dashboard",
        "dashboard_bench.py",
        (),
        ("--runs", "5", "--deployments", "100"),
        "server time of the dashboard pages",
    ),
    Bench(
        "vm_pipeline",
        "vm_pipeline_bench.py",
        ("--runs", "10"),
        ("--runs", "2"),
        "signed script to guest ready against bare QEMU",
        needs_root=True,
    ),
    Bench(
        "image_hub",
        "image_hub_bench.py",
        (),
        ("--disk-mib", "16"),
        "image push and a node's first fetch",
        needs_root=True,
    ),
    Bench(
        "vm_image",
        "vm_image_bench.py",
        ("--runs", "5"),
        None,
        "Debian 12 VM image: build, size, boot to ready",
        needs_root=True,
    ),
]


def run_one(bench: Bench, args: tuple[str, ...], out: Path, timeout: float) -> dict:
    """Run one bench; its report (bench/report.py) with status, seconds and log added."""
    figures = out / f"{bench.name}.json"
    figures.unlink(missing_ok=True)
    log = out / "logs" / f"{bench.name}.log"
    command = [sys.executable, str(ROOT / "bench" / bench.script), *args, "--json", str(figures)]
    started = time.monotonic()
    print(f"==> {bench.name}: {' '.join(command[1:])}", flush=True)
    with log.open("wb") as handle:
        try:
            code = subprocess.run(
                command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    result = {"bench": bench.name, "figures": [], "notes": [], "params": {}}
    if figures.exists():
        result = json.loads(figures.read_text())
        result["bench"] = bench.name
    result.update(
        status="ok" if code == 0 else f"failed ({code})",
        seconds=round(time.monotonic() - started, 1),
        log=str(log),
        what=bench.what,
        command=" ".join(["python", f"bench/{bench.script}", *args]),
    )
    print(f"    {result['status']} in {result['seconds']} s", flush=True)
    return result


def markdown(report: dict) -> str:
    lines = [
        f"# Bench report ({report['mode']})",
        "",
        f"{report['started']} on {report['machine']}; load average at the start "
        f"{report['load_start']}, at the end {report['load_end']}; commit {report['commit']}.",
        "",
    ]
    for bench in report["benches"]:
        lines += [f"## {bench['bench']}: {bench['what']}", ""]
        lines += [f"`{bench['command']}` — {bench['status']}, {bench['seconds']} s", ""]
        if bench["figures"]:
            lines += ["| figure | value | target | met |", "|---|---|---|---|"]
            for f in bench["figures"]:
                target = f"{f['target']} {f['unit']}" if f["target"] else ""
                met = {True: "yes", False: "**no**", None: ""}[f["met"]]
                lines.append(f"| {f['name']} | {f['value']} {f['unit']} | {target} | {met} |")
            lines.append("")
        lines += [f"- {note}" for note in bench.get("notes", [])]
        if bench["status"].startswith("failed"):
            lines.append(f"- see {bench['log']}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n\n")[0].replace("`", "")
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: minutes, not an hour")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench", help="report dir")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], metavar="NAME")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per bench")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    report = {
        "mode": "quick" if args.quick else "full",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "load_start": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "commit": commit,
        "benches": [],
    }
    for bench in BENCHES:
        if args.only and bench.name not in args.only:
            continue
        params = bench.quick if args.quick else bench.full
        skip = None
        if params is None:
            skip = "too long for --quick"
        elif bench.needs_root and os.geteuid() != 0:
            skip = "needs root (loop devices, btrfs, QEMU)"
        if skip:
            report["benches"].append(
                {
                    "bench": bench.name,
                    "what": bench.what,
                    "status": f"skipped: {skip}",
                    "figures": [],
                    "notes": [],
                    "seconds": 0,
                    "log": "",
                    "command": f"python bench/{bench.script} {' '.join(bench.full)}",
                }
            )
            continue
        report["benches"].append(run_one(bench, params, out, args.timeout))
    report["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(markdown(report))
    print(f"report: {out / 'report.md'} and {out / 'report.json'}")
    failed = [b["bench"] for b in report["benches"] if b["status"].startswith("failed")]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
