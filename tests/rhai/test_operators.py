"""Operators: arithmetic (checked i64, IEEE f64), comparison, logic, bitwise, precedence,
compound assignment, `??`, `in`, and the errors for types with no operator."""

import math

import pytest

from rhai.values import INT_MAX, INT_MIN

from .conftest import assert_error, assert_value, case

ARITHMETIC = [
    case("1 + 2", 3),
    case("10 - 25", -15),
    case("6 * 7", 42),
    case("7 / 2", 3, id="int-div-truncates"),
    case("-7 / 2", -3, id="int-div-truncates-toward-zero"),
    case("7 / -2", -3),
    case("-7 / -2", 3),
    case("7 % 3", 1),
    case("-7 % 3", -1, id="rem-sign-of-dividend"),
    case("7 % -3", 1, id="rem-positive-dividend"),
    case("-7 % -3", -1),
    case("10 / 3 * 3", 9),
    case("1 + 2 * 3", 7),
    case("(1 + 2) * 3", 9),
    case("2 * 3 - 4 / 2", 4),
    case("10 - 2 - 3", 5, id="minus-left-assoc"),
    case("100 / 10 / 5", 2, id="div-left-assoc"),
    case("2 ** 10", 1024),
    case("2 ** 0", 1),
    case("0 ** 0", 1),
    case("(-2) ** 3", -8),
    case("(-2) ** 63", INT_MIN, id="pow-to-int-min"),
    case("2 ** 62", 4611686018427387904),
    case("2 ** 3 ** 2", 512, id="pow-right-assoc"),
    case("-2 ** 2", 4, id="unary-binds-tighter-than-pow"),
    case("(-2 ** 3) == -8", True),
    case("1.5 + 2.25", 3.75),
    case("1 + 0.5", 1.5, id="int-plus-float"),
    case("0.5 + 1", 1.5, id="float-plus-int"),
    case("7.0 / 2", 3.5),
    case("7 / 2.0", 3.5),
    case("3 * 1.5", 4.5),
    case("7.5 % 2", 1.5),
    case("-7.5 % 2", -1.5, id="float-rem-sign"),
    case("2.0 ** 3", 8.0, id="float-pow-int"),
    case("2.0 ** 0.5", math.sqrt(2.0), id="float-pow-float"),
    case("2.0 ** -1", 0.5, id="float-pow-negative-int"),
    case("4 ** 0.5", 2.0, id="int-pow-float"),
    case("1.0 / 0.0", math.inf, id="float-div-zero-inf"),
    case("-1.0 / 0.0", -math.inf, id="float-div-zero-neg-inf"),
    case("1 / 0.0", math.inf, id="int-div-float-zero"),
    case("0.0 / 0.0", math.nan, id="float-zero-div-zero-nan"),
    case("1e308 * 10.0", math.inf, id="float-overflow-unchecked"),
    case("0.1 + 0.2", 0.30000000000000004),
    case("-5", -5),
    case("+5", 5),
    case("-(3 - 5)", 2),
    case("let x = 5; -x", -5),
    case("let x = 2.5; -x", -2.5),
    case("1 - -1", 2, id="binary-minus-unary-minus"),
    case("2 * -3", -6, id="unary-after-binary"),
    case("2 - +3", -1),
    case("10 % 3 * 2", 2),
    case("9223372036854775806 + 1", INT_MAX),
    case("-9223372036854775807 - 1", INT_MIN),
    case("4611686018427387904 * -2", INT_MIN),
]


@pytest.mark.parametrize(("src", "expected"), ARITHMETIC)
def test_arithmetic(src, expected):
    assert_value(src, expected)


ARITHMETIC_ERRORS = [
    pytest.param("9223372036854775807 + 1", 21, id="add-overflow"),
    pytest.param("-9223372036854775808 - 1", 22, id="sub-overflow"),
    pytest.param("9223372036854775807 * 2", 21, id="mul-overflow"),
    pytest.param("-9223372036854775808 / -1", 22, id="div-overflow"),
    pytest.param("-9223372036854775808 % -1", 22, id="rem-overflow"),
    pytest.param("1 / 0", 3, id="div-by-zero"),
    pytest.param("1 % 0", 3, id="rem-by-zero"),
    pytest.param("2 ** 63", 3, id="pow-overflow"),
    pytest.param("2 ** -1", 3, id="int-pow-negative"),
    pytest.param("10 ** 100", 4, id="pow-huge"),
]


