"""Number library: conversions, math functions, parsing, formatting, bit fields, ranges."""

import math

import pytest

from rhai.values import INT_MAX, INT_MIN, Range

from .conftest import assert_error, assert_value, case

NUMBERS = [
    case("abs(-5)", 5),
    case("(-5).abs()", 5),
    case("abs(-2.5)", 2.5),
    case("sign(-3)", -1),
    case("sign(0)", 0),
    case("sign(2.5)", 1),
    case("0.is_zero()", True),
    case("3.is_odd()", True),
    case("4.is_even()", True),
    case("max(3, 7)", 7),
    case("min(3, 7)", 3),
    case("max(1, 2.5)", 2.5),
    case("5.to_float()", 5.0),
    case("5.9.to_int()", 5),
    case("(-5.9).to_int()", -5),
    case("to_int(2.0)", 2),
    case("3.7.floor()", 3.0),
    case("3.2.ceiling()", 4.0),
    case("2.5.round()", 3.0),
    case("(-2.5).round()", -3.0, id="round-half-away-from-zero"),
    case("3.7.int()", 3.0),
    case("3.75.fraction()", 0.75),
    case("16.0.sqrt()", 4.0),
    case("sqrt(2.0)", math.sqrt(2.0)),
    case("exp(0.0)", 1.0),
    case("ln(E())", 1.0),
    case("log(100.0)", 2.0),
    case("PI()", math.pi),
    case("E()", math.e),
    case("sin(0.0)", 0.0),
    case("cos(0.0)", 1.0),
    case('parse_int("42")', 42),
    case('parse_int("-17")', -17),
    case('parse_int("ff", 16)', 255),
    case('parse_int("101", 2)', 5),
    case('parse_int("z", 36)', 35),
    case('parse_float("1.5")', 1.5),
    case('parse_float("3")', 3.0),
    case("255.to_hex()", "ff"),
    case("8.to_octal()", "10"),
    case("5.to_binary()", "101"),
    case("(-1).to_hex()", "ffffffffffffffff"),
    case("42.to_string()", "42"),
    case("type_of(1.0.to_int())", "i64"),
    case("(0.0 / 0.0).is_nan()", True),
    case("(1.0 / 0.0).is_infinite()", True),
    case("2.0.is_finite()", True),
]


