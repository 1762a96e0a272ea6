"""Statements and control flow: let/const, blocks and scopes, if, loops, break/continue,
return, and the values those constructs produce."""

import pytest

from rhai import Char, Engine, RhaiError

from .conftest import assert_error, assert_value, case

VARIABLES = [
    case("let x = 5; x", 5),
    case("let x; x", None, id="let-without-value-is-unit"),
    case("let x = 1; let x = x + 1; x", 2, id="shadowing"),
    case('let x = 1; let x = "s"; x', "s", id="shadow-with-other-type"),
    case("const X = 5; X", 5),
    case("const X = 5; X * 2", 10),
    case("const X; X", None),
    case("let x = 1; x = 2; x", 2),
    case('let x = 1; x = "now a string"; x', "now a string", id="dynamic-typing"),
    case("let a = 1; let b = a; b = 2; a", 1),
    case("let _x = 3; _x", 3, id="underscore-prefixed-name"),
    case("let c3po = 1; c3po", 1),
    case("let _r2d2_ = 2; _r2d2_", 2),
    case("let x = 1; { let x = 2; } x", 1, id="block-scope-shadow"),
    case("let x = 1; { x = 2; } x", 2, id="block-assigns-outer"),
    case("let x = 1; { let y = 2; x = y; } x", 2),
    case("let x = 5;", None, id="script-ending-in-let-is-unit"),
    case("let x = 5; x = 6;", None, id="script-ending-in-assignment-is-unit"),
    case('let v = 1; is_def_var("v")', True),
    case('is_def_var("nope")', False),
]


@pytest.mark.parametrize(("src", "expected"), VARIABLES)
def test_variables(src, expected):
    assert_value(src, expected)


def test_undefined_variable():
    err = assert_error("let a = 1;\nlet b = a + zz;", "ErrorVariableNotFound", line=2, column=13)
    assert "zz" in err.message


def test_variable_out_of_scope_after_block():
    assert_error("{ let y = 1; }\ny", "ErrorVariableNotFound", line=2, column=1)


BLOCKS = [
    case("{ 1; 2 }", 2),
    case("{ 1; 2; }", 2, id="last-statement-value-even-with-semicolon"),
    case("let x = { let y = 2; y * 3 }; x", 6),
    case("let x = {}; x", None, id="empty-block-unit"),
    case("{ { { 42 } } }", 42),
    case("1; 2; 3", 3),
    case("let x = { 5 }; x", 5),
]


@pytest.mark.parametrize(("src", "expected"), BLOCKS)
def test_blocks(src, expected):
    assert_value(src, expected)


IF = [
    case("if true { 1 } else { 2 }", 1),
    case("if false { 1 } else { 2 }", 2),
    case("if false { 1 }", None, id="no-else-gives-unit"),
    case('let x = if 1 > 2 { "a" } else { "b" }; x', "b"),
    case("let x = 15; if x < 10 { 1 } else if x < 20 { 2 } else { 3 }", 2),
    case("let x = 25; if x < 10 { 1 } else if x < 20 { 2 } else { 3 }", 3),
    case("let x = 5; if x < 10 { 1 } else if x < 20 { 2 } else { 3 }", 1),
    case("let x = 0; if true { x = 1; } x", 1),
    case("let y = if true { let a = 2; a * a }; y", 4),
    case("if (1 < 2) { 3 }", 3, id="parenthesised-condition"),
    case("let x = 1; if x == 1 { 10 } else { 20 } + 1", 1, id="if-statement-does-not-continue"),
    case("let v = (if true { 10 } else { 20 }) + 1; v", 11),
    case("if true {} else { 2 }", None),
]


MORE_IF = [
    case("let x = 42; let y = 1 + if x > 40 { 100 } else { 0 } / x; y", 3, id="if-is-a-primary"),
    case("let x = 2; let y = if x > 1 { 10 } else { 0 } * 2 + 1; y", 21),
    case(
        "if false { 1 } else if false { 2 } else if false { 3 } else if false { 4 } "
        "else if true { 5 } else { 6 }",
        5,
        id="long-else-if-chain",
    ),
    case("fn neg(x) { -x } neg(5)", -5),
    case("3 - -+ - +3", 0, id="unary-chain"),
    case("let x = -5; -x", 5),
    case("- - 2", 2, id="spaced-double-negation"),
]


