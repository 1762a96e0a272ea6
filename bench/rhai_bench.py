"""How much slower is a Rhai script in our engine than the same program in plain Python?

Each workload is a Rhai script and a Python function computing the same result. The engine's
time includes compiling: each run is one `Engine.eval` of the source, as a deployment runs a
script once (with unlimited operations unless `--max-operations` says otherwise;
`--progress-every` adds a progress hook, as the node's runners use). The two sides alternate
run by run, so a busy machine slows both alike; each reports the median of `--runs` runs, the
ratio is the median of the per-run ratios, and the results are cross-checked so a fast wrong
answer cannot pass.

Run: `.venv/bin/python bench/rhai_bench.py [--runs N] [--only NAME ...] [--target R]
[--max-operations N] [--progress-every N]`
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import Report
from rhai import Engine, RhaiError


@dataclass(frozen=True)
class Workload:
    name: str
    script: str
    python: Callable[[], Any]


def py_fib() -> int:
    def fib(n: int) -> int:
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    return fib(25)


def py_fib22() -> int:
    def fib(n: int) -> int:
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    return fib(22)


def py_loop() -> int:
    total = 0
    for i in range(1_000_000):
        total += i * 2 % 7
    return total


def py_strings() -> int:
    text = ""
    for i in range(100_000):
        text += "x" if i % 2 else "y"
    return len(text)


def py_arrays() -> int:
    items = []
    for i in range(100_000):
        items.append(i * 7919 % 100_003)
    items.sort()
    doubled = list(map(lambda x: x * 2, items))
    kept = list(filter(lambda x: x % 3 == 0, doubled))
    return len(kept) + kept[0] + kept[-1]


def py_maps() -> int:
    table = {}
    for i in range(100_000):
        table[f"k{i}"] = i
    total = 0
    for i in range(100_000):
        total += table[f"k{i}"]
    return total + len(table)


WORKLOADS = [
    Workload(
        "fib(25)",
        "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } } fib(25)",
        py_fib,
    ),
    Workload(
        "fib(22) eval",
        "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } } fib(22)",
        py_fib22,
    ),
    Workload(
        "loop 1M",
        "let total = 0; for i in 0..1000000 { total += i * 2 % 7; } total",
        py_loop,
    ),
    Workload(
        "string 100k",
        'let text = ""; for i in 0..100000 { text += if i % 2 == 1 { "x" } else { "y" }; } '
        "text.len()",
        py_strings,
    ),
    Workload(
        "array 100k",
        "let items = []; for i in 0..100000 { items.push(i * 7919 % 100003); } items.sort(); "
        "let doubled = items.map(|x| x * 2); let kept = doubled.filter(|x| x % 3 == 0); "
        "kept.len() + kept[0] + kept[-1]",
        py_arrays,
    ),
    Workload(
        "map 100k",
        "let table = #{}; for i in 0..100000 { table[`k${i}`] = i; } let total = 0; "
        "for i in 0..100000 { total += table[`k${i}`]; } total + table.len()",
        py_maps,
    ),
]


def _once(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def timed_pair(
    engine_fn: Callable[[], Any], python_fn: Callable[[], Any], runs: int
) -> tuple[float, float, float, Any, Any]:
    """Median engine ms, python ms and engine/python ratio over `runs` alternating runs."""
    engine_ms, python_ms, ratios = [], [], []
    got = want = None
    for _ in range(runs):
        e_ms, got = _once(engine_fn)
        p_ms, want = _once(python_fn)
        engine_ms.append(e_ms)
        python_ms.append(p_ms)
        ratios.append(e_ms / p_ms if p_ms else float("inf"))
    return (
        statistics.median(engine_ms),
        statistics.median(python_ms),
        statistics.median(ratios),
        got,
        want,
    )


def engine_runner(
    script: str, max_operations: int = 0, progress_every: int = 0
) -> Callable[[], Any]:
    """Compile and evaluate `script` in one `eval`; a progress hook (when asked) never stops it."""
    if progress_every:
        engine = Engine(
            max_operations=max_operations,
            on_progress=lambda _ops: None,
            progress_every=progress_every,
        )
    else:
        engine = Engine(max_operations=max_operations)
    return lambda: engine.eval(script)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per side (median is shown)")
    parser.add_argument("--only", nargs="*", help="run only workloads whose name starts so")
    parser.add_argument("--target", type=float, default=2.0, help="acceptable engine/python")
    parser.add_argument(
        "--max-operations", type=int, default=0, help="the engine's operation limit (0: none)"
    )
    parser.add_argument(
        "--progress-every", type=int, default=0, help="call a progress hook every N operations"
    )
    parser.add_argument("--json", help="write the figures here (bench/report.py)")
    args = parser.parse_args(argv)
    report = Report("rhai", params={"runs": args.runs, "max_operations": args.max_operations})

    chosen = [w for w in WORKLOADS if not args.only or any(w.name.startswith(o) for o in args.only)]
    print(
        f"{'workload':<14}{'engine ms':>12}{'python ms':>12}{'ratio':>9}  target<={args.target:g}"
    )
    worst = ("", 0.0)
    failed = False
    for work in chosen:
        try:
            engine_ms, python_ms, ratio, got, want = timed_pair(
                engine_runner(work.script, args.max_operations, args.progress_every),
                work.python,
                args.runs,
            )
        except RhaiError as err:
            print(f"{work.name:<14} ENGINE ERROR: {err}")
            report.notes.append(f"{work.name}: engine error {err}")
            failed = True
            continue
        if got != want:
            print(f"{work.name:<14} WRONG RESULT: engine {got!r}, python {want!r}")
            report.notes.append(f"{work.name}: wrong result {got!r}, Python {want!r}")
            failed = True
            continue
        verdict = "ok" if ratio <= args.target else "SLOW"
        print(f"{work.name:<14}{engine_ms:>12.1f}{python_ms:>12.1f}{ratio:>9.2f}  {verdict}")
        report.add(f"{work.name}: engine / Python", ratio, "x", f"<= {args.target:g}")
        if ratio > worst[1]:
            worst = (work.name, ratio)
    met = not failed and worst[1] <= args.target
    print(
        f"worst ratio: {worst[1]:.2f} ({worst[0]}); target {args.target:g} "
        f"{'met' if met else 'NOT met'}"
    )
    report.write(args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