@pytest.mark.parametrize(("src", "expected"), NUMBERS)
def test_number_library(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(
    "src",
    [
        pytest.param("abs(-9223372036854775808)", id="abs-int-min"),
        pytest.param("let x = -9223372036854775808; x.abs()", id="abs-method-int-min"),
    ],
)
def test_abs_overflow(src):
    assert_error(src, "ErrorArithmetic", line=1)


@pytest.mark.parametrize(
    "src",
    [
        pytest.param('parse_int("abc")', id="not-a-number"),
        pytest.param('parse_int("")', id="empty"),
        pytest.param('parse_float("x1")', id="bad-float"),
        pytest.param('parse_int("99999999999999999999")', id="overflow"),
    ],
)
def test_parse_failures(src):
    assert_error(src, "ErrorArithmetic", line=1)


BIT_FIELDS = [
    case("let x = 10; x[1]", True),
    case("let x = 10; x[0]", False),
    case("let x = 10; x[3]", True),
    case("let x = -1; x[63]", True),
    case("let x = 1 << 63; x[-1]", True, id="negative-bit-from-msb"),
    case("let x = 0; x[5] = true; x", 32),
    case("let x = 7; x[1] = false; x", 5),
    case("let x = 0b110110; x[1..4]", 3, id="bit-range"),
    case("let x = 0b110110; x[1..=4]", 11),
    case("let x = 0; x[4..8] = 15; x", 240),
    case("10.get_bit(1)", True),
    case("let x = 0; x.set_bit(2, true); x", 4),
    case("let x = 0b1010; x.get_bits(1, 3)", 5),
    case("let x = 0; x.set_bits(0, 4, 9); x", 9),
]


MORE_NUMBERS = [
    case("123.456 == 1.23456e2", True),
    case("123.456 == 123456e-3", True),
    case("let x = 0.; let y = 1.; x > y", False),
    case("-2.0 ** -2.0", 0.25, id="negative-float-pow-negative-float"),
    case("-2.0 ** -2", 0.25, id="negative-float-pow-negative-int"),
    case("2.2 ** 3.3", 2.2**3.3),
    case("let x = -2; x **= 3; x", -8),
    case("let x = 2.0; x **= -2.0; x", 0.25),
    case("let x = 4; x **= 3; x", 64),
    case("abs(-9223372036854775807)", INT_MAX),
    case("1 / 2", 0),
    case('parse_int("42", 16)', 0x42),
    case('parse_int("abcdef", 16)', 0xABCDEF),
    case('parse_float("9.5e1")', 95.0),
    case("let x = 10; x[-1]", False, id="bit-minus-one-is-msb"),
    case("let x = 10; x[0] = true; x[1] = false; x", 9),
    case("let x = 10; get_bits(x, 1, 3)", 5),
    case("let x = 10; set_bits(x, 1, 3, 7); x", 14),
    case("let x = 255; get_bits(x, -60, 2)", 3, id="get-bits-from-msb"),
    case("let x = 0; set_bits(x, -64, 1, 15); x", 1),
    case("let x = 0; set_bits(x, -60, 2, 15); x", 0b110000),
    case("let x = 10; x[1..4] = 7; x", 14),
    case("let n = 0; for b in bits(0b001101101010001, 2, 10) { if b { n += 1; } } n", 5),
    case("let n = 0; for b in bits(0b001101101010001, 2..=11) { if b { n += 1; } } n", 5),
    case("let n = 0; for b in 6.bits(1..3) { if b { n += 1; } } n", 2),
]


@pytest.mark.parametrize(("src", "expected"), MORE_NUMBERS)
def test_more_numbers(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(
    "src",
    [
        pytest.param("let x = 10; x[1..99]", id="bit-range-past-64"),
        pytest.param("let x = 10; x[-1..3]", id="bit-range-negative-start"),
    ],
)
def test_bit_range_errors(src):
    assert_error(src, "ErrorBitFieldBounds", line=1)


def test_float_with_two_exponents_is_a_parse_error():
    assert_error("123.456e1.23", "ErrorParsing", compile_only=True)


@pytest.mark.parametrize(("src", "expected"), BIT_FIELDS)
def test_bit_fields(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(
    "src",
    [
        pytest.param("let x = 1; x[64]", id="bit-64"),
        pytest.param("let x = 1; x[-65]", id="bit-minus-65"),
        pytest.param("let x = 1; x[100] = true;", id="set-bit-100"),
    ],
)
def test_bit_field_bounds(src):
    assert_error(src, "ErrorBitFieldBounds", line=1)


RANGES = [
    case("1..5", Range(1, 5)),
    case("1..=5", Range(1, 5, inclusive=True)),
    case("(1..5).start", 1),
    case("(1..5).end", 5),
    case("(1..5).contains(3)", True),
    case("(1..5).contains(5)", False),
    case("(1..=5).contains(5)", True),
    case("(3..3).is_empty()", True),
    case("(1..=5).is_inclusive()", True),
    case("(1..5).is_exclusive()", True),
    case("let r = 2..4; let s = 0; for x in r { s += x; } s", 5),
    case("..4", Range(0, 4), id="open-start"),
    case("let a = [1, 2, 3]; a.extract(1..)", [2, 3], id="open-end-range-argument"),
    case("let n = 0; for i in range(0, 3) { n += 1; } n", 3),
    case("let x = 5; x in 0..10", True),
    case("9223372036854775807", INT_MAX),
    case("-9223372036854775807 - 1", INT_MIN),
]


@pytest.mark.parametrize(("src", "expected"), RANGES)
def test_ranges(src, expected):
    assert_value(src, expected)
