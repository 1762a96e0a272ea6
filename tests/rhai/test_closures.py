"""Anonymous functions and closures: capture by sharing, currying, `this` binding, data races."""

import pytest

from .conftest import assert_error, assert_value, case

CLOSURES = [
    case("let f = |x| x * 2; f.call(21)", 42),
    case("let f = |x| x * 2; call(f, 21)", 42),
    case("let f = |a, b| a + b; f.call(1, 2)", 3),
    case("let f = || 42; f.call()", 42),
    case("let f = |x| { let y = x * 2; y + 1 }; f.call(3)", 7),
    case("(|x| x + 1).call(1)", 2, id="call-literal-closure"),
    case("let x = 1; let f = || x + 1; x = 10; f.call()", 11, id="capture-sees-later-change"),
    case("let a = 41; let f = |y| a += y; f.call(1); a", 42, id="closure-writes-captured"),
    case("let a = 21; let f = |x| a += x; f.call(a); a", 42),
    case("let a = 41; let foo = |x| { a += x }; a.is_shared()", True),
    case("let a = 41; let foo = |x| { a += x }; is_shared(a)", True),
    case("let a = 41; is_shared(a)", False),
    case(
        "let a = 40; let f = |x| { let g = |x| { let h = |x| a + 1 + x; h.call(x) }; "
        "g.call(x) }; f.call(1)",
        42,
        id="nested-capture",
    ),
    case("let adder = |a| |b| a + b; adder.call(1).call(2)", 3, id="closure-returns-closure"),
    case(
        "let x = 8; let res = |y, z| { let w = 12; return (|| x + y + z + w).call(); }"
        ".curry(15).call(2); res + (|| x - 3).call()",
        42,
        id="curry-and-capture",
    ),
    case("let f = |x, y| x * 10 + y; f.curry(4).call(2)", 42),
    case("let f = |x, y| x * 10 + y; curry(f, 4).call(2)", 42),
    case("let f = |a, b, c| [a, b, c]; f.curry(1).curry(2).call(3)", [1, 2, 3]),
    case("let counter = 0; let inc = || counter += 1; inc.call(); inc.call(); counter", 2),
    case(
        "let fs = []; for i in 0..3 { fs.push(|| i); } fs.map(|f| f.call())",
        [2, 2, 2],
        id="loop-variable-is-one-variable",
    ),
    case(
        "let fs = []; for i in 0..3 { let j = i; fs.push(|| j); } fs.map(|f| f.call())",
        [0, 1, 2],
        id="fresh-let-per-iteration",
    ),
    case("let f = |x| x; type_of(f)", "Fn"),
    case("(|x| x).is_anonymous", True),
    case("let x = 100; let f = || x; let x = 200; f.call()", 100, id="shadowing-after-capture"),
    case("let v = 3; let f = || v; v = 4; let g = || v; f.call() + g.call()", 8),
    case("fn apply(f, x) { f.call(x) } apply(|v| v * v, 9)", 81, id="closure-as-argument"),
    case("fn make() { let n = 5; || n * 2 } make().call()", 10, id="closure-escapes-function"),
    case("let obj = #{v: 40, add: |x| this.v + x}; obj.add(2)", 42, id="map-method-this"),
    case("let obj = #{v: 1, inc: || this.v += 1}; obj.inc(); obj.inc(); obj.v", 3),
    case("let foo = #{x: 42}; let f = || this.x; foo.call(f)", 42, id="call-binds-this"),
    case(
        "let a = 1; let b = 40; let foo = |x| { this += a + x }; b.call(foo, 1); b",
        42,
        id="call-binds-this-to-variable",
    ),
    case("let x = 1; let f = || { let x = 100; x }; f.call() + x", 101, id="inner-let-shadows"),
    case('let f = |x| if x > 0 { "pos" } else { "neg" }; f.call(-1)', "neg"),
]


@pytest.mark.parametrize(("src", "expected"), CLOSURES)
def test_closures(src, expected):
    assert_value(src, expected)


def test_data_race_on_captured_this():
    src = "let a = 20;\nlet foo = |x| { this += a + x };\na.call(foo, 1);\na"
    err = assert_error(src, "ErrorDataRace")
    assert err.root().kind == "ErrorDataRace"


def test_closure_wrong_arity():
    assert_error("let f = |x| x; f.call(1, 2)", "ErrorFunctionNotFound", line=1)


def test_closure_error_is_wrapped():
    err = assert_error("let f = |x| x / 0;\nf.call(1)", "ErrorInFunctionCall", line=2)
    assert err.root().kind == "ErrorArithmetic"
    assert err.root().line == 1


def test_closure_cannot_break_enclosing_loop():
    assert_error(
        "for i in 0..3 { let f = || { continue; }; }",
        "ErrorParsing",
        parse_kind="LoopBreak",
        compile_only=True,
    )


def test_bad_closure_parameters():
    assert_error("let f = |1| 1;", "ErrorParsing", compile_only=True)


def test_duplicate_closure_parameters():
    assert_error("let f = |x, x| x;", "ErrorParsing", compile_only=True)
