"""Generated code stays linear in the script, whatever its shape.

Found by an attack on a running grid: a 12.7 KB script (`fn f(){}`, 800 `let aN = 1;`, 800
`f!();`) took 11.8 s and 3.3 GB to compile, because every `f!()`, `eval` and `is_def_var` call
site spelled out every visible variable. Nested closures were worse: each closure's body was
generated again inside each copy of its enclosing body, doubling the code per level. These tests
bound the generated source's SIZE (never wall time) against the script's.
"""

from __future__ import annotations

import pytest

from rhai import Engine

# Ordinary scripts generate about 8 bytes of Python per byte of Rhai; a closure's prologue
# costs a fixed ~300 bytes, so tiny closures give ~40. Before the fixes these shapes gave
# 1,000 to 150,000.
MAX_RATIO = 50
SCRIPT_LIMIT = 64 * 1024  # contracts.scripts.MAX_SCRIPT_BYTES


def lets(n: int) -> str:
    return "".join(f"let a{i} = 1;\n" for i in range(n))


def bang_attack(n: int) -> str:
    return "fn f() {}\n" + lets(n) + "f!();\n" * n


def fill(make, limit: int = SCRIPT_LIMIT) -> str:
    """The largest script `make(n)` that fits the submission limit."""
    n = 1
    while len(make(n * 2)) <= limit:
        n *= 2
    step = n // 2
    while step:
        if len(make(n + step)) <= limit:
            n += step
        step //= 2
    return make(n)


def generated_ratio(src: str) -> float:
    ast = Engine().compile(src)
    return len(ast.code) / len(src)


SHAPES = [
    pytest.param(bang_attack, id="bang-calls"),
    pytest.param(lambda n: lets(n) + 'eval("1");\n' * n, id="eval-calls"),
    pytest.param(lambda n: lets(n) + 'is_def_var("a1");\n' * n, id="is-def-var-calls"),
    pytest.param(
        lambda n: "fn f() {}\n" + "".join(f"let a{i} = 1; f!();\n" for i in range(n)),
        id="interleaved-bang",
    ),
    pytest.param(
        lambda n: "fn f() {}\n{ " + lets(n) + "{ " + "f!();\n" * n + "} }", id="bang-in-blocks"
    ),
    pytest.param(
        lambda n: "fn g() {\n" + lets(n) + 'eval("1");\n' * n + "}\ng()", id="eval-in-function"
    ),
]


def test_the_reported_attack_compiles_to_linear_code():
    src = bang_attack(800)
    assert len(src) < 16_000  # 12.7 KB without the newlines
    assert generated_ratio(src) <= MAX_RATIO


@pytest.mark.parametrize("make", SHAPES)
def test_call_sites_seeing_many_variables_at_the_script_limit(make):
    src = fill(make)
    assert len(src) > SCRIPT_LIMIT * 0.9
    assert generated_ratio(src) <= MAX_RATIO


@pytest.mark.parametrize("depth", [8, 12])
def test_nested_closures_are_generated_once(depth):
    """Each `|aN| { aN + 1; ... }` has an INT-specialised copy of its body; the closure
    inside must not be generated again in each copy (that was 2**depth closures)."""
    src = "0"
    for i in range(depth):
        src = f"|a{i}| {{ a{i} + 1; {src} }}"
    src = f"let f = {src}; f"
    assert generated_ratio(src) <= MAX_RATIO


def test_nested_closures_still_run():
    src = "fn g(x) { x + 1; |a| { a + 1; |b| { b + 1; |c| a + b + c + x } } } "
    src += "let f = g(1); f.call(10).call(100).call(1000)"
    assert Engine().eval(src) == 1111


BEHAVIOUR = [
    ("fn f() { x = 3; } let x = 1; { let x = 2; f!(); x }", 3),
    ("fn f() { x } let x = 1; { let x = 2; f!() }", 2),
    ("fn f() { x += 1; } let x = 1; for i in 0..3 { f!(); } x", 4),
    ("fn f() { i * 10 + j } let s = 0; for (i, j) in [5, 6] { s += f!(); } s", 111),
    ("fn f() { e } let r = 0; try { throw 7 } catch (e) { r = f!(); } r", 7),
    (
        'let r = []; loop { r.push(is_def_var("y")); let y = 1; if r.len() > 2 { break; } } r',
        [
            False,
            False,
            False,
        ],
    ),
    ('let a = 1; eval("a = a + 1"); eval("let b = a * 10"); [a, b]', [2, 20]),
    ('fn h() { eval("let nn = 1"); nn } let z = 1; [h!(), is_def_var("nn")]', [1, False]),
    ('fn f() { is_def_var("k") } let k = 1; [f!(), f()]', [True, False]),
    ('const C = 5; eval("let C = 9"); C', 5),
    ("fn f() { let w = 2; g!(); w } fn g() { w += 1 } f!()", 3),
    ('fn inc(n) { v += n } let v = 1; let p = Fn("inc"); call!(p, 5); v', 6),
    ('let a = 1; let f = |x| { a; eval("a + x") }; f.call(2)', 3),
    ("fn f() { x.push(3); } let x = [1]; f!(); x", [1, 3]),
]


@pytest.mark.parametrize(("src", "expected"), BEHAVIOUR)
def test_caller_scope_semantics_are_kept(src, expected):
    assert Engine().eval(src) == expected


def test_a_bang_call_writes_through_before_an_error():
    """The callee shares the caller's scope (as in Rhai): a change made before it fails stays."""
    assert Engine().eval("fn f() { x = 3; throw 1 } let x = 1; try { f!() } catch {} x") == 3


def test_a_bang_call_cannot_assign_a_constant_of_its_caller():
    with pytest.raises(Exception) as info:
        Engine().eval("const x = 1; fn f() { x = 2; } f!(); x")
    assert info.value.root().kind == "ErrorAssignmentToConstant"


def test_a_closure_sees_only_what_it_captures():
    """It used to fail inside the engine (ErrorSystem) for an uncaptured outer variable."""
    with pytest.raises(Exception) as info:
        Engine().eval('let a = 1; let f = |x| { let b = x; eval("a + b") }; f.call(2)')
    assert info.value.root().kind == "ErrorVariableNotFound"
