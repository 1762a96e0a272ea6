"""The host-side API: Scope (variables in and out of a script), compile once / run many,
call_fn into script functions, register_fn, and the Python values that cross the boundary."""

import contextlib
import threading

import pytest

from rhai import AST, Char, Engine, FnPtr, Range, RhaiError, Scope

from .conftest import same


def test_scope_variables_are_visible_and_persist():
    engine, scope = Engine(), Scope()
    engine.run("let x = 4 + 5;", scope)
    assert same(engine.eval("x", scope), 9)
    engine.run("x += 1; x += 2;", scope)
    assert same(engine.eval("x", scope), 12)
    assert same(scope.get("x"), 12)


def test_host_set_value_is_seen_by_script():
    engine, scope = Engine(), Scope()
    engine.run("let x = 1;", scope)
    scope.set("x", 42)
    assert same(engine.eval("x", scope), 42)


def test_block_variables_do_not_leak_into_scope():
    engine, scope = Engine(), Scope()
    scope.push("x", 42)
    engine.run("{ let x = 3; let inner = 1; }", scope)
    assert same(scope.get("x"), 42)
    assert "inner" not in scope


def test_shadowing_keeps_one_entry_per_name():
    engine, scope = Engine(), Scope()
    engine.run("let x = 3; let y = 0; let x = 42; let y = 999; let x = 123;", scope)
    assert len(scope) == 2
    assert same(scope.get("x"), 123) and same(scope.get("y"), 999)


def test_constness_follows_the_last_declaration():
    engine, scope = Engine(), Scope()
    engine.run("const x = 3; let y = 0; let x = 42;", scope)
    assert not scope.is_constant("x")
    engine.run("const x = 123;", scope)
    assert scope.is_constant("x") and same(scope.get("x"), 123)


def test_script_updates_pushed_variable():
    engine, scope = Engine(), Scope()
    scope.push("y", 42).push("z", 999)
    engine.run("let x = 4 + 5 - y + z; y = 1;", scope)
    assert same(scope.get("y"), 1)
    assert same(scope.get("x"), 966)


def test_assigning_a_pushed_constant_is_a_runtime_error():
    engine, scope = Engine(), Scope()
    scope.push_constant("x", 42)
    with pytest.raises(RhaiError) as info:
        engine.run("x = 1", scope)
    assert info.value.kind == "ErrorAssignmentToConstant"
    assert info.value.line == 1
    assert same(scope.get("x"), 42)


def test_pushed_constant_is_readable():
    engine, scope = Engine(), Scope()
    scope.push_constant("LIMIT", 10)
    assert same(engine.eval("LIMIT * 2", scope), 20)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        pytest.param(1, "i64", id="int"),
        pytest.param(1.5, "f64", id="float"),
        pytest.param(True, "bool", id="bool"),
        pytest.param("s", "string", id="str"),
        pytest.param(Char("c"), "char", id="char"),
        pytest.param(None, "()", id="none"),
        pytest.param([1, "a"], "array", id="list"),
        pytest.param({"k": 1}, "map", id="dict"),
        pytest.param(FnPtr("abs"), "Fn", id="fnptr"),
    ],
)
def test_python_values_enter_as_rhai_types(value, type_name):
    engine, scope = Engine(), Scope()
    scope.push("v", value)
    assert same(engine.eval("type_of(v)", scope), type_name)
    assert same(engine.eval("v", scope), value)


def test_pushed_list_is_mutated_in_place_by_methods():
    engine, scope = Engine(), Scope()
    scope.push("a", [1])
    engine.run("a.push(2); a[0] = 10;", scope)
    assert same(scope.get("a"), [10, 2])


def test_pushed_map_property_assignment():
    engine, scope = Engine(), Scope()
    scope.push("m", {"a": 1})
    engine.run("m.b = 2; m.a += 1;", scope)
    assert same(scope.get("m"), {"a": 2, "b": 2})


def test_scope_variable_is_defined_for_is_def_var():
    engine, scope = Engine(), Scope()
    scope.push("x", 1)
    assert engine.eval('is_def_var("x")', scope) is True
    assert engine.eval('is_def_var("y")', scope) is False


def test_script_functions_cannot_see_scope_variables():
    engine, scope = Engine(), Scope()
    scope.push("x", 1)
    with pytest.raises(RhaiError) as info:
        engine.eval("fn f() { x } f()", scope)
    assert info.value.root().kind == "ErrorVariableNotFound"


def test_scopes_are_independent():
    engine = Engine()
    first, second = Scope(), Scope()
    engine.run("let x = 1;", first)
    engine.run("let x = 2;", second)
    assert same(first.get("x"), 1) and same(second.get("x"), 2)


