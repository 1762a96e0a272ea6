"""Regression tests for resource attacks seen against a running grid.

Each script below once escaped the engine's limits: it grew a process to gigabytes while every
single value stayed under its own size limit, or it did unbounded work inside what the engine
counted as one operation. Attacks run in a child process with an address-space limit and a
timeout, so a regression fails its test instead of hanging or exhausting the machine; work is
judged by the operation counter and the memory accounting, never by elapsed time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rhai import Engine, RhaiError
from rhai.values import held_bytes

MIB = 1024 * 1024

#: The child reports how the script ended, how many operations the engine counted and its
#: peak resident memory.
PROBE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]), int(sys.argv[3])))
from rhai import Engine, RhaiError
engine = Engine(**json.loads(sys.argv[2]))
out = {}
try:
    out["value"] = repr(engine.eval(sys.argv[1]))[:200]
except RhaiError as err:
    root = err.root()
    out.update(kind=err.kind, root=root.kind, what=root.details.get("what"),
               line=err.line, column=err.column, message_len=len(str(err)),
               message=str(err)[:300])
except BaseException as exc:
    out.update(kind="python:" + type(exc).__name__, message=str(exc)[:300])
out["ops"] = engine._rt.operations()
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would include the parent
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        out["peak_mib"] = int(line.split()[1]) // 1024
print(json.dumps(out))
"""