@pytest.mark.parametrize(("src", "column"), ARITHMETIC_ERRORS)
def test_arithmetic_errors(src, column):
    err = assert_error(src, "ErrorArithmetic", line=1, column=column)
    assert str(err).startswith(f"line 1, column {column}: ")


def test_negation_overflow():
    assert_error("let x = -9223372036854775808;\n-x", "ErrorArithmetic", line=2)


def test_division_by_zero_message():
    err = assert_error("let a = 1;\nlet b = 0;\na / b", "ErrorArithmetic", line=3, column=3)
    assert "Division by zero" in err.message


def test_overflow_in_compound_assignment():
    assert_error("let x = 9223372036854775807;\nx += 1;", "ErrorArithmetic", line=2)


SHIFTS_BITWISE = [
    case("1 << 4", 16),
    case("256 >> 4", 16),
    case("-8 >> 1", -4, id="arith-shift-right"),
    case("1 << 63", INT_MIN, id="shift-into-sign-bit"),
    case("3 << 62", -4611686018427387904, id="shift-wraps-bits-out"),
    case("1 << -1", 0, id="negative-left-shift-goes-right"),
    case("8 >> -1", 16, id="negative-right-shift-goes-left"),
    case("1 << 64", 0, id="shift-left-64"),
    case("-1 >> 64", -1, id="shift-right-64-sign-fill"),
    case("5 >> 100", 0, id="shift-right-big"),
    case("6 & 3", 2),
    case("6 | 3", 7),
    case("6 ^ 3", 5),
    case("-1 & 255", 255),
    case("1 + 1 << 3", 9, id="shift-tighter-than-plus"),
    case("2 * 1 << 2", 8, id="shift-tighter-than-mul"),
    case("2 ** 1 << 2", 16, id="shift-tighter-than-pow"),
    case("1 | 2 & 3", 3, id="and-tighter-than-or"),
    case("1 ^ 3 & 1", 0, id="xor-looser-than-and"),
]


@pytest.mark.parametrize(("src", "expected"), SHIFTS_BITWISE)
def test_shifts_and_bitwise(src, expected):
    assert_value(src, expected)


COMPARISONS = [
    case("1 == 1", True),
    case("1 != 1", False),
    case("1 < 2", True),
    case("2 <= 2", True),
    case("3 > 2", True),
    case("2 >= 3", False),
    case("1 == 1.0", True, id="int-float-equal"),
    case("1 < 1.5", True, id="int-float-less"),
    case("2.5 > 2", True),
    case("1.0 != 1", False),
    case("0 < 1e-16", False, id="float-epsilon-below"),
    case("0 < 1e-15", True, id="float-epsilon-above"),
    case("0.1 + 0.2 == 0.3", True, id="float-epsilon-equal"),
    case("1.0 == 1.0000000000000002", True, id="float-within-epsilon"),
    case('"abc" == "abc"', True),
    case('"abc" < "abd"', True),
    case('"B" < "a"', True, id="string-bytewise-order"),
    case('"abc" > "ab"', True),
    case("'a' < 'b'", True),
    case("'a' == \"a\"", True, id="char-equals-string"),
    case("\"a\" == 'a'", True),
    case("'a' != \"ab\"", True),
    case("true == true", True),
    case("true != false", True),
    case("() == ()", True),
    case("[1, 2] == [1, 2]", True),
    case("[1, 2] != [2, 1]", True),
    case("[1, [2]] == [1, [2]]", True),
    case("[1] == [1.0]", True, id="array-eq-uses-numeric-eq"),
    case("#{a: 1} == #{a: 1}", True),
    case("#{a: 1, b: 2} == #{b: 2, a: 1}", True),
    case("#{a: 1} != #{a: 2}", True),
    case('1 == "1"', False, id="int-vs-string-eq"),
    case('1 != "1"', True, id="int-vs-string-ne"),
    case('1 < "1"', False, id="int-vs-string-lt"),
    case('"1" > 1', False),
    case("true == 1", False),
    case("() == 0", False),
    case("() != false", True),
    case("[1] == 1", False),
    case("(1 < 2) == true", True),
    case("1 < 2 == 2 > 1", True, id="comparison-tighter-than-equality"),
]


MORE_COMPARISONS = [
    case("\"hello\" > 'c'", True, id="string-vs-char-gt"),
    case("\"\" < 'c'", True, id="empty-string-vs-char"),
    case("'x' > \"hello\"", True, id="char-vs-string-gt"),
    case('"hello" > "foo"', True),
    case("let x = 0; if x == 10 || true { x = 1 } x", 1, id="or-looser-than-equality"),
    case("(1 + 2) * (6 - 4) / 2", 3),
    case('let s = "hello"; s = s + 42; s', "hello42"),
]


