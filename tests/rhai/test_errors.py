"""throw / try / catch, the error map scripts see, error kinds and positions seen by the host."""

import pytest

from rhai import Engine, RhaiError

from .conftest import assert_error, assert_thrown, assert_value, case

THROWN = [
    pytest.param("throw 42;", 42, id="int"),
    pytest.param("if true { throw 42 }", 42, id="in-if"),
    pytest.param("throw;", None, id="bare-throw-is-unit"),
    pytest.param('throw "boom";', "boom", id="string"),
    pytest.param("throw #{code: 7};", {"code": 7}, id="map"),
    pytest.param("throw [1, 2];", [1, 2], id="array"),
    pytest.param("fn f() { throw 5; } f()", 5, id="from-function"),
    pytest.param("let x = 3; throw x * 2;", 6, id="expression"),
]


@pytest.mark.parametrize(("src", "value"), THROWN)
def test_uncaught_throw(src, value):
    assert_thrown(src, value)


def test_throw_position():
    err = assert_error("let x = 1;\n  throw x;", "ErrorRuntime", line=2, column=3)
    assert err.value == 1 and type(err.value) is int


TRY_CATCH = [
    case("try { throw 42; } catch (x) { return x; }", 42),
    case("try { throw 42; } catch { return 123; }", 123),
    case("try { throw 42; } catch (x) { x + 1 }", None, id="caught-try-statement-is-unit"),
    case("let x = 42; try { let y = 123; print(x / 0); } catch { x = 0 } x", 0),
    case("fn foo(x) { try { throw 42; } catch (x) { return x; } } foo(0)", 42),
    case("let err = 123; try { throw 42; } catch (err) { return err; }", 42),
    case("let err = 123; try { throw 42; } catch (err) { } err", 123, id="catch-var-is-scoped"),
    case("try { 1 } catch { 2 }", 1, id="no-error-gives-try-value"),
    case('try { throw "x" } catch (e) { return type_of(e); }', "string"),
    case("try { throw #{code: 1}; } catch (e) { return e.code; }", 1),
    case("fn f() { throw 5; } try { f() } catch (e) { return e; }", 5, id="catch-unwraps-fn-error"),
    case("fn g() { throw 6; } fn f() { g() } try { f() } catch (e) { return e; }", 6),
    case(
        "try { try { throw 1; } catch (e) { throw e + 1; } } catch (e) { return e; }",
        2,
        id="rethrow",
    ),
    case("try { try { throw 1; } catch { throw; } } catch (e) { return e; }", 1, id="bare-rethrow"),
    case(
        "let r = 0; for i in 0..3 { try { if i == 1 { throw i; } r += 10; } catch { r += 1; } } r",
        21,
        id="try-in-loop",
    ),
    case("try { 1 / 0 } catch (e) { return type_of(e); }", "map", id="system-error-as-map"),
    case("try { 1 / 0 } catch (e) { return e.error; }", "ErrorArithmetic"),
    case('try { 1 / 0 } catch (e) { return e.message.contains("Division by zero"); }', True),
    case("try {\n  1 / 0\n} catch (e) { return e.line; }", 2, id="error-map-line"),
    case("try { 1 / 0 } catch (e) { return e.position; }", 9, id="error-map-position"),
    case("try { undefined_x } catch (e) { return e.error; }", "ErrorVariableNotFound"),
    case("try { undefined_x } catch (e) { return e.variable; }", "undefined_x"),
    case("try { nope(1) } catch (e) { return e.error; }", "ErrorFunctionNotFound"),
    case("try { nope(1) } catch (e) { return e.function; }", "nope (i64)"),
    case("try { [1][5] } catch (e) { return e.error; }", "ErrorArrayBounds"),
    case("try { if 1 { } } catch (e) { return e.error; }", "ErrorMismatchDataType"),
    case("try { for x in 1 { } } catch (e) { return e.error; }", "ErrorFor"),
    case('try { "a"[9] } catch (e) { return e.error; }', "ErrorStringBounds"),
    case("try { 1 + true } catch (e) { return e.error; }", "ErrorFunctionNotFound"),
    case(
        "fn f() { 1 / 0 } try { f() } catch (e) { return e.error; }",
        "ErrorArithmetic",
        id="catch-unwraps-in-function-call",
    ),
    case(
        'try { eval("1 / 0") } catch (e) { return e.error; }',
        "ErrorArithmetic",
        id="catch-unwraps-eval",
    ),
    case("try { throw (); } catch (e) { return e; }", None),
    case("try { throw; } catch (e) { return type_of(e); }", "()"),
]


@pytest.mark.parametrize(("src", "expected"), TRY_CATCH)
def test_try_catch(src, expected):
    assert_value(src, expected)


def test_bare_rethrow_keeps_original_error():
    assert_error("try { 42 / 0; } catch { throw; }", "ErrorArithmetic", line=1)


def test_rethrow_of_error_map_is_runtime_error():
    err = assert_error("try { 1 / 0 } catch (e) { throw e; }", "ErrorRuntime", line=1)
    assert type(err.value) is dict and err.value["error"] == "ErrorArithmetic"


def test_try_requires_catch():
    assert_error("try { 1 }", "ErrorParsing", compile_only=True)


