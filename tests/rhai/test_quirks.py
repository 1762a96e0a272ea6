"""Rhai's documented quirks that scripts can observe."""

import pytest

from .conftest import assert_error, assert_value, case


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        case('"hello"[2..=2]', "", id="end-equal-to-start-is-empty"),
        case('"hello"[3..=2]', "", id="end-before-start-is-empty"),
        case('"hello"[1..=3]', "ell"),
        case('"hello"[0..=0]', "", id="first-char-alone-is-empty"),
        case('"a"[0..=0]', "a", id="whole-string-from-zero"),
        case('"hello"[0..=9]', "hello"),
        case('"hello"[-2..=-1]', "lo"),
        case('"hello"[-1..=-1]', ""),
        case('"hello".sub_string(2..=2)', "l", id="sub_string-has-no-quirk"),
    ],
)
def test_inclusive_string_range(src: str, expected: str) -> None:
    assert_value(src, expected)


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        case('fn is_three(x) { x == 3 } [1, 2, 3].index_of("is_three")', 2, id="by-name"),
        case('fn big(x) { x > 1 } [1, 2, 3].index_of("big", 2)', 2, id="by-name-from"),
        case('["a", "g", "x"].index_of("g")', 1, id="no-such-function-searches-the-value"),
        case('["a", "b c"].index_of("b c")', 1, id="not-a-name-searches-the-value"),
        case('[].index_of("f")', -1),
    ],
)
def test_index_of_with_a_function_name(src: str, expected: int) -> None:
    assert_value(src, expected)


def test_index_of_by_name_passes_other_errors_on() -> None:
    assert_error('fn h(x) { x.foo() } [1].index_of("h")', "ErrorInFunctionCall")