MIXED_COMPARISONS = [
    case(f"{lhs} {op} {rhs}", expected, id=f"{lhs}{op}{rhs}")
    for lhs, rhs in (("true", "42"), ('"42"', "42"), ("[1]", "#{}"), ("()", "0"))
    for op, expected in (("==", False), ("!=", True), (">", False), (">=", False), ("<", False),
                         ("<=", False))
] + [
    case(f"{lhs} {op} {rhs}", expected, id=f"{lhs}{op}{rhs}")
    for lhs, rhs in (("42", "42.0"), ("42.0", "42"), ('"x"', "'x'"), ("'x'", '"x"'))
    for op, expected in (("==", True), ("!=", False), (">", False), (">=", True), ("<", False),
                         ("<=", True))
] + [
    case("10 % 4.0", 2.0),
    case("10 ** 4.0", 10000.0),
    case("10.0 % 4", 2.0),
    case("let x = 10; x <<= -1; x", 5, id="shift-assign-negative"),
    case("let x = 10; x >>= -2; x", 40),
    case("let x = 10.0; x **= 4; x", 10000.0),
    case("let x = 16; x |= 74; x", 90),
    case("let x = false; x |= true; x", True),
    case("let x = 90; x ^= 12; x", 86),
    case('"hello" - "el"', "hlo"),
]  # fmt: skip


