"""Smoke tests for the engine core: a few end-to-end scripts and the host API."""

import pytest

from rhai import Engine, RhaiError, Scope


def test_fib_and_loop():
    engine = Engine()
    assert engine.eval("fn fib(n) { if n < 2 { n } else { fib(n-1) + fib(n-2) } } fib(15)") == 610
    assert engine.eval("let t = 0; for i in 0..100 { t += i; } t") == 4950


def test_scope_round_trip():
    scope = Scope().push("x", 40)
    engine = Engine()
    assert engine.eval("let y = x + 2; y", scope) == 42
    assert scope.get("y") == 42


def test_register_fn_and_functions_called():
    engine = Engine()
    engine.register_fn("plus_one", lambda x: x + 1)
    assert engine.eval("plus_one(41)") == 42
    ast = engine.compile("fn own(a) { a } let x = foo(1) + own(2); x.bar(); x.len()")
    assert ast.functions_called == {"foo", "bar"}
    assert ast.functions == {("own", 1)}


def test_errors_are_rhai_errors():
    with pytest.raises(RhaiError) as info:
        Engine().eval("let a = 1;\nlet b = a / 0;")
    assert info.value.kind == "ErrorArithmetic"
    assert (info.value.line, info.value.column) == (2, 11)
    with pytest.raises(RhaiError) as info:
        Engine().compile("let x = ;")
    assert info.value.kind == "ErrorParsing"


def test_closures_switch_and_try():
    src = """
        let total = 0;
        let add = |x| total += x;
        for i in 1..=4 { add.call(i); }
        let kind = switch total { 0 => "none", 1..=10 => "small", _ => "big" };
        let caught = (); try { 1 / 0 } catch (e) { caught = e.error; }
        [total, kind, caught]
    """
    assert Engine().eval(src) == [10, "small", "ErrorArithmetic"]


def test_limits_are_errors():
    with pytest.raises(RhaiError) as info:
        Engine(max_operations=1000).eval("loop { }")
    assert info.value.kind == "ErrorTooManyOperations"
    with pytest.raises(RhaiError) as info:
        Engine().eval("fn f(n) { f(n + 1) } f(0)")
    assert info.value.kind == "ErrorStackOverflow"
