"""`max_call_levels` counts every way a script function can be entered.

Found by an attack on a running grid: a comparator given to `sort` that sorts again with itself
recursed through C's `list.sort`. Calls made by natives started again at depth 1, so the limit
never applied and, with the node runner's high recursion limit, the C stack overflowed and the
runner died with SIGSEGV. Every path must add one level per call, so such scripts end with
`ErrorStackOverflow` and the process lives.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rhai import Engine, RhaiError

ROOT = Path(__file__).resolve().parents[2]

SORT_ATTACK = (
    'fn cmp(a, b) { let x = [2, 1]; x.sort(Fn("cmp")); 0 } let arr = [2, 1]; arr.sort(Fn("cmp"))'
)

# Each script recurses without end, re-entering itself only through a native or a pointer.
THROUGH_NATIVES = [
    pytest.param(SORT_ATTACK, id="sort-comparator"),
    pytest.param('fn m(a) { [1].map(Fn("m")); 0 } [1].map(Fn("m"))', id="map-fn-pointer"),
    pytest.param("fn m(a) { [1].map(|x| m(x)); 0 } m(0)", id="map-closure"),
    pytest.param('fn f(a) { [1].filter(Fn("f")); true } [1].filter(Fn("f"))', id="filter"),
    pytest.param(
        'fn r(a, b) { [1, 2].reduce(Fn("r"), 0); 0 } [1, 2].reduce(Fn("r"), 0)', id="reduce"
    ),
    pytest.param('fn e(x) { [1].for_each(Fn("e")); } [1].for_each(Fn("e"))', id="for-each"),
    pytest.param('fn s(a, b) { [2, 1].sort_by(Fn("s")); 0 } s(1, 2)', id="sort-by"),
    pytest.param('fn k(x) { [1].some(Fn("k")) } k(1)', id="some"),
    pytest.param('fn c(x) { Fn("c").curry(x).call() } c(1)', id="curry"),
    pytest.param('fn c(x) { call(Fn("c"), x) } c(1)', id="call"),
    pytest.param("let f = 0; f = |n| [n].map(f); f.call(1)", id="closure-through-map"),
    pytest.param('fn h(x) { let m = #{act: Fn("h")}; m.act(x) } h(1)', id="map-method"),
]


@pytest.mark.parametrize("src", THROUGH_NATIVES)
def test_recursion_through_natives_hits_the_call_level_limit(src):
    with pytest.raises(RhaiError) as info:
        Engine(max_call_levels=64).eval(src)
    assert info.value.root().kind == "ErrorStackOverflow", repr(info.value)


# `f(n)` nests n + 1 calls of `f`, each one made by a different path.
DEPTH_PATHS = [
    pytest.param("fn f(n) { if n == 0 { 0 } else { f(n - 1) } }", id="direct"),
    pytest.param(
        'fn f(n) { if n == 0 { 0 } else { [n - 1].map(Fn("f"))[0] } }', id="map-fn-pointer"
    ),
    pytest.param(
        "fn f(n) { if n == 0 { 0 } else { let a = [n - 1, n - 1]; "
        "a.sort(|x, y| { f(x); 0 }); 0 } }",
        id="sort-closure-calling",
    ),
    pytest.param('fn f(n) { if n == 0 { 0 } else { Fn("f").call(n - 1) } }', id="fn-call"),
    pytest.param('fn f(n) { if n == 0 { 0 } else { call(Fn("f"), n - 1) } }', id="call"),
]


@pytest.mark.parametrize("fn", DEPTH_PATHS)
def test_every_path_counts_exactly_one_level_per_call(fn):
    """With max_call_levels = 10, `f(9)` nests exactly 10 calls and `f(10)` one too many,
    whichever path makes the calls (the sort closure is a level of its own, so there the
    limit is 19 for the same f)."""
    levels = 19 if "sort" in fn else 10
    engine = Engine(max_call_levels=levels)
    assert engine.eval(f"{fn} f(9)") == 0
    with pytest.raises(RhaiError) as info:
        engine.eval(f"{fn} f(10)")
    assert info.value.root().kind == "ErrorStackOverflow"


def test_a_deep_direct_call_leaves_no_depth_behind():
    """Once a deep call returned, a callback runs at its caller's depth plus one again."""
    src = (
        "fn deep(n) { if n == 0 { 0 } else { [n].len(); deep(n - 1) } } "
        'fn f(n) { if n == 0 { 0 } else { [n - 1].map(Fn("f"))[0] } } '
        "deep(9); f(9)"
    )
    assert Engine(max_call_levels=10).eval(src) == 0


def test_depth_is_restored_after_an_error():
    src = (
        "fn deep(n) { [n].len(); if n == 0 { throw 1 } else { deep(n - 1) } } "
        'fn f(n) { if n == 0 { 0 } else { [n - 1].map(Fn("f"))[0] } } '
        "try { deep(9) } catch {} f(9)"
    )
    assert Engine(max_call_levels=10).eval(src) == 0


def runner_recursion_limit() -> int:
    """The recursion limit the node's script runner sets (it runs jobs on a deeper stack than
    this test's child has, so passing here is the stricter check)."""
    from nodeagent.runner import RECURSION_LIMIT

    return RECURSION_LIMIT


CHILD = """
import sys
sys.setrecursionlimit(int(sys.argv[1]))
from rhai import Engine, RhaiError
try:
    Engine().eval(sys.argv[2])
except RhaiError as e:
    print(e.root().kind)
"""


@pytest.mark.parametrize(
    "src",
    [
        pytest.param(SORT_ATTACK, id="sort-comparator"),
        pytest.param(
            "fn cmp(a, b) { let x = [3, 2, 1]; x.sort(|p, q| cmp(p, q)); 0 } cmp(1, 2)",
            id="sort-closure",
        ),
    ],
)
def test_sort_attack_does_not_kill_a_runner_process(src):
    """In a child with the runner's recursion limit, the script ends with the limit error;
    before the fix the child died with SIGSEGV (return code -11)."""
    limit = runner_recursion_limit()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(limit), src],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, (child.returncode, child.stderr[-2000:])
    assert child.stdout.strip() == "ErrorStackOverflow"
