"""Script functions: definition, arity overloading, purity, methods and `this`, recursion,
errors wrapped in ErrorInFunctionCall, eval, host-registered functions."""

import pytest

from rhai import Engine, RhaiError

from .conftest import assert_error, assert_value, case, eval_compiled, same

FUNCTIONS = [
    case("fn add(a, b) { a + b } add(1, 2)", 3),
    case("fn add(a, b,) { a + b } add(1, 2,)", 3, id="trailing-commas"),
    case("fn f() { 42 } f()", 42),
    case("fn f() { } f()", None, id="empty-body-unit"),
    case("fn f() { return 1; 2 } f()", 1),
    case("fn f() { return; } f()", None),
    case('fn f(x) { if x > 0 { return "pos"; } "non-pos" } f(-1)', "non-pos"),
    case("f(2); fn f(x) { x * 2 }", 4, id="fn-definition-is-not-a-statement"),
    case("let r = f(2); fn f(x) { x * 2 } r", 4, id="use-before-definition"),
    case("fn f(x) { 1 } fn f(x, y) { 2 } f(1) + f(1, 2) * 10", 21, id="overload-by-arity"),
    case("fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } } fib(15)", 610),
    case("fn fact(n) { if n <= 1 { 1 } else { n * fact(n - 1) } } fact(20)", 2432902008176640000),
    case("fn f(a) { a = 5; a } let a = 1; f(a); a", 1, id="args-are-copies"),
    case("fn f(a) { a += 1; a } f(1)", 2),
    case("fn f() { let x = 3; x } let x = 1; f() + x", 4),
    case("fn f() { 1 } let f = 2; f() + f", 3, id="fn-and-var-namespaces"),
    case("fn f(x) { x } f(f(f(7)))", 7),
    case('fn greet(name) { `hi ${name}` } greet("bob")', "hi bob"),
    case('fn f(a, b) { [a, b] } f(1, "x")', [1, "x"]),
    case('is_def_fn("f", 1)', False),
    case('fn f(x) {} is_def_fn("f", 1)', True),
    case('fn f(x) {} is_def_fn("f", 2)', False),
    case("private fn secret() { 5 } secret()", 5, id="private-fn-callable-in-script"),
    case("const K = 10; fn f() { global::K } f()", 10, id="global-constant"),
    case(
        "fn f() { x } let x = 42; f!()",
        42,
        id="bang-call-sees-caller-scope",
    ),
    case(
        "fn f() { x = 5; } let x = 1; f!(); x",
        5,
        id="bang-call-writes-caller-scope",
    ),
    case("fn f(x) { x.len() } f([1, 2, 3])", 3),
    case("fn f() { [1, 2] } f()[1]", 2),
    case("fn f() { #{a: 3} } f().a", 3),
    case("fn do_it() { let s = 0; for i in 0..5 { s += i; } s } do_it()", 10),
    case("fn f(n) { if n == 0 { 0 } else { 1 + f(n - 1) } } f(50)", 50, id="recursion-50"),
    case("fn not(x) { !x } not(false)", True, id="user-fn-named-not"),
]


@pytest.mark.parametrize(("src", "expected"), FUNCTIONS)
def test_functions(src, expected):
    assert_value(src, expected)


METHODS = [
    case("fn inc() { this += 1; } let x = 1; x.inc(); x", 2, id="this-by-reference"),
    case("fn add(n) { this + n } let x = 40; x.add(2)", 42),
    case("fn get_a() { this.a } let m = #{a: 7}; m.get_a()", 7),
    case("fn set_a(v) { this.a = v; } let m = #{a: 7}; m.set_a(9); m.a", 9),
    case("fn push2() { this.push(2); } let a = [1]; a.push2(); a", [1, 2]),
    case("fn double() { this * 2 } let x = 21; x.double()", 42),
    case("fn int.double() { this * 2 } let x = 21; x.double()", 42, id="typed-int-method"),
    case('fn string.shout() { this + "!" } let s = "hi"; s.shout()', "hi!", id="typed-string"),
    case("fn whoami() { type_of(this) } let a = [1]; a.whoami()", "array"),
    case("let y = [1]; pad(y, 3, 0); y", [1, 0, 0], id="native-by-ref-function-style"),
    case("let y = [1]; y.pad(3, 0); y", [1, 0, 0], id="native-by-ref-method-style"),
]