@pytest.mark.parametrize(("src", "expected"), MIXED_COMPARISONS)
def test_mixed_type_comparisons(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(("src", "expected"), MORE_COMPARISONS)
def test_more_comparisons(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(("src", "expected"), COMPARISONS)
def test_comparisons(src, expected):
    assert_value(src, expected)


LOGIC = [
    case("true && true", True),
    case("true && false", False),
    case("false || true", True),
    case("false || false", False),
    case("!true", False),
    case("!false", True),
    case("!!!!true", True),
    case("let not_true = !true; not_true", False),
    case("true & false", False, id="non-short-circuit-and"),
    case("true | false", True, id="non-short-circuit-or"),
    case("true ^ true", False, id="bool-xor"),
    case("false && undefined_var", False, id="and-short-circuits"),
    case("true || undefined_var", True, id="or-short-circuits"),
    case("false && (1 / 0 == 0)", False, id="and-skips-error"),
    case("true || false && false", True, id="and-tighter-than-or"),
    case("!(1 > 2)", True),
    case("1 < 2 && 2 < 3", True),
    case("let x = 0; false && { x = 1; true }; x", 0, id="and-side-effect-skipped"),
    case("let x = 0; false & { x = 1; true }; x", 1, id="amp-evaluates-both"),
    case("let x = 0; true | { x = 1; true }; x", 1, id="pipe-evaluates-both"),
]


MORE_LOGIC = [
    case("true && (false || true)", True),
    case("true & (false | true)", True),
    case("false & (false | true)", False),
    case("true && (true || { throw })", True, id="or-skips-throw-block"),
    case("false && (true || { throw })", False, id="and-skips-throw-block"),
    case("let x = true; x || { throw; }", True),
    case("let x = false; x && { throw; }", False),
]


@pytest.mark.parametrize(("src", "expected"), MORE_LOGIC)
def test_more_logic(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(
    "src",
    [
        pytest.param("let x = true; x | { throw; }", id="pipe-evaluates-throw"),
        pytest.param("let x = false; x & { throw; }", id="amp-evaluates-throw"),
    ],
)
def test_non_short_circuit_operators_evaluate_the_throw(src):
    assert_error(src, "ErrorRuntime", line=1)


def test_nested_logic_type_error():
    assert_error("true && (false || 123)", "ErrorMismatchDataType", line=1)


@pytest.mark.parametrize(("src", "expected"), LOGIC)
def test_logic(src, expected):
    assert_value(src, expected)


LOGIC_ERRORS = [
    pytest.param("1 && true", id="int-and"),
    pytest.param("false || 0", id="or-int-rhs"),
    pytest.param('"x" || true', id="string-or"),
    pytest.param("false || ()", id="or-unit-rhs"),
]


@pytest.mark.parametrize("src", LOGIC_ERRORS)
def test_logic_on_non_bool(src):
    assert_error(src, "ErrorMismatchDataType", line=1)


COALESCE_AND_OPTIONAL = [
    case("() ?? 42", 42),
    case("1 ?? 2", 1),
    case("false ?? true", False, id="coalesce-only-on-unit"),
    case("0 ?? 5", 0),
    case('let x; x ?? "default"', "default"),
    case("() ?? () ?? 3", 3),
    case("1 ?? undefined_var", 1, id="coalesce-short-circuits"),
    case("let m = (); m?.a", None),
    case("let m = #{a: 1}; m?.a", 1),
    case("let a = (); a?[0]", None),
    case("let a = [7]; a?[0]", 7),
    case("let m = (); m?.a ?? 9", 9),
    case("let s = (); s?.len()", None),
    case('let s = "ab"; s?.len()', 2),
]


@pytest.mark.parametrize(("src", "expected"), COALESCE_AND_OPTIONAL)
def test_coalesce_and_optional_chaining(src, expected):
    assert_value(src, expected)


IN_OPERATOR = [
    case("2 in [1, 2, 3]", True),
    case("5 in [1, 2, 3]", False),
    case('"b" in ["a", "b"]', True),
    case("[1] in [[1], [2]]", True),
    case("4 !in [1, 2]", True),
    case("1 !in [1, 2]", False),
    case('"a" in #{a: 1}', True),
    case('"z" in #{a: 1}', False),
    case('"ell" in "hello"', True),
    case("'e' in \"hello\"", True),
    case("'z' in \"hello\"", False),
    case('"" in "abc"', True),
    case("5 in 1..10", True),
    case("10 in 1..10", False),
    case("10 in 1..=10", True),
    case("0 in 1..10", False),
    case("1 + 1 in [2]", True, id="in-looser-than-plus"),
]


@pytest.mark.parametrize(("src", "expected"), IN_OPERATOR)
def test_in_operator(src, expected):
    assert_value(src, expected)


COMPOUND = [
    case("let x = 5; x += 3; x", 8),
    case("let x = 5; x -= 3; x", 2),
    case("let x = 5; x *= 3; x", 15),
    case("let x = 17; x /= 5; x", 3),
    case("let x = 17; x %= 5; x", 2),
    case("let x = 3; x **= 3; x", 27),
    case("let x = 1; x <<= 4; x", 16),
    case("let x = 64; x >>= 2; x", 16),
    case("let x = 12; x &= 10; x", 8),
    case("let x = 12; x |= 3; x", 15),
    case("let x = 12; x ^= 4; x", 8),
    case("let x = 1; x += 1.5; x", 2.5, id="int-plus-assign-float-becomes-float"),
    case("let x = 1.5; x *= 2; x", 3.0),
    case('let s = "a"; s += "b"; s', "ab"),
    case("let s = \"a\"; s += 'c'; s", "ac"),
    case('let s = "n"; s += 1; s', "n1"),
    case("let a = [1]; a += 2; a", [1, 2]),
    case("let a = [1]; a += [2, 3]; a", [1, 2, 3]),
    case("let m = #{a: 1}; m += #{b: 2}; m", {"a": 1, "b": 2}),
    case("let a = [1, 2]; a[0] += 10; a", [11, 2]),
    case("let m = #{n: 1}; m.n *= 5; m.n", 5),
    case("let b = true; b &= false; b", False),
]


@pytest.mark.parametrize(("src", "expected"), COMPOUND)
def test_compound_assignment(src, expected):
    assert_value(src, expected)


STRING_OPS = [
    case('"a" + "b"', "ab"),
    case('"a" + 42', "a42"),
    case('42 + "a"', "42a"),
    case('"x" + 1.5', "x1.5"),
    case('"x" + 1.0', "x1.0"),
    case('"x" + true', "xtrue"),
    case('"x" + ()', "x", id="string-plus-unit"),
    case("\"a\" + 'b'", "ab"),
    case("'a' + 'b'", "ab", id="char-plus-char-is-string"),
    case("'a' + \"bc\"", "abc"),
    case('"v" + [1, 2]', "v[1, 2]"),
    case("\"abcabc\" - 'b'", "acac", id="string-minus-char"),
    case('"abcabc" - "bc"', "aa", id="string-minus-string"),
    case('"aaa" - "b"', "aaa"),
    case('1 + 2 + "x"', "3x", id="left-assoc-int-then-string"),
    case('"x" + 1 + 2', "x12"),
]


@pytest.mark.parametrize(("src", "expected"), STRING_OPS)
def test_string_operators(src, expected):
    assert_value(src, expected)


CONTAINER_OPS = [
    case("[1, 2] + [3]", [1, 2, 3]),
    case("[] + []", []),
    case("let a = [1]; let b = a + [2]; a", [1], id="array-plus-does-not-mutate"),
    case("#{a: 1} + #{b: 2}", {"a": 1, "b": 2}),
    case("#{a: 1} + #{a: 2}", {"a": 2}, id="map-merge-right-wins"),
]


@pytest.mark.parametrize(("src", "expected"), CONTAINER_OPS)
def test_container_operators(src, expected):
    assert_value(src, expected)


NO_OPERATOR = [
    pytest.param("1 + true", "+ (i64, bool)", id="int-plus-bool"),
    pytest.param("true + false", "+ (bool, bool)", id="bool-plus-bool"),
    pytest.param("[1] - [1]", "- (array, array)", id="array-minus"),
    pytest.param("#{} * 2", "* (map, i64)", id="map-times-int"),
    pytest.param("1 & 1.0", "& (i64, f64)", id="bitand-float"),
    pytest.param('-"a"', "- (string)", id="negate-string"),
    pytest.param("!1", "! (i64)", id="not-int"),
    pytest.param("[1] < [2]", "< (array, array)", id="array-less"),
    pytest.param("() + 1", "+ ((), i64)", id="unit-plus-int"),
    pytest.param("1.5 << 1", "<< (f64, i64)", id="shift-float"),
]


@pytest.mark.parametrize(("src", "signature"), NO_OPERATOR)
def test_operator_not_defined_for_types(src, signature):
    err = assert_error(src, "ErrorFunctionNotFound", line=1)
    assert signature in err.message


PRECEDENCE = [
    case("1 + 2 == 3 && 4 > 3", True),
    case("2 + 3 * 4 ** 2", 50),
    case("-3 ** 2", 9),
    case("(1 + 2) * (3 + 4)", 21),
    case("10 - 4 - 3 + 1", 4),
    case("1 < 2 || 1 / 0 == 1", True),
    case("true == 1 < 2", True),
    case("() ?? 1 + 2", 3, id="coalesce-looser-than-plus"),
    case("1 ?? 0 < 2", True, id="coalesce-tighter-than-compare"),
    case("((((1))))", 1),
]


@pytest.mark.parametrize(("src", "expected"), PRECEDENCE)
def test_precedence(src, expected):
    assert_value(src, expected)


ASSIGNMENT_ERRORS = [
    pytest.param("let x = 1; let y = 2; (x + y) = 1;", "AssignmentToInvalidLHS", id="expr-lhs"),
    pytest.param("fn foo(x) { x } foo(1) = 1;", "AssignmentToInvalidLHS", id="call-lhs"),
    pytest.param("let x = 1; x.foo() = 1;", "AssignmentToInvalidLHS", id="method-lhs"),
    pytest.param("true = 1;", "AssignmentToConstant", id="bool-lhs"),
    pytest.param("123 = 1;", "AssignmentToConstant", id="number-lhs"),
    pytest.param("const x = 1; x = 2;", "AssignmentToConstant", id="const-lhs"),
    pytest.param("const x = 1; x += 2;", "AssignmentToConstant", id="const-compound"),
]


MORE_ASSIGNMENT_ERRORS = [
    pytest.param("x.foo().x.y = 42;", id="call-then-props"),
    pytest.param("x.y.z.foo() = 42;", id="props-then-call"),
    pytest.param("x.foo()[0] = 42;", id="call-then-index"),
    pytest.param("x[y].z.foo() = 42;", id="index-prop-call"),
]


@pytest.mark.parametrize("src", MORE_ASSIGNMENT_ERRORS)
def test_chained_invalid_assignment_targets(src):
    assert_error(src, "ErrorParsing", parse_kind="AssignmentToInvalidLHS", compile_only=True)


@pytest.mark.parametrize(("src", "parse_kind"), ASSIGNMENT_ERRORS)
def test_invalid_assignment_targets(src, parse_kind):
    assert_error(src, "ErrorParsing", parse_kind=parse_kind, compile_only=True)


def test_assignment_is_not_an_expression():
    assert_error("let x = 1; let y = (x = 2);", "ErrorParsing", compile_only=True)


def test_operator_error_position_on_second_line():
    assert_error("let x = 1;\nlet y = x + true;", "ErrorFunctionNotFound", line=2, column=11)
