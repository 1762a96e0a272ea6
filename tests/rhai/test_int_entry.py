"""Script functions called with INT arguments take a leaner entry (no `this`, no argument
type checks); what a script can observe must not change."""

from rhai import Engine, RhaiError

from .conftest import assert_error, assert_value

FIB = "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } } "


def test_results_for_int_and_other_arguments() -> None:
    assert_value(FIB + "fib(20)", 6765)
    assert_value(FIB + "fib(1.0)", 1.0)
    assert_error(FIB + 'fib("a")', "ErrorInFunctionCall", root="ErrorFunctionNotFound")


def test_overflow_inside_is_wrapped_at_the_call_position() -> None:
    src = "fn up(n) { if n == 0 { 9223372036854775807 } else { up(n - 1) + 1 } }\nup(3)"
    err = assert_error(src, "ErrorInFunctionCall", 2, 1, root="ErrorArithmetic")
    assert "Addition overflow" in err.root().message


def test_call_depth_is_exact_through_the_int_entry() -> None:
    src = "fn down(n) { if n == 0 { 0 } else { down(n - 1) + 1 } } down(N)"
    assert Engine(max_call_levels=10).eval(src.replace("N", "9")) == 9
    try:
        Engine(max_call_levels=10).eval(src.replace("N", "10"))
    except RhaiError as err:
        assert err.kind == "ErrorStackOverflow"
    else:
        raise AssertionError("11 nested calls passed max_call_levels=10")


def test_operations_are_counted_through_the_int_entry() -> None:
    src = FIB + "fib(15)"
    assert Engine(max_operations=100_000).eval(src) == 610
    assert_error(src, "ErrorTooManyOperations", max_operations=500)


def test_a_string_if_expression_appends_like_a_string() -> None:
    assert_value('let s = ""; for i in 0..4 { s += if i % 2 == 1 { "x" } else { "y" }; } s', "yxyx")
    assert_value("let s = 1; s += if true { 2 } else { 3 }; s", 3)
    assert_value('let s = 1; s += if true { "a" } else { "b" }; s', "1a")


def test_a_method_call_may_change_the_type_of_an_int_variable() -> None:
    # `this = ...` in a script function (or a closure given to `call`) sets the variable
    assert_value('fn f() { this = "a"; } let x = 1; x.f(); x + 1', "a1")
    assert_value('fn f() { this = "a"; } let x = 1; x.f(); x += 1; x', "a1")
    assert_value('let x = 1; x.call(|| this = "b"); x + 1', "b1")


def test_string_variables_append_without_type_tests() -> None:
    assert_value('let s = ""; for i in 0..3 { s += `${i}`; } s', "012")
    assert_value('let s = "a"; s += "b"; let t = s; t += "c"; [s, t]', ["ab", "abc"])
    assert_value('let s = "a"; eval("s = 1"); s += "b"; s', "1b")
    src = 'let s = "ab"; for i in 0..10 { s += "cd"; } s'
    assert_error(src, "ErrorDataTooLarge", max_string_size=8)


def test_map_and_filter_call_one_parameter_closures_directly() -> None:
    assert_value("[1, 2, 3].map(|x| x * 2)", [2, 4, 6])
    assert_value("let y = 2; [1, 2, 3].filter(|x| x >= y)", [2, 3])
    assert_value("[1, 2, 3].map(|x| this + x)", [2, 4, 6])  # `this` is the item too
    assert_value("fn inc(x) { x + 1 } [1].map(inc)", [2])
    assert_error("[1, 2].map(|x| x / 0)", "ErrorInFunctionCall", root="ErrorArithmetic")


def test_overflow_messages_name_both_operands_when_the_right_one_is_a_call() -> None:
    """The fast path keeps no temporary for a right operand that is a call: the error path
    recovers it from the result, and the message must still show what the script computed."""
    fns = "fn big(n) { n } fn f(x) { big(x) OP big(Y) } "
    cases = [
        ("+", "9223372036854775800", "100", "Addition overflow: 100 + 9223372036854775800"),
        ("-", "9223372036854775800", "-100", "Subtraction overflow: -100 - 9223372036854775800"),
        ("*", "-3", "4611686018427387904", "Multiplication overflow: 4611686018427387904 * -3"),
    ]
    for op, y, x, message in cases:
        src = fns.replace("OP", op).replace("Y", y) + f"f({x})"
        err = assert_error(src, "ErrorInFunctionCall", root="ErrorArithmetic")
        assert err.root().message.endswith(message), err.root().message
