"""Operations counted as Rhai counts them (one per statement, expression node, call and
literal element), so the same `max_operations` stops the same scripts."""

import pytest

from rhai import Engine

from .conftest import assert_error, assert_value

LOOP = "let x = 0; for i in 0..1000 { x += i * 2 % 7; } x"


def test_a_loop_iteration_costs_several_operations() -> None:
    # Rhai counts the statement, the assignment target and every node of `i * 2 % 7`
    assert_error(LOOP, "ErrorTooManyOperations", max_operations=5_000)
    assert_value(LOOP, 2998, max_operations=20_000)


def test_literals_cost_one_operation_per_element() -> None:
    src = "let a = [" + ", ".join(["1"] * 500) + "]; a.len()"
    assert_error(src, "ErrorTooManyOperations", max_operations=400)
    assert_value(src, 500, max_operations=1_000)
    big_map = "let m = #{" + ", ".join(f"k{i}: {i}" for i in range(300)) + "}; m.len()"
    assert_error(big_map, "ErrorTooManyOperations", max_operations=250)


@pytest.mark.parametrize("limit", [10, 100, 1000])
def test_the_count_stops_at_the_limit_and_not_later(limit: int) -> None:
    engine = Engine(max_operations=limit)
    src = "let n = 0; loop { n += 1; }"
    with pytest.raises(Exception, match="Too many operations"):
        engine.eval(src)
    assert engine._rt.operations() == limit + 1


def test_script_function_calls_count_their_bodies() -> None:
    src = "fn f(x) { x + 1 } let t = 0; for i in 0..100 { t = f(t); } t"
    assert_error(src, "ErrorTooManyOperations", max_operations=600)
    assert_value(src, 100, max_operations=2_000)
