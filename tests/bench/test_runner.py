"""`python -m bench` writes its report: every figure with its target and verdict, as JSON and as
Markdown. Runs the quick Rhai bench only (seconds); the other benches start whole systems and
stay out of the suite (speed is measured in bench/, never asserted in tests)."""

import json
import subprocess
import sys
from pathlib import Path

from bench.report import Figure

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_json_and_markdown_with_targets(tmp_path: Path) -> None:
    out = tmp_path / "report"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "rhai", "vm_image", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "quick"
    rhai, vm_image = report["benches"]
    assert rhai["status"] == "ok"
    assert {f["name"] for f in rhai["figures"]} >= {"fib(25): engine / Python"}
    assert all(f["target"] == "<= 2" and f["met"] in (True, False) for f in rhai["figures"])
    assert vm_image["status"] == "skipped: too long for --quick"
    markdown = (out / "report.md").read_text()
    assert "| fib(25): engine / Python |" in markdown
    assert "<= 2 x" in markdown
    assert (out / "logs" / "rhai.log").read_text().startswith("workload")


def test_a_figure_is_judged_against_its_target() -> None:
    assert Figure("p99", 49.9, "ms", "< 50").met is True
    assert Figure("p99", 50.0, "ms", "< 50").met is False
    assert Figure("rate", 1000, "req/s", ">= 1,000").met is True
    assert Figure("rate", 999, "req/s", ">= 1,000").met is False
    assert Figure("mean", 12, "ms").met is None
    assert Figure("p50", None, "ms", "< 30").met is None