def test_no_scope_means_fresh_variables_each_run():
    engine = Engine()
    engine.run("let x = 1;")
    with pytest.raises(RhaiError) as info:
        engine.eval("x")
    assert info.value.kind == "ErrorVariableNotFound"


def test_error_leaves_earlier_assignments_in_scope():
    engine, scope = Engine(), Scope()
    scope.push("n", 0)
    with pytest.raises(RhaiError):
        engine.run("n = 5; throw 1;", scope)
    assert same(scope.get("n"), 5)


def test_compile_returns_reusable_ast():
    engine = Engine()
    ast = engine.compile("let t = 0; for i in 0..5 { t += i; } t")
    assert isinstance(ast, AST)
    assert [engine.eval(ast) for _ in range(3)] == [10, 10, 10]


def test_ast_runs_against_different_scopes():
    engine = Engine()
    ast = engine.compile("x * 2")
    for x in (1, 5, -3):
        scope = Scope()
        scope.push("x", x)
        assert same(engine.eval(ast, scope), x * 2)


def test_compile_reports_syntax_errors_without_running():
    engine = Engine()
    with pytest.raises(RhaiError) as info:
        engine.compile('print("side effect"); let = 1;')
    assert info.value.kind == "ErrorParsing"


def test_call_fn_by_arity():
    engine = Engine()
    ast = engine.compile("fn hello(x, y) { x + y } fn hello(x) { x * 2 } fn hello() { 41 }")
    assert same(engine.call_fn(ast, "hello", 42, 123), 165)
    assert same(engine.call_fn(ast, "hello", 123), 246)
    assert same(engine.call_fn(ast, "hello"), 41)


def test_call_fn_arguments_are_copies():
    engine = Engine()
    ast = engine.compile("fn grow(a) { a.push(9); a.len() }")
    data = [1, 2]
    assert same(engine.call_fn(ast, "grow", data), 3)
    assert data == [1, 2]


def test_call_fn_returns_rhai_values():
    engine = Engine()
    ast = engine.compile("fn make() { #{list: [1, 'c', ()], f: 1.5} }")
    assert same(engine.call_fn(ast, "make"), {"list": [1, Char("c"), None], "f": 1.5})


@pytest.mark.parametrize(
    ("name", "args"),
    [
        pytest.param("missing", (), id="unknown-name"),
        pytest.param("add", (1,), id="wrong-arity"),
    ],
)
def test_call_fn_not_found(name, args):
    engine = Engine()
    ast = engine.compile("fn add(x, n) { x + n }")
    with pytest.raises(RhaiError) as info:
        engine.call_fn(ast, name, *args)
    assert info.value.kind == "ErrorFunctionNotFound"


def test_call_fn_error_inside_function():
    engine = Engine()
    ast = engine.compile("fn boom(x) {\n  x / 0\n}")
    with pytest.raises(RhaiError) as info:
        engine.call_fn(ast, "boom", 1)
    assert info.value.root().kind == "ErrorArithmetic"
    assert info.value.root().line == 2


def test_call_fn_respects_operation_limit():
    engine = Engine(max_operations=1_000)
    ast = engine.compile("fn spin() { loop {} }")
    with pytest.raises(RhaiError) as info:
        engine.call_fn(ast, "spin")
    assert info.value.root().kind == "ErrorTooManyOperations"


def test_register_fn_receives_rhai_values():
    seen = []
    engine = Engine()
    engine.register_fn("probe", lambda v: seen.append(v))
    engine.run("probe(1); probe(1.5); probe('c'); probe(\"s\"); probe([1]); probe(#{a: ()})")
    assert [type(v) for v in seen] == [int, float, Char, str, list, dict]
    assert same(seen[4], [1]) and same(seen[5], {"a": None})


def test_register_fn_overloads_by_arity():
    engine = Engine()
    engine.register_fn("pick", lambda a: "one")
    engine.register_fn("pick", lambda a, b: "two")
    assert engine.eval("pick(1) + pick(1, 2)") == "onetwo"


def test_register_fn_exception_becomes_rhai_error():
    def fail(x):
        raise ValueError("host says no")

    engine = Engine()
    engine.register_fn("fail", fail)
    with pytest.raises(RhaiError) as info:
        engine.eval("fail(1)")
    assert info.value.line == 1


def test_register_fn_error_can_be_caught_by_script():
    def fail(x):
        raise RhaiError("ErrorRuntime", "host failure", value="nope")

    engine = Engine()
    engine.register_fn("fail", fail)
    assert engine.eval("try { fail(1) } catch (e) { return e; }") == "nope"