RUNTIME_POSITIONS = [
    pytest.param("let a = 1;\nlet b = a / 0;", "ErrorArithmetic", 2, 11, id="arith"),
    pytest.param("let a = 1;\n\n   missing", "ErrorVariableNotFound", 3, 4, id="var"),
    pytest.param("let a = 1;\n  nope(a)", "ErrorFunctionNotFound", 2, 3, id="fn"),
    pytest.param("let a = 1;\nthrow a;", "ErrorRuntime", 2, 1, id="throw"),
    pytest.param("if true {\n  if 3 { }\n}", "ErrorMismatchDataType", 2, None, id="if-cond"),
    pytest.param("let x = [1];\nx[3]", "ErrorArrayBounds", 2, None, id="array-bounds"),
    pytest.param("\n\nfor x in 5 { }", "ErrorFor", 3, None, id="for"),
]


EXACT_POSITIONS = [
    pytest.param("let a = 1;\n`v=${a / 0}`", "ErrorArithmetic", 2, 8, id="inside-interpolation"),
    pytest.param("if true {\n  if 3 { }\n}", "ErrorMismatchDataType", 2, 6, id="if-condition"),
    pytest.param("\n\nfor x in 5 { }", "ErrorFor", 3, 10, id="for-iterable"),
    pytest.param("let x = -9223372036854775808;\n-x", "ErrorArithmetic", 2, 1, id="negation"),
    pytest.param("while 1 {}", "ErrorMismatchDataType", 1, 7, id="while-condition"),
    pytest.param("do {} while 2;", "ErrorMismatchDataType", 1, 13, id="do-condition"),
    pytest.param("switch 1 { 1 if 5 => 1 }", "ErrorMismatchDataType", 1, 17, id="switch-guard"),
    pytest.param("let x = 1;\n  x.nope(1)", "ErrorFunctionNotFound", 2, 5, id="method-name"),
    pytest.param('abs("x")', "ErrorFunctionNotFound", 1, 1, id="native-wrong-type"),
    pytest.param("let a = [1];\nlet b = a - 1;", "ErrorFunctionNotFound", 2, 11, id="operator"),
    pytest.param("let m = #{};\n m.a.b", "ErrorDotExpr", 2, 6, id="property-on-unit"),
    pytest.param("fn f(x) {\n  x + y\n}\nf(1)", "ErrorInFunctionCall", 4, 1, id="call-site"),
]


@pytest.mark.parametrize(("src", "kind", "line", "column"), EXACT_POSITIONS)
def test_exact_error_positions(src, kind, line, column):
    assert_error(src, kind, line=line, column=column)


@pytest.mark.parametrize(("src", "kind", "line", "column"), RUNTIME_POSITIONS)
def test_runtime_error_positions(src, kind, line, column):
    err = assert_error(src, kind, line=line, column=column)
    assert str(err).startswith(f"line {line}, column ")


PARSE_POSITIONS = [
    pytest.param("let x = (1 + 2;", "MissingToken", 1, 15, id="missing-paren"),
    pytest.param("let x = 1;\nlet y = [1, 2;", "MissingToken", 2, None, id="missing-bracket"),
    pytest.param("let x = 1;\nlet = 2;", "VariableExpected", 2, 5, id="let-without-name"),
    pytest.param("let x = #{a 1};", "MissingToken", 1, None, id="map-missing-colon"),
    pytest.param("fn f( { }", None, 1, None, id="bad-params"),
    pytest.param("let x = 1 +;", None, 1, None, id="dangling-operator"),
    pytest.param("x.", None, 1, None, id="dangling-dot"),
    pytest.param("let x = 1;\n\nlet y = @;", "BadInput", 3, 9, id="bad-char"),
    pytest.param("let x = [1, 2", None, 1, None, id="eof-in-array"),
    pytest.param("while true { ", None, 1, None, id="eof-in-block"),
    pytest.param("let x = 1;\nlet y = x +* 2;", None, 2, None, id="two-operators"),
    pytest.param('import "x" y;', None, 1, None, id="bad-import"),
    pytest.param("{ export const x = 1; }", "WrongExport", 1, None, id="export-in-block"),
]


@pytest.mark.parametrize(("src", "parse_kind", "line", "column"), PARSE_POSITIONS)
def test_parse_error_positions(src, parse_kind, line, column):
    err = assert_error(
        src, "ErrorParsing", line=line, column=column, parse_kind=parse_kind, compile_only=True
    )
    assert not err.catchable


def test_parse_errors_cannot_be_caught():
    assert_error("try { let = 1; } catch { 0 }", "ErrorParsing", compile_only=True)


def test_error_kinds_are_distinct_python_exception_attributes():
    with pytest.raises(RhaiError) as info:
        Engine().eval("throw 1")
    err = info.value
    assert err.kind == "ErrorRuntime" and err.catchable
    assert isinstance(err, Exception)


def test_error_message_contains_position_text():
    with pytest.raises(RhaiError) as info:
        Engine().eval("let a = 1;\nlet b = a / 0;")
    assert str(info.value).startswith("line 2, column 11: ")


def test_mismatch_data_type_in_logic_names_types():
    err = assert_error("1 && true", "ErrorMismatchDataType", line=1, column=1)
    assert "bool" in err.message
