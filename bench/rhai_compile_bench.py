"""Does compiling a Rhai script cost time and memory in proportion to its size?

A script submitted to the grid is compiled by the coordinator and again on the node, so the
compiler must be linear in the source: a 64 KB script (the submission limit) that makes the
compiler generate code quadratic in its size is a denial of service. Each row compiles one
script in a fresh child process (so RSS figures are its own) and reports:

- `code KB`: the generated Python source, and `code/src`, its ratio to the script;
- `compile s`: wall time of `Engine.compile` (without tracemalloc);
- `rss MB`: growth of the process's peak RSS during that compile;
- `peak MB`: tracemalloc peak during a second compile of the same script;
- `kept MB`: memory still allocated afterwards while the AST is alive;
- `ms/KB`, `peakMB/KB`: per KB of script; roughly constant across sizes means linear.

Shapes: `bang` is the attack (`fn f(){}`, N `let aK = 1;`, then N `f!();`), `eval` the same with
`eval("1")` (compiled, not run), `isdef` with `is_def_var("a1")`, and `ordinary` a typical
deployment-like script (functions, maps, loops, interpolation) repeated with fresh names.

Run: `.venv/bin/python bench/rhai_compile_bench.py [--shapes bang ordinary] [--kb 4 8 16 32 64]
[--timeout 120]`
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rhai import Engine, RhaiError


def bang(n: int) -> str:
    lets = "".join(f"let a{i} = 1;\n" for i in range(n))
    return "fn f() {}\n" + lets + "f!();\n" * n


def eval_calls(n: int) -> str:
    lets = "".join(f"let a{i} = 1;\n" for i in range(n))
    return lets + 'eval("1");\n' * n


def isdef(n: int) -> str:
    lets = "".join(f"let a{i} = 1;\n" for i in range(n))
    return lets + 'is_def_var("a1");\n' * n


def ordinary(n: int) -> str:
    parts = []
    for i in range(n):
        parts.append(
            f"fn work{i}(x) {{\n"
            f"    let total = 0;\n"
            f"    for j in 0..x {{ total += j * 2; }}\n"
            f'    if total > 10 {{ `big ${{total}}` }} else {{ "small" }}\n'
            f"}}\n"
            f'let m{i} = #{{ name: "vm{i}", cpus: {i % 4 + 1}, tags: ["a", "b"] }};\n'
            f"let r{i} = switch m{i}.cpus {{ 1 => work{i}(3), 2 | 3 => work{i}(9), _ => () }};\n"
            f"m{i}.tags.push(`t${{r{i}}}`);\n"
        )
    return "".join(parts)


SHAPES: dict[str, Callable[[int], str]] = {
    "bang": bang,
    "eval": eval_calls,
    "isdef": isdef,
    "ordinary": ordinary,
}


def sized(shape: str, kb: float) -> str:
    """The script of `shape` closest to (and not above) `kb` KB."""
    make = SHAPES[shape]
    per_unit = len(make(100)) / 100
    n = max(1, int(kb * 1024 / per_unit))
    while n > 1 and len(make(n)) > kb * 1024:
        n -= 1
    return make(n)


def measure(shape: str, kb: float) -> dict:
    """Compile one script in this process; called in a fresh child by `main`."""
    source = sized(shape, kb)
    engine = Engine()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    ast = engine.compile(source)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    code = len(ast.code)
    del ast
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    ast = engine.compile(source)
    current, peak = tracemalloc.get_traced_memory()  # `ast` is still alive: kept = its size
    tracemalloc.stop()
    del ast
    return {
        "src": len(source),
        "code": code,
        "seconds": seconds,
        "rss_kb": rss,
        "peak": peak - base,
        "kept": current - base,
    }


def child(shape: str, kb: float, timeout: float) -> dict | str:
    cmd = [sys.executable, __file__, "--child", shape, str(kb)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"timeout after {timeout:g}s"
    if out.returncode != 0:
        return f"exit {out.returncode}: {out.stderr.strip().splitlines()[-1:]}"
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--kb", nargs="*", type=float, default=[4, 8, 16, 32, 64])
    parser.add_argument("--timeout", type=float, default=120, help="seconds per row")
    parser.add_argument("--child", nargs=2, metavar=("SHAPE", "KB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        try:
            print(json.dumps(measure(args.child[0], float(args.child[1]))))
        except RhaiError as err:
            print(f"RhaiError: {err}", file=sys.stderr)
            return 1
        return 0

    mb = 1024 * 1024
    print(
        f"{'shape':<9}{'src KB':>7}{'code KB':>10}{'code/src':>9}{'compile s':>10}"
        f"{'rss MB':>8}{'peak MB':>9}{'kept MB':>9}{'ms/KB':>8}{'peakMB/KB':>10}"
    )
    for shape in args.shapes:
        for kb in args.kb:
            r = child(shape, kb, args.timeout)
            if isinstance(r, str):
                print(f"{shape:<9}{kb:>7g}  {r}")
                continue
            src_kb = r["src"] / 1024
            print(
                f"{shape:<9}{src_kb:>7.1f}{r['code'] / 1024:>10.0f}{r['code'] / r['src']:>9.1f}"
                f"{r['seconds']:>10.2f}{r['rss_kb'] / 1024:>8.0f}{r['peak'] / mb:>9.1f}"
                f"{r['kept'] / mb:>9.1f}{r['seconds'] * 1000 / src_kb:>8.1f}"
                f"{r['peak'] / mb / src_kb:>10.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