def test_script_function_shadows_nothing_from_host():
    engine = Engine()
    engine.register_fn("twice", lambda x: x * 2)
    assert same(engine.eval("fn thrice(x) { x * 3 } twice(thrice(2))"), 12)


@pytest.mark.parametrize(
    ("src", "check"),
    [
        pytest.param("|x| x", lambda v: type(v) is FnPtr and v.is_anonymous, id="closure"),
        pytest.param('Fn("abs")', lambda v: type(v) is FnPtr and v.name == "abs", id="fn-pointer"),
        pytest.param("1..3", lambda v: v == Range(1, 3), id="range"),
        pytest.param("1..=3", lambda v: v == Range(1, 3, inclusive=True), id="inclusive-range"),
        pytest.param("blob(2, 1)", lambda v: type(v) is bytearray and v == b"\x01\x01", id="blob"),
        pytest.param("'c'", lambda v: type(v) is Char and v == "c", id="char"),
        pytest.param("[(), 1.0]", lambda v: v == [None, 1.0] and type(v[1]) is float, id="unit"),
    ],
)
def test_values_returned_to_the_host(src, check):
    assert check(Engine().eval(src))


def test_functions_called_excludes_own_and_builtin_functions():
    ast = Engine().compile("fn own() { 1 } own(); len([1]); host_a(1); x.host_b(); print(1)")
    called = set(ast.functions_called)
    assert {"host_a", "host_b"} <= called
    assert "own" not in called and "len" not in called and "print" not in called


@pytest.mark.parametrize(
    ("result", "limits"),
    [
        pytest.param("x" * 1_000, {"max_string_size": 100}, id="string"),
        pytest.param(list(range(1_000)), {"max_array_size": 100}, id="array"),
        pytest.param({f"k{i}": i for i in range(1_000)}, {"max_map_size": 100}, id="map"),
    ],
)
def test_host_results_are_held_to_the_size_limits(result, limits):
    engine = Engine(**limits)
    engine.register_fn("big", lambda: result)
    with pytest.raises(RhaiError) as info:
        engine.eval("let v = big(); v")
    assert info.value.kind == "ErrorDataTooLarge"


def test_host_error_kind_is_kept():
    def deny(path):
        raise RhaiError("ErrorRuntime", f"access to {path} denied", value="denied")

    engine = Engine()
    engine.register_fn("open_file", deny)
    with pytest.raises(RhaiError) as info:
        engine.eval('let x = 1;\nopen_file("/etc/shadow")')
    assert info.value.root().kind == "ErrorRuntime"
    assert info.value.line == 2


def test_operation_budget_is_per_run():
    engine = Engine(max_operations=5_000)
    ast = engine.compile("let s = 0; for i in 0..1000 { s += i; } s")
    assert [engine.eval(ast) for _ in range(5)] == [499500] * 5


def test_engine_is_reusable_after_errors():
    engine = Engine(max_operations=1_000)
    for src in ("loop {}", "1 / 0", "let = ;", "fn f() { f() } f()"):
        with contextlib.suppress(RhaiError):
            engine.eval(src)
    assert same(engine.eval("40 + 2"), 42)


def test_host_function_may_reenter_the_same_engine():
    engine = Engine(max_operations=100_000)
    engine.register_fn("inner", lambda src: engine.eval(src))
    assert same(engine.eval('fn f(x) { x * 2 } let a = inner("40 + 2"); f(a)'), 84)
    assert same(engine.eval('fn f(x) { x * 2 } let a = inner("fn g() { 5 } g()"); f(a) + a'), 15)
    ast = engine.compile('fn h(x) { x + 1 } h(inner("1"))')
    assert same(engine.eval(ast), 2)


def test_reentrant_script_does_not_see_the_outer_functions():
    engine = Engine()
    engine.register_fn("inner", lambda src: engine.eval(src))
    with pytest.raises(RhaiError) as info:
        engine.eval('fn f(x) { x * 2 } inner("f(1)")')
    assert info.value.root().kind == "ErrorFunctionNotFound"


def test_engines_are_independent():
    outer, inner = Engine(), Engine()
    outer.register_fn("other", lambda: inner.eval("fn z() { 3 } z()"))
    assert same(outer.eval("fn y() { other() + 1 } y()"), 4)


def test_separate_engines_run_concurrently_in_threads():
    results: dict[int, list] = {}

    def work(i: int) -> None:
        engine = Engine()
        src = f"let s = 0; for j in 0..{50 + i} {{ s += j; }} fn f(x) {{ x + {i} }} f(s)"
        results[i] = [engine.eval(src) for _ in range(50)]

    workers = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert results == {i: [sum(range(50 + i)) + i] * 50 for i in range(6)}