MORE_FUNCTIONS = [
    case("fn mul2(x) { x *= 2 } let a = 21; mul2(a); a", 21, id="param-compound-assign-is-local"),
    case("fn mul2() { this *= 2; } let x = 21; x.mul2(); x", 42),
    case(
        "fn f(a, b, c, d, e, f) { a - b * c + d * e - f } f(100, 5, 2, 9, 6, 32)",
        112,
        id="six-params",
    ),
    case(
        "fn g(x, y, z) { 2 * x + 3 * y + 4 * z + 888 } fn g(x, y) { x + 2 * y + 88 } "
        "fn g() { 42 } fn g(x) { x - 42 } g() + g(1) + g(1, 2) + g(1, 2, 3)",
        1002,
        id="four-overloads",
    ),
    case('fn foo(x) { 40 + x } let n = "f"; n += "oo"; Fn(n).call(2)', 42, id="fn-from-built-name"),
    case('fn foo(x) { 40 + x } let m = #{act: Fn("foo")}; m.act.call(2)', 42),
    case('fn foo(x) { this.d += x; } let m = #{d: 40, act: Fn("foo")}; m.act(2); m.d', 42),
    case("const ANSWER = 42; fn foo() { global::ANSWER } foo()", 42),
    case(
        "fn foo() { let hello = bar + 42; } let bar = 999; let hello = 123; foo!(); hello",
        123,
        id="bang-call-let-stays-local",
    ),
    case(
        "fn foo(y) { x += y; x } let x = 41; let y = 999; foo!(1) + x",
        84,
        id="bang-call-with-argument",
    ),
    case(
        'fn foo(x) { let hello = bar + x; } let bar = 1; let hello = 123; call!(Fn("foo"), 1); '
        "hello",
        123,
        id="call-bang",
    ),
]


@pytest.mark.parametrize(("src", "expected"), MORE_FUNCTIONS)
def test_more_functions(src, expected):
    assert_value(src, expected)


def test_block_constant_is_not_global():
    err = assert_error(
        "fn foo() { global::ANSWER }\n{ const ANSWER = 42; foo() }", "ErrorInFunctionCall", line=2
    )
    assert err.root().kind == "ErrorVariableNotFound"
    assert "ANSWER" in err.root().message


def test_bang_call_on_method_is_malformed_capture():
    assert_error(
        "fn foo() { this += x; } let x = 41; let y = 999; y.foo!();",
        "ErrorParsing",
        parse_kind="MalformedCapture",
        compile_only=True,
    )


def test_bang_call_does_not_leak_without_bang():
    err = assert_error("fn foo(y) { x += y; x } let x = 41; foo(1) + x", "ErrorInFunctionCall")
    assert err.root().kind == "ErrorVariableNotFound"


def test_missing_fn_through_pointer_names_it():
    err = assert_error('let f = Fn("abc"); f.call(0)', "ErrorFunctionNotFound", line=1)
    assert "abc (" in err.message


def test_script_function_wins_over_registered_function():
    engine = Engine()
    engine.register_fn("test", lambda: 42)
    assert engine.eval("fn test() { 123 } test()") == 123
    assert engine.eval("test()") == 42


def test_garbage_after_fn_keyword():
    assert_error("fn/*\0\u201e", "ErrorParsing", compile_only=True)


@pytest.mark.parametrize(("src", "expected"), METHODS)
def test_methods(src, expected):
    assert_value(src, expected)


TYPED_METHODS = [
    case("let x = -123; x.abs(); x", -123, id="pure-method-leaves-variable"),
    case(
        'fn string.foo(x) { this += "!"; } fn foo(x) { this += x; } '
        'let z = 1000; z.foo(1); let s = "a"; s.foo(0); [z, s]',
        [1001, "a!"],
        id="typed-and-untyped-same-name",
    ),
    case('fn "string".bar() { this.len() } let s = "abc"; s.bar()', 3, id="quoted-type-name"),
    case(
        'fn "string".bar() { this.len() } is_def_fn("string", "bar", 0)',
        True,
        id="is-def-fn-typed",
    ),
    case(
        'fn "string".bar() { this.len() } is_def_fn("array", "bar", 0)',
        False,
        id="is-def-fn-other-type",
    ),
]


