"""Parse-time limits reached exactly where Rhai reaches them: expression depth, number of
functions, and the literal parts of interpolated strings."""

import pytest

from rhai import Engine

from .conftest import assert_error


def sum_of(terms: int) -> str:
    return " + ".join(["1"] * terms)


@pytest.mark.parametrize(
    ("global_depth", "fn_depth", "most_terms"),
    [(32, 16, 31), (100, 6, 99), (10, 5, 9)],
)
def test_expression_depth_matches_rhai(global_depth: int, fn_depth: int, most_terms: int) -> None:
    # Rhai's tests/stack.rs: at depth 32, 31 terms parse and 32 do not; at 100, 99 and 100
    limits = {"max_expr_depth": global_depth, "max_function_expr_depth": fn_depth}

    Engine(**limits).compile(sum_of(most_terms))
    assert_error(
        sum_of(most_terms + 1),
        "ErrorParsing",
        parse_kind="ExprTooDeep",
        compile_only=True,
        **limits,
    )


def test_function_bodies_count_from_their_definition() -> None:

    limits = {"max_expr_depth": 100, "max_function_expr_depth": 6}
    Engine(**limits).compile("fn abc(x) { x + 1 }")  # Rhai's tests/stack.rs
    Engine(**limits).compile("fn abc(x) { x + 1 + 1 }")
    assert_error(
        "fn abc(x) { x + 1 + 1 + 1 }",
        "ErrorParsing",
        parse_kind="ExprTooDeep",
        compile_only=True,
        **limits,
    )


@pytest.mark.parametrize(
    ("src", "column"),
    [
        ("fn a() {} fn b() {} fn c() {}", 21),
        ("fn a() {} let f = |x| x; let g = |y| y;", 34),
        ("fn a() {} private fn b() {} fn c() {}", 29),
        ("let f = `${ |x| x }`; let g = || 1; let h = || 2;", 45),
    ],
)
def test_too_many_functions(src: str, column: int) -> None:
    assert_error(
        src,
        "ErrorParsing",
        1,
        column,
        parse_kind="TooManyFunctions",
        compile_only=True,
        max_functions=2,
    )


def test_functions_within_the_limit_compile() -> None:

    assert Engine(max_functions=2).eval("fn a() { 1 } let f = |x| x + a(); f.call(1)") == 2
    assert Engine().eval("fn a() { 1 } fn b() { 2 } fn c() { 3 } a() + b() + c()") == 6


@pytest.mark.parametrize(
    "src",
    ["let x = 1; `aaaaaaaaaaa${x}`", "let x = 1; `a${x}bbbbbbbbbbbbb`", "`${1}${2}ccccccccccc`"],
)
def test_literal_parts_of_interpolated_strings_are_limited(src: str) -> None:
    assert_error(
        src,
        "ErrorParsing",
        1,
        src.index("`") + 1,
        parse_kind="LiteralTooLarge",
        compile_only=True,
        max_string_size=10,
    )