@pytest.mark.parametrize(("src", "expected"), MORE_IF)
def test_more_if_and_unary(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(("src", "expected"), IF)
def test_if(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(
    "src",
    [
        pytest.param("if 1 { 2 }", id="int-condition"),
        pytest.param('if "true" { 2 }', id="string-condition"),
        pytest.param("if () { 2 }", id="unit-condition"),
        pytest.param("while 1 { }", id="while-int-condition"),
    ],
)
def test_condition_must_be_bool(src):
    assert_error(src, "ErrorMismatchDataType", line=1)


def test_if_requires_braces():
    assert_error("if true 1 else 2", "ErrorParsing", parse_kind="MissingToken", compile_only=True)


WHILE_LOOP_DO = [
    case("let x = 0; while x < 10 { x += 1; } x", 10),
    case("let x = 0; while false { x += 1; } x", 0),
    # a condition calling a method on a variable (the engine writes `this` back each test)
    case('let s = "x"; while !s.contains("XXX") { s += "X"; } s', "xXXX", id="while-method"),
    case("let a = [1]; while a.len() < 4 { a.push(1); } a.len()", 4, id="while-method-len"),
    case(
        'let m = #{a: "x"}; while !m.a.contains("X") { m.a = "X"; } m.a',
        "X",
        id="while-method-on-property",
    ),
    case("let x = 0; while true { x += 1; if x >= 5 { break; } } x", 5),
    case("let x = 0; let r = while x < 3 { x += 1; }; r", None, id="while-value-unit"),
    case("let x = 0; while true { x += 1; if x > 5 { break x * 2; } }", 12, id="break-value"),
    case("let x = 0; loop { x += 1; if x == 7 { break; } } x", 7),
    case("let r = loop { break 42; }; r", 42),
    case("loop { break; }", None),
    case("let x = 0; do { x += 1; } while x < 5; x", 5),
    case("let x = 10; do { x += 1; } while x < 5; x", 11, id="do-runs-once"),
    case("let x = 0; do { x += 2; } until x >= 7; x", 8),
    case(
        "let s = 0; let i = 0; while i < 10 { i += 1; if i % 2 == 0 { continue; } s += i; } s", 25
    ),
    case(
        "let n = 0; for i in 0..3 { for j in 0..3 { if j > i { break; } n += 1; } } n",
        6,
        id="break-inner-only",
    ),
    case(
        "let n = 0; for i in 0..5 { if i == 2 { continue; } n += i; } n",
        8,
        id="continue-in-for",
    ),
    case("let i = 0; while i < 3 { let i2 = i; i += 1; } i", 3),
]


MORE_LOOPS = [
    case(
        "let x = 0; let i = 0; loop { if i < 10 { i += 1; if x > 20 { continue; } x += i; } "
        "else { break; } } x",
        21,
        id="continue-and-break-in-loop",
    ),
    case(
        "let x = 0; let value = while x < 10 { if x % 5 == 4 { break 42; } x += 1; }; [x, value]",
        [4, 42],
        id="while-break-value",
    ),
    case("let x = (); x", None),
    case("let x = (); let y = (); x == y", True),
]


@pytest.mark.parametrize(("src", "expected"), MORE_LOOPS)
def test_more_loops(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(
    "src",
    [
        pytest.param("let x = 0; break;", id="break-after-let"),
        pytest.param("let x = 0; if x > 0 { continue; }", id="continue-in-if"),
        pytest.param("loop { let f = || { break;  } }", id="break-in-closure"),
    ],
)
def test_loop_break_outside_loop_kind(src):
    assert_error(src, "ErrorParsing", parse_kind="LoopBreak", compile_only=True)


@pytest.mark.parametrize(("src", "expected"), WHILE_LOOP_DO)
def test_while_loop_do(src, expected):
    assert_value(src, expected)


FOR = [
    case("let s = 0; for x in 0..10 { s += x; } s", 45),
    case("let s = 0; for x in 0..=10 { s += x; } s", 55),
    case("let s = 0; for x in 5..5 { s += 1; } s", 0, id="empty-range"),
    case("let s = 0; for x in 5..0 { s += 1; } s", 0, id="reversed-range-empty"),
    case("let s = 0; for x in range(0, 10, 2) { s += x; } s", 20),
    case("let s = 0; for x in range(10, 0, -3) { s += x; } s", 22),
    case("let s = 0; for x in range(0, 5, -1) { s += 1; } s", 0, id="step-wrong-way"),
    case("let s = 0; for x in range(0, 3) { s += x; } s", 3),
    case("let s = 0.0; for x in range(0.0, 1.0, 0.25) { s += x; } s", 1.5, id="float-range"),
    case("let a = []; for x in [3, 1, 2] { a.push(x); } a", [3, 1, 2]),
    case('let a = []; for c in "héj" { a.push(c); } a', [Char("h"), Char("é"), Char("j")]),
    case('let a = []; for c in "ab".chars() { a.push(c); } a', [Char("a"), Char("b")]),
    case(
        'let a = []; for (x, i) in ["a", "b"] { a.push(`${i}${x}`); } a',
        ["0a", "1b"],
        id="for-with-index",
    ),
    case("let a = []; for (x, i) in 10..12 { a.push([x, i]); } a", [[10, 0], [11, 1]]),
    case("let n = 0; for b in 10.bits() { if b { n += 1; } } n", 2, id="for-over-bits"),
    case("let s = 0; for x in ..3 { s += x; } s", 3, id="open-start-range"),
    case("let r = for x in 0..3 { if x == 1 { break x * 100; } }; r", 100),
    case("let r = for x in 0..3 { }; r", None),
    case("let x = 99; for x in 0..3 { } x", 99, id="loop-var-shadows"),
    case("let last = 0; for i in 0..4 { last = i; } last", 3),
]


MORE_FOR = [
    case("let s = 0; for x in range(1, 10, 3) { s += x; } s", 12),
    case("let s = 0; for x in range(0..10, 3) { s += x; } s", 18, id="range-of-range-with-step"),
    case("let s = 0; for x in range(10..0, -4) { s += x; } s", 18, id="reversed-range-with-step"),
    case("let s = 0; for x in range(10, 1, 2) { s += x; } s", 0, id="positive-step-downwards"),
    case("let s = 0; for x in range(1, 10, -2) { s += x; } s", 0, id="negative-step-upwards"),
    case("let s = 0.0; for x in range(10.0, 1.0, -2.0) { s += x; } s", 30.0),
    case("let s = 0.0; for x in range(10.0, 1.0, 2.0) { s += x; } s", 0.0),
    case(
        "let n = 0; for x in range(9223372036854775806, 9223372036854775807, "
        "9223372036854775807) { n += 1; } n",
        0,
        id="step-overflowing-at-start-gives-no-iterations",
    ),
    case('let t = ""; for c in "hello".chars(1..3) { t += c; } t', "el", id="chars-range"),
    case('let n = 0; for c in "hi" { n += c.to_int(); } n', 209, id="char-code-points"),
    case(
        "let fs = []; for (x, i) in 10..13 { fs += || x * 10 + i; } fs.map(|f| f.call())",
        [122, 122, 122],
        id="closures-share-loop-and-counter",
    ),
    case(
        'let a = [123, 999, 42, "x", 7.0]; '
        'for (item, n) in a { switch item.type_of() { "i64" if item.is_even => break n, '
        '"f64" if item.to_int().is_odd => break n * 100 } }',
        2,
        id="switch-inside-for-with-break-value",
    ),
    case("let k = \"\"; let m = #{a: 1, b: 2, c: 3}; let s = 0; "
         "for key in m.keys() { k += key; } for v in m.values() { s += v; } k.len + s", 9),
]  # fmt: skip


@pytest.mark.parametrize(("src", "expected"), MORE_FOR)
def test_for_more(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(("src", "expected"), FOR)
def test_for(src, expected):
    assert_value(src, expected)


def test_for_loop_variable_does_not_leak():
    assert_error("for i in 0..3 { }\ni", "ErrorVariableNotFound", line=2, column=1)


@pytest.mark.parametrize(
    "src",
    [
        pytest.param("for x in 42 { }", id="int"),
        pytest.param("for x in true { }", id="bool"),
        pytest.param("for x in () { }", id="unit"),
        pytest.param("for x in 1.5 { }", id="float"),
    ],
)
def test_for_over_non_iterable(src):
    assert_error(src, "ErrorFor", line=1)


def test_range_step_zero_is_an_error():
    with pytest.raises(RhaiError) as info:
        Engine().eval("for x in range(0, 10, 0) { }")
    assert info.value.root().kind == "ErrorArithmetic", repr(info.value)


@pytest.mark.parametrize(
    "src",
    [
        pytest.param("break;", id="break-top-level"),
        pytest.param("continue;", id="continue-top-level"),
        pytest.param("if true { break; }", id="break-in-if"),
        pytest.param("fn f() { break; }", id="break-in-fn"),
        pytest.param("loop { let f = || { break; }; }", id="break-in-closure-in-loop"),
        pytest.param("for x in 0..2 { fn g() { continue; } }", id="fn-in-loop"),
    ],
)
def test_break_outside_loop(src):
    err = assert_error(src, "ErrorParsing", compile_only=True)
    if "fn g" not in src:
        assert err.parse_kind == "LoopBreak"


RETURN_EXIT = [
    case("return 5; 6", 5),
    case('let x = 1; if x == 1 { return "one"; } "other"', "one"),
    case("return;", None),
    case("for i in 0..10 { if i == 3 { return i; } } -1", 3),
    case("exit(7); 8", 7),
    case("fn f() { exit(9); 1 } f(); 2", 9, id="exit-from-function"),
    case("loop { return 1; }", 1),
]


@pytest.mark.parametrize(("src", "expected"), RETURN_EXIT)
def test_return_and_exit(src, expected):
    assert_value(src, expected)


SIDE_EFFECTS = [
    case("let n = 0; let a = [1, 2, 3]; a[{ n += 1; 1 }] = 5; [n, a]", [1, [1, 5, 3]]),
    case("let log = []; fn f(log, x) { x } let r = f(log, 1) + f(log, 2); r", 3),
    case("let a = [0]; a[0] += 1; a[0] += 1; a", [2]),
    case("let x = 1; let y = { x += 1; x } + { x *= 10; x }; y", 22, id="left-to-right"),
]


@pytest.mark.parametrize(("src", "expected"), SIDE_EFFECTS)
def test_evaluation_order(src, expected):
    assert_value(src, expected)


def test_missing_semicolon_between_statements():
    assert_error("let x = 1 let y = 2;", "ErrorParsing", compile_only=True)


def test_let_block_value_needs_semicolon():
    assert_error("let x = { 1 } x", "ErrorParsing", compile_only=True)


def test_statement_after_block_needs_no_semicolon():
    assert_value("let x = 0; if true { x = 1 } x += 1; while false {} x", 2)