@pytest.mark.parametrize(("src", "expected"), TYPED_METHODS)
def test_typed_methods(src, expected):
    assert_value(src, expected)


def test_typed_method_is_not_a_plain_function():
    err = assert_error("fn int.half() { this / 2 } half()", "ErrorFunctionNotFound", line=1)
    assert err.message.split(": ", 1)[-1].startswith("half")


def test_typed_method_rejects_other_types():
    assert_error('fn int.double() { this * 2 } let s = "a"; s.double()', "ErrorFunctionNotFound")


def test_this_in_plain_call_is_unbound():
    err = assert_error("fn f() { this }\nf()", "ErrorInFunctionCall", line=2, column=1)
    assert err.root().kind == "ErrorUnboundThis"
    assert err.inner is not None and err.inner.line == 1


def test_function_cannot_see_caller_variables():
    err = assert_error("let x = 1;\nfn f() { x }\nf()", "ErrorInFunctionCall", line=3, column=1)
    inner = err.root()
    assert inner.kind == "ErrorVariableNotFound"
    assert (inner.line, inner.column) == (2, 10)


def test_error_in_function_is_wrapped():
    err = assert_error("fn f(x) {\n  x / 0\n}\nf(1)", "ErrorInFunctionCall", line=4, column=1)
    assert err.inner.kind == "ErrorArithmetic"
    assert err.inner.line == 2
    assert "f" in err.message


def test_nested_wrapping():
    err = assert_error("fn g() { throw 1 } fn f() { g() } f()", "ErrorInFunctionCall")
    assert err.inner.kind == "ErrorInFunctionCall"
    assert err.root().kind == "ErrorRuntime"
    assert err.root().value == 1


FN_NOT_FOUND = [
    pytest.param("foo(1)", "foo (i64)", 1, id="unknown-fn"),
    pytest.param('foo(1, "a", [])', "foo (i64, string, array)", 1, id="signature-types"),
    pytest.param("fn f(a) { a } f(1, 2)", "f (i64, i64)", 15, id="wrong-arity"),
    pytest.param("fn f(a) { a } f()", "f ()", 15, id="too-few-args"),
    pytest.param("let x = 1; x.nope()", "nope (i64)", None, id="unknown-method"),
    pytest.param('abs("x")', "abs (string)", 1, id="native-wrong-type"),
    pytest.param("1.0.nope(2)", "nope (f64, i64)", None, id="float-method"),
    pytest.param("nope(#{}, (), 'c', true)", "nope (map, (), char, bool)", 1, id="more-types"),
]


@pytest.mark.parametrize(("src", "signature", "column"), FN_NOT_FOUND)
def test_function_not_found(src, signature, column):
    err = assert_error(src, "ErrorFunctionNotFound", line=1, column=column)
    assert signature in err.message


DEFINITION_ERRORS = [
    pytest.param("fn f(x) { 1 } fn f(y) { 2 }", "FnDuplicatedDefinition", id="duplicate-fn"),
    pytest.param("fn f(x, x) { 1 }", "FnDuplicatedParam", id="duplicate-param"),
    pytest.param("{ fn f() { 1 } }", "WrongFnDefinition", id="fn-in-block"),
    pytest.param("fn f() { fn g() { 1 } }", "WrongFnDefinition", id="fn-in-fn"),
    pytest.param("if true { fn f() {} }", "WrongFnDefinition", id="fn-in-if"),
    pytest.param("fn (x) { x }", "FnMissingName", id="missing-name"),
    pytest.param("fn f { 1 }", "FnMissingParams", id="missing-params"),
    pytest.param("fn f()", "FnMissingBody", id="missing-body"),
]


@pytest.mark.parametrize(("src", "parse_kind"), DEFINITION_ERRORS)
def test_function_definition_errors(src, parse_kind):
    assert_error(src, "ErrorParsing", parse_kind=parse_kind, compile_only=True)


