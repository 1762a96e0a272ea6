"""Odds and ends the other modules do not own: type_of for every type, unit, print/debug,
variable scoping rules, variable-count limits, identifiers and reserved words."""

import pytest

from .conftest import assert_error, assert_value, case, run

TYPES = [
    case("type_of(42)", "i64"),
    case("type_of(4.2)", "f64"),
    case("type_of(true)", "bool"),
    case("type_of('x')", "char"),
    case('type_of("s")', "string"),
    case("type_of([])", "array"),
    case("type_of(#{})", "map"),
    case("type_of(())", "()"),
    case('type_of(Fn("f"))', "Fn"),
    case("type_of(|x| x)", "Fn"),
    case("type_of(1..2)", "range"),
    case("type_of(1..=2)", "range="),
    case("42.type_of()", "i64"),
    case("let x = [1]; x.type_of()", "array"),
    case("type_of(type_of(1))", "string"),
    case("type_of(1 + 1.0)", "f64"),
    case("type_of(1 / 2)", "i64"),
    case("type_of('a' + 'b')", "string"),
    case("type_of(blob(2, 0))", "blob"),
    case("type_of(timestamp())", "timestamp"),
]


@pytest.mark.parametrize(("src", "expected"), TYPES)
def test_type_of(src, expected):
    assert_value(src, expected)


UNIT = [
    case("()", None),
    case("let x = (); x", None),
    case("let x = (); x == ()", True),
    case("fn f() {} f() == ()", True),
    case("[(), ()].len()", 2),
    case("print(1)", None, id="print-returns-unit"),
    case('debug("x")', None, id="debug-returns-unit"),
    case("let x = 5; take(x)", 5),
    case("let x = 5; take(x); x", None, id="take-leaves-unit"),
]


@pytest.mark.parametrize(("src", "expected"), UNIT)
def test_unit_and_side_effect_builtins(src, expected):
    assert_value(src, expected)


def test_print_writes_display_form(capsys):
    assert_value('print(40 + 2); print("s"); print(()); print([1, "a"])', None)
    out = capsys.readouterr().out.splitlines()
    assert out == ["42", "s", "", '[1, "a"]']


SCOPING = [
    case("let sum = 0; for x in 0..10 { let x = 42; sum += x; } sum", 420),
    case("let x = 3; let y = 0; { let x = 42; let y = 999; } let x = 123; [x, y]", [123, 0]),
    case("let x = 3; let x = 42; let x = 123; x", 123),
    case("const x = 3; let x = 42; x = 1; x", 1, id="let-shadows-const"),
    case("let x = 1; if true { let x = 2; } x", 1),
    case("let x = 1; while x < 3 { let y = x; x += 1; } x", 3),
    case("let a = 1; fn f(a) { a * 10 } f(2) + a", 21, id="param-shadows-global"),
    case("let i = 10; for i in 0..3 {} i", 10),
    case("let v = 1; { let v = v + 1; v }", 2, id="inner-let-reads-outer"),
]


@pytest.mark.parametrize(("src", "expected"), SCOPING)
def test_scoping(src, expected):
    assert_value(src, expected)


VARIABLES_OK = [
    pytest.param("let a = 0; let b = 0; let c = 0; let d = 0; let e = 0;", id="five"),
    pytest.param("let a = 0; let b = 0; let c = 0; let d = 0; let e = 0; let a = 42;",
                 id="shadow-reuses-slot"),
    pytest.param(
        "fn foo(n) { if n > 3 { return; } let w = 0; let x = 0; let y = 0; let z = 0; foo(n + 1); }"
        " let a = 0; let b = 0; let c = 0; let d = 0; let e = 0; foo(0);",
        id="functions-have-own-scope",
    ),
    pytest.param("fn foo(a, b, c, d, e) { 42 } foo(0, 0, 0, 0, 0);", id="five-params"),
]  # fmt: skip


@pytest.mark.parametrize("src", VARIABLES_OK)
def test_variable_limit_allows(src):
    run(src, max_variables=5)


VARIABLES_TOO_MANY = [
    pytest.param("let a = 0; let b = 0; let c = 0; let d = 0; let e = 0; let f = 0;", id="six"),
    pytest.param(
        "fn foo(n) { if n > 3 { return; } let v = 0; let w = 0; let x = 0; let y = 0; let z = 0;"
        " foo(n + 1); } let a = 0; foo(0);",
        id="six-in-function",
    ),
    pytest.param("fn foo(a, b, c, d, e, f) { 42 } foo(0, 0, 0, 0, 0, 0);", id="six-params"),
]  # fmt: skip


@pytest.mark.parametrize("src", VARIABLES_TOO_MANY)
def test_variable_limit_exceeded(src):
    assert_error(src, "ErrorTooManyVariables", max_variables=5)


IDENTIFIERS_BAD = [
    pytest.param("fn _1() { 1 } _1()", id="underscore-digit-fn-name"),
    pytest.param("let 1x = 2;", id="digit-first"),
    pytest.param("let x-y = 2;", id="dash"),
    pytest.param("let é = 1;", id="non-ascii"),
    pytest.param("fn すべての答え() { 42 }", id="unicode-fn-name"),
    pytest.param("let static = 1;", id="reserved-static"),
    pytest.param("let match = 1;", id="reserved-match"),
    pytest.param("let async = 1;", id="reserved-async"),
    pytest.param("let null = 1;", id="reserved-null"),
    pytest.param("let let = 1;", id="keyword-let"),
    pytest.param("let this = 1;", id="keyword-this"),
    pytest.param("let true = 1;", id="keyword-true"),
]


@pytest.mark.parametrize("src", IDENTIFIERS_BAD)
def test_bad_identifiers(src):
    assert_error(src, "ErrorParsing", compile_only=True)


def test_reserved_word_parse_kind():
    assert_error("let goto = 1;", "ErrorParsing", parse_kind="Reserved", compile_only=True)