def attack(src: str, *, address_space: int = 1024 * MIB, **limits: Any) -> dict[str, Any]:
    """Run `src` in a child process limited to `address_space` bytes and 120 s."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, src, json.dumps(limits), str(address_space)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-800:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_memory_limit(out: dict[str, Any]) -> None:
    """The script was stopped by the memory budget (not by a Python MemoryError), at a
    position in the script."""
    assert (out["kind"], out["what"]) == ("ErrorDataTooLarge", "Memory"), out
    assert "max_memory" in out["message"], out
    assert out["line"] is not None and out["column"] is not None, out


# ---- A1: error messages of nested `eval` ----


def test_self_evaluating_eval_stops_at_call_levels_with_a_small_message():
    # 30 bytes of script once grew a process to ~4.9 GB of nested error messages
    out = attack('let s = "eval(s)"; eval(s)', address_space=512 * MIB)
    assert out["root"] == "ErrorStackOverflow", out
    assert out["message_len"] < 2_000, out


def test_eval_counts_as_a_call_level():
    engine = Engine(max_call_levels=5)
    assert engine.eval('eval("eval(\\"eval(\\\\\\"1\\\\\\")\\")")') == 1
    with pytest.raises(RhaiError) as info:
        engine.eval('let s = "eval(s)"; eval(s)')
    assert info.value.root().kind == "ErrorStackOverflow"


def test_wrapped_messages_stay_bounded_and_keep_the_innermost_error():
    src = "fn f(n) { if n == 0 { throw \"x\".pad(5000, 'y') } f(n - 1) }\nf(40)"
    with pytest.raises(RhaiError) as info:
        Engine().eval(src)
    err = info.value
    assert err.root().kind == "ErrorRuntime"
    assert len(str(err)) < 1_000
    # the innermost error, with its position, is still named at the end of the message
    assert str(err).rstrip(".").endswith("...") or "line 1, column" in str(err)
    assert f"line {err.root().line}, column {err.root().column}" in str(err)


# ---- A2/A3: a memory budget for the whole script ----


def test_many_strings_under_the_string_limit_hit_the_memory_budget():
    # 300 separate 1 MB strings under a 1 MB max_string_size once took 306 MB
    src = (
        "let keep = [];\n"
        "for i in 0..300 {\n"
        "    let s = \"\"; s.pad(1000000, 'x');\n"
        "    keep.push(s);\n"
        "}\n"
        "keep.len()"
    )
    out = attack(src, max_string_size=1_000_000, max_memory=32 * MIB)
    assert_memory_limit(out)


def test_strings_grown_in_place_and_shared_hit_the_memory_budget():
    # `+=` copies a string that is also held elsewhere: each push keeps a new 64 KB copy
    src = 'let s = ""; s.pad(65536, \'x\'); let keep = [];\nloop { s += "y"; keep.push(s); }'
    out = attack(src, max_memory=16 * MIB, max_operations=0)
    assert_memory_limit(out)


def test_interpolated_strings_hit_the_memory_budget():
    src = "let s = \"\"; s.pad(100000, 'x'); let keep = []; loop { keep.push(`${s}!`); }"
    out = attack(src, max_memory=16 * MIB, max_operations=0)
    assert_memory_limit(out)


def test_blobs_hit_the_memory_budget():
    out = attack("let keep = []; loop { keep.push(blob(100000, 1)); }", max_memory=16 * MIB)
    assert_memory_limit(out)


def test_array_copies_in_many_variables_hit_the_memory_budget():
    src = "let a = []; a.pad(100000, 1); let keep = #{};\nfor i in 0..1000 { keep[`k${i}`] = a; }"
    out = attack(src, max_memory=32 * MIB)
    assert_memory_limit(out)


def test_arrays_captured_in_curried_pointers_count():
    # each pointer holds its own copy of a 100k-element array
    src = (
        "let a = []; a.pad(100000, 1); let fs = [];\n"
        'for i in 0..1000 { fs.push(Fn("f").curry(a)); }'
    )
    out = attack(src, max_memory=32 * MIB)
    assert_memory_limit(out)


def test_padding_with_an_array_counts_the_copies_before_making_them():
    # 1000 copies of a 100k-element array would be 100M elements from one call
    src = "let a = []; a.pad(100000, 1); let b = []; b.pad(1000, a); b.len()"
    out = attack(src)
    assert (out["kind"], out["what"]) == ("ErrorDataTooLarge", "Size of array"), out
    assert out["peak_mib"] < 200, out
    assert Engine().eval("let a = [1, [2]]; let b = []; b.pad(3, a); b") == [[1, [2]]] * 3


def test_arrays_in_curried_pointers_count_against_the_array_size_limit():
    src = 'let a = []; a.pad(600, 1); let f = Fn("f").curry(a, a); [f]'
    with pytest.raises(RhaiError) as info:
        Engine(max_array_size=1_000).eval(src)
    assert info.value.kind == "ErrorDataTooLarge"
    assert info.value.details["what"] == "Size of array/BLOB"


def test_closure_captures_count_against_the_memory_budget():
    src = "let fs = [];\nfor i in 0..1000 { let a = []; a.pad(100000, i); fs.push(|| a.len()); }"
    out = attack(src, max_memory=32 * MIB)
    assert_memory_limit(out)


def test_memory_limit_error_is_not_catchable():
    src = (
        "let keep = [];\n"
        "try { loop { let s = \"\"; s.pad(100000, 'x'); keep.push(s); } } catch { 0 }"
    )
    out = attack(src, max_memory=8 * MIB, max_operations=0)
    assert_memory_limit(out)


def test_garbage_does_not_count_against_the_memory_budget():
    # 1000 x 1 MB built and dropped: far more allocated than the budget, little ever held
    src = "let n = 0; for i in 0..1000 { let s = \"\"; s.pad(1000000, 'x'); n += s.len(); } n"
    assert Engine(max_memory=16 * MIB).eval(src) == 1_000_000_000


def test_zero_max_memory_means_unlimited():
    src = "let keep = []; for i in 0..40 { let s = \"\"; s.pad(1000000, 'x'); keep.push(s); } 1"
    assert Engine(max_memory=0).eval(src) == 1
    with pytest.raises(RhaiError) as info:
        Engine(max_memory=8 * MIB).eval(src)
    assert info.value.details["what"] == "Memory"


def test_default_memory_budget():
    assert Engine().max_memory == 256 * MIB


def test_held_bytes_counts_shared_values_once():
    s = "x" * 1_000_000
    lst = [s] * 1000
    assert held_bytes([lst]) < 2 * MIB
    assert held_bytes([[("y" * 10_000) + str(i) for i in range(100)]]) > 1_000_000


# ---- B: work inside one operation is counted ----


def test_equality_of_nested_curried_pointers_is_not_exponential():
    src = 'let f = Fn("a"); for i in 0..40 { f = Fn("a").curry(f, f); } f == f'
    out = attack(src, max_operations=100_000)
    assert out.get("value") == "True", out
    assert out["ops"] < 10_000, out


def test_to_json_of_nested_curried_pointers_is_bounded():
    src = 'let f = Fn("a"); for i in 0..40 { f = Fn("a").curry(f, f); } #{f: f}.to_json()'
    out = attack(src, max_operations=100_000)
    assert out["kind"] in {"ErrorDataTooLarge", "ErrorTooManyOperations"}, out


def test_quadratic_nesting_is_stopped_by_the_operation_limit():
    # each `a = [a]` copies and checks the whole structure: 19,000 levels took 27 s
    src = "let a = []; for i in 0..19000 { a = [a]; }"
    out = attack(src, max_operations=1_000_000, max_data_depth=0)
    assert out["kind"] == "ErrorTooManyOperations", out
    assert out["ops"] <= 1_100_000, out


def test_data_nesting_is_bounded():
    src = "let a = []; for i in 0..19000 { a = [a]; }"
    out = attack(src, max_operations=0)
    assert (out["kind"], out["what"]) == ("ErrorDataTooLarge", "Depth of data"), out
    assert out["line"] == 1, out


@pytest.mark.parametrize(
    "src",
    [
        pytest.param("let a = []; loop { let b = []; b.push(a); a = b; }", id="push"),
        pytest.param("let a = #{}; loop { let b = []; b += a; a = #{x: b}; }", id="add-assign"),
        pytest.param("let a = []; loop { let b = []; b.pad(1, a); a = b; }", id="pad"),
        pytest.param("let a = []; loop { let b = []; b.insert(0, a); a = b; }", id="insert"),
        pytest.param('let a = #{}; loop { let b = #{}; b.set("x", a); a = b; }', id="map-set"),
        pytest.param("let a = #{}; loop { a = #{x: a}; }", id="map-literal"),
        pytest.param("let a = #{}; loop { let b = #{}; b.x = a; a = b; }", id="property"),
        pytest.param('let f = Fn("a"); loop { f = f.curry(f); }', id="curry"),
    ],
)
def test_every_way_of_nesting_is_bounded(src):
    out = attack(src, max_operations=0, max_data_depth=200)
    assert (out["kind"], out["what"]) == ("ErrorDataTooLarge", "Depth of data"), out


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param("a == b", id="compare"),
        pytest.param("a.to_string()", id="display"),
        pytest.param("let c = a; c", id="copy"),
        pytest.param("let x = b.a[0]; x[-1] = 2; a.a.contains(x)", id="contains"),
        pytest.param("a.to_json()", id="json"),
    ],
)
def test_deep_work_inside_one_operation_is_counted(tail):
    # 5 x 10k elements: building costs about 150k operations, each tail about 50k
    build = "let a = []; a.pad(10000, 1); a = #{a: [a, a, a, a, a]}; let b = a; "
    engine = Engine(max_operations=1_000_000)
    engine.eval(build + "1")
    assert engine._rt.operations() < 300_000
    with pytest.raises(RhaiError) as info:
        engine.eval(build + "for i in 0..100 { " + tail + "; }")
    assert info.value.kind == "ErrorTooManyOperations"
    assert engine._rt.operations() < 1_200_000


def test_measuring_memory_leaves_variables_intact():
    # a 2 MiB budget measures every ~20 iterations, in the middle of a function with a closure
    src = (
        "fn build(n) {\n"
        "    let keep = []; let x = 7; let f = |y| x + y;\n"
        "    for i in 0..n { let s = \"\"; s.pad(100000, 'x'); keep.push(s.len()); x += 0; }\n"
        "    f.call(keep.len())\n"
        "}\n"
        "let total = 0; for i in 0..3 { total += build(200); } total"
    )
    engine = Engine(max_memory=2 * MIB)
    assert engine.eval(src) == 3 * 207


def test_a_host_function_running_a_script_shares_the_memory_budget():
    engine = Engine(max_memory=4 * MIB)
    engine.register_fn("again", lambda: engine.eval("let s = \"\"; s.pad(100000, 'y'); s"))
    assert engine.eval("let n = 0; for i in 0..100 { n += again().len(); } n") == 10_000_000
    with pytest.raises(RhaiError) as info:
        engine.eval("let keep = []; for i in 0..100 { keep.push(again()); }")
    assert info.value.details["what"] == "Memory"
