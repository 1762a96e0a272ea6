"""Errors inside script functions carry the position of each call on the way down.

Calls whose arguments are all INTs go to a function's INT entry, which is called without the
caller's position (the hot path of recursive helpers): the position is found afterwards from
the calling frame. These scripts check that every level still reports its own call site, also
when the generated line holds non-ASCII text before the call (CPython counts columns in UTF-8
bytes) and when the INT entry is reached through a function pointer.
"""

from __future__ import annotations

import pytest

from rhai import Engine, RhaiError


def chain(err: RhaiError) -> list[tuple[str, int | None, int | None]]:
    out = []
    e: RhaiError | None = err
    while e is not None:
        out.append((e.kind, e.line, e.column))
        e = e.inner
    return out


def failure(src: str, **limits: int) -> RhaiError:
    with pytest.raises(RhaiError) as info:
        Engine(**limits).eval(src)
    return info.value


def test_each_recursive_level_reports_its_call_site():
    src = 'fn f(n) {\n  if n == 0 { 1 / n } else { f(n - 1) }\n}\nlet x = "é€" + f(2);'
    assert chain(failure(src)) == [
        ("ErrorInFunctionCall", 4, 16),
        ("ErrorInFunctionCall", 2, 30),
        ("ErrorInFunctionCall", 2, 30),
        ("ErrorArithmetic", 2, 17),
    ]


def test_calls_after_non_ascii_text_on_one_line_keep_their_columns():
    src = 'fn f(n) { if n == 0 { throw "ü" } f(n - 1) }\nlet a = ["ö", "€", f(1), f(0)];'
    assert chain(failure(src)) == [
        ("ErrorInFunctionCall", 2, 20),
        ("ErrorInFunctionCall", 1, 35),
        ("ErrorRuntime", 1, 23),
    ]


def test_stack_overflow_is_reported_at_the_call_that_goes_too_deep():
    src = 'fn f(n) { f(n + 1) }\nlet y = "ü"; let x = ["ö", f(0)];'
    assert chain(failure(src, max_call_levels=5)) == [("ErrorStackOverflow", 1, 11)]


def test_a_pointer_call_reaching_the_int_entry_reports_the_pointer_call():
    src = 'fn f(n) { if n == 0 { throw "boom" } f(n - 1) }\nlet p = Fn("f");\n  p.call(1)'
    assert chain(failure(src)) == [
        ("ErrorInFunctionCall", 3, 5),
        ("ErrorInFunctionCall", 1, 38),
        ("ErrorRuntime", 1, 23),
    ]


def test_a_call_inside_a_closure_reports_its_position_in_the_closure():
    src = 'fn f(n) { if n == 0 { throw "boom" } f(n - 1) }\nlet g = |n| [n, f(n)];\ng.call(1)'
    assert chain(failure(src)) == [
        ("ErrorInFunctionCall", 3, 3),
        ("ErrorInFunctionCall", 2, 17),
        ("ErrorInFunctionCall", 1, 38),
        ("ErrorRuntime", 1, 23),
    ]


def test_an_error_from_a_closure_run_by_a_native_inside_a_recursion_keeps_every_level():
    src = "fn f(n) { if n == 0 { [1].map(|x| x / 0)[0] } else { f(n - 1) } }\nlet r = 0;\nr = f(1);"
    assert str(failure(src)) == (
        "line 3, column 5: Error in call to function 'f': line 1, column 54: "
        "Error in call to function 'f': line 1, column 27: "
        "Error in call to function 'anon$1': line 1, column 37: Division by zero: 1 / 0"
    )


def test_a_recursion_started_by_eval_after_a_caught_one_reports_its_own_levels():
    src = (
        "fn f(n) { if n == 0 { throw 5 } f(n - 1) }\nlet r = 0;\n"
        'try { f(2) } catch (e) { r = e }\neval("f(1)")'
    )
    assert str(failure(src)) == (
        "line 4, column 1: Error in call to function 'eval': line 1, column 1: "
        "Error in call to function 'f': line 1, column 33: "
        "Error in call to function 'f': line 1, column 23: 5"
    )
