"""Elvis chains (`?.`, `?[`) short-circuit as a whole, and `??` takes a `break`, `continue`,
`return` or `throw` as its right operand, as in Rhai."""

import pytest

from .conftest import assert_error, assert_thrown, assert_value, case

ELVIS = [
    case("let x = (); x?.foo.bar.baz", None, id="whole-property-chain"),
    case("let x = (); x?.foo(1, 2, 3)", None, id="method-call"),
    case("let x = #{a: ()}; x.a?.foo.bar.baz", None, id="mid-chain"),
    case("let x = (); x?[2].y[3]", None, id="index-chain"),
    case("let x = (); x?.len()", None),
    case("let x = (); x?.type_of()", None),
    case("let x = 'x'; x?.type_of()", "char", id="type_of-through-elvis"),
    case("let x = [1, 2]; x?.len()", 2),
    case("let x = #{a: #{b: 3}}; x?.a.b", 3),
    case("let x = [[1, 2]]; x[0]?[1]", 2),
    case("let x = [1]; x?.push(2); x", [1, 2], id="mutating-method-writes-back"),
    case("let x = (); x?[2] = 42; x", None, id="index-assign-on-unit-is-a-no-op"),
    case("let x = [1, 2]; x?[1] = 5; x", [1, 5], id="index-assign"),
    case("let x = #{a: [1]}; x.a?[0] += 5; x", {"a": [6]}, id="compound-assign"),
    case("let x = #{}; x.y?.z = 1; x", {}, id="property-assign-on-unit"),
    case(
        "let n = 0; let x = (); x?[0] = { n += 1; n }; n",
        1,
        id="assigned-value-is-computed-first",
    ),
]


@pytest.mark.parametrize(("src", "expected"), ELVIS)
def test_elvis_chains(src: str, expected: object) -> None:
    assert_value(src, expected)


def test_a_plain_link_after_elvis_still_fails_on_a_non_unit_value() -> None:
    assert_error("let x = #{a: 1}; x?.a.b.c", "ErrorDotExpr")


FLOW = [
    case("let r = 0; loop { let x = (); r = x ?? break 42; }", 42, id="break-with-value"),
    case("let v = loop { break () ?? break 7 }; v", 7, id="break-inside-break"),
    case("let n = 0; for i in [1, (), 3] { n += i ?? continue; } n", 4, id="continue"),
    case("fn f(x) { let y = x ?? return -1; y * 2 } [f(()), f(4)]", [-1, 8], id="return"),
    case("let x = 5; x ?? throw 1", 5, id="not-taken"),
    case(
        "fn f(c) { let y = if c { 1 } else { return 2 }; y + 10 } [f(false), f(true)]",
        [2, 11],
        id="return-in-if-expression",
    ),
]


@pytest.mark.parametrize(("src", "expected"), FLOW)
def test_flow_statement_after_coalesce(src: str, expected: object) -> None:
    assert_value(src, expected)


def test_throw_after_coalesce() -> None:
    assert_thrown('let x = (); x ?? throw "none"', "none")


def test_break_after_coalesce_outside_a_loop_is_a_parse_error() -> None:
    assert_error("let x = (); x ?? break", "ErrorParsing", 1, 18, parse_kind="LoopBreak")