def test_duplicate_definition_position():
    assert_error(
        "fn f(x) { 1 }\nfn f(y) { 2 }",
        "ErrorParsing",
        line=2,
        parse_kind="FnDuplicatedDefinition",
    )


EVAL = [
    case('eval("1 + 2")', 3),
    case('eval("let z = 5;"); z', 5, id="eval-let-visible-after"),
    case('let a = 10; eval("a * 2")', 20, id="eval-sees-scope"),
    case('let a = 1; eval("a = 7"); a', 7, id="eval-assigns-scope"),
    case('eval("")', None),
    case('let s = "40 + 2"; eval(s)', 42),
    case('eval("eval(\\"3\\")")', 3, id="nested-eval"),
]


MORE_EVAL = [
    case('let a = 1; eval("let a = 5"); a', 5, id="eval-let-shadows-in-place"),
    case('let a = 1; eval("{ let a = 5; }"); a', 1, id="eval-block-let-is-local"),
    case('let a = 1; { { eval("let a = 5"); } } a', 1, id="eval-in-nested-block"),
    case(
        'let x = 10; if x > 5 { eval("let x = 1"); x } else { 0 }',
        1,
        id="eval-let-visible-in-calling-block",
    ),
    case('fn foo(x) { x * 2 } eval("foo(21)")', 42, id="eval-calls-script-fn"),
    case('let s = "let y = 2;"; s += "y * 21"; eval(s)', 42, id="eval-built-script"),
    case(
        'const K = 1; fn f() { global::K } eval("const K = 2;"); f()',
        2,
        id="eval-const-updates-global",
    ),
    case(
        'const K = 1; fn f() { global::K } { eval("const K = 2;"); } f()',
        1,
        id="eval-const-in-block-is-local",
    ),
]


@pytest.mark.parametrize(("src", "expected"), MORE_EVAL)
def test_eval_scoping(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(("src", "expected"), EVAL)
def test_eval(src, expected):
    assert_value(src, expected)


def test_eval_errors_are_wrapped():
    err = assert_error('eval("1 / 0")', "ErrorInFunctionCall", line=1)
    assert err.root().kind == "ErrorArithmetic"


def test_eval_cannot_define_functions():
    with pytest.raises(RhaiError) as info:
        Engine().eval('eval("fn f() { 1 }"); f()')
    assert info.value.root().kind in {"ErrorParsing", "ErrorFunctionNotFound"}


def test_eval_parse_error_is_wrapped():
    with pytest.raises(RhaiError) as info:
        Engine().eval('eval("let = ;")')
    assert info.value.root().kind == "ErrorParsing"


def test_register_fn_called_from_script():
    engine = Engine()
    engine.register_fn("plus_one", lambda x: x + 1)
    value = engine.eval("plus_one(41)")
    assert value == 42 and type(value) is int


def test_register_fn_as_method():
    engine = Engine()
    engine.register_fn("twice", lambda s: s + s)
    value = engine.eval('"ab".twice()')
    assert value == "abab" and type(value) is str


def test_register_fn_result_used_in_closure():
    engine = Engine()
    engine.register_fn("plus_one", lambda x: x + 1)
    assert engine.eval("let a = 41; let f = || plus_one(a); f.call()") == 42


def test_compile_once_eval_many_times():
    engine = Engine()
    ast = engine.compile("fn sq(x) { x * x } sq(12)")
    for _ in range(3):
        assert same(eval_compiled(engine, ast), 144)


def test_functions_called_lists_calls():
    ast = Engine().compile("let x = foo(1) + bar(2); x.baz()")
    called = set(ast.functions_called)
    assert {"foo", "bar"} <= called


def test_stack_overflow_default_limit():
    src = "fn f(n) { if n == 0 { 0 } else { 1 + f(n - 1) } } f(1000)"
    assert_error(src, "ErrorStackOverflow")


def test_call_levels_limit_is_configurable():
    src = "fn f(n) { if n == 0 { 0 } else { 1 + f(n - 1) } } f(10)"
    assert_value(src, 10, max_call_levels=20)
    assert_error(src, "ErrorStackOverflow", max_call_levels=8)
