"""Unit tests for rhai.stdlib: natives called directly through `lookup`, with a fake context.

Every check compares value AND exact type (bool is not INT, Char is not str), and error checks
compare Rhai's error kind.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from rhai.errors import RhaiError
from rhai.stdlib import BUILTIN_NAMES, NATIVES, NO_THIS, lookup
from rhai.values import Char, FnPtr, HostIterator, Mut, Range


def same(actual: Any, expected: Any) -> bool:
    """Equal value AND identical Python type, recursively (True is not 1, Char is not str)."""
    if type(actual) is not type(expected):
        return False
    if type(expected) is float and math.isnan(expected):
        return math.isnan(actual)
    if type(expected) is list:
        return len(actual) == len(expected) and all(
            same(a, e) for a, e in zip(actual, expected, strict=True)
        )
    if type(expected) is dict:
        return actual.keys() == expected.keys() and all(
            same(actual[k], v) for k, v in expected.items()
        )
    return actual == expected


class FakeEngine:
    def __init__(self, **limits: int) -> None:
        self.max_string_size = limits.get("max_string_size", 0)
        self.max_array_size = limits.get("max_array_size", 0)
        self.max_map_size = limits.get("max_map_size", 0)


class FakeCtx:
    """Calls FnPtr.fn as a plain Python callable; arity comes from the callable's code."""

    def __init__(self, **limits: int) -> None:
        self.engine = FakeEngine(**limits)
        self.calls: list[tuple] = []

    def call_fn(self, fnptr: FnPtr, args: list, this: Any = NO_THIS) -> Any:
        self.calls.append((fnptr.name, list(args), this))
        return fnptr.fn(*fnptr.curry, *args)

    def fn_arity(self, fnptr: FnPtr) -> int | None:
        if fnptr.fn is None:
            return None
        return fnptr.fn.__code__.co_argcount - len(fnptr.curry)


def fn(f: Any) -> FnPtr:
    return FnPtr("anon$test", (), f)


def call(name: str, *args: Any, ctx: Any = None) -> Any:
    native = lookup(name, args)
    assert native is not None, f"no native {name}{tuple(type(a).__name__ for a in args)}"
    return native.fn(ctx or FakeCtx(), *args)


def check(name: str, args: tuple, expected: Any, ctx: Any = None) -> None:
    got = call(name, *args, ctx=ctx)
    if type(got) is Mut:
        got = (got.this, got.result)
        assert type(expected) is tuple, f"{name}{args} mutated: {got!r}"
        assert same(got[0], expected[0]) and same(got[1], expected[1]), (name, args, got)
        return
    if type(expected) is float and math.isnan(expected):
        assert type(got) is float and math.isnan(got), (name, args, got)
        return
    assert same(got, expected), f"{name}{args!r} gave {got!r}, expected {expected!r}"


def error(name: str, *args: Any, kind: str, ctx: Any = None) -> RhaiError:
    with pytest.raises(RhaiError) as info:
        call(name, *args, ctx=ctx)
    assert info.value.kind == kind, info.value
    assert info.value.line is None
    return info.value


NAN = float("nan")
INF = float("inf")
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


# ---- registry ----


def test_lookup_matches_exact_types():
    assert lookup("abs", [True]) is None
    assert lookup("len", [Char("a")]) is None
    assert lookup("len", ["a"]) is not None
    assert lookup("nope", []) is None
    assert lookup("sub_string", ["a", "b"]) is None
    assert lookup("abs", [1]) is lookup("abs", [2])


def test_builtin_names_include_getter_bases():
    assert "get$len" in NATIVES
    assert {"len", "get$len", "sub_string", "abs"} <= BUILTIN_NAMES


# ---- numbers ----

NUMBERS = [
    ("abs", (-5,), 5),
    ("abs", (-2.5,), 2.5),
    ("sign", (-7,), -1),
    ("sign", (0,), 0),
    ("sign", (2.5,), 1),
    ("sign", (-0.0,), 0),
    ("is_zero", (0,), True),
    ("is_zero", (0.0,), True),
    ("is_zero", (3,), False),
    ("is_odd", (3,), True),
    ("is_odd", (-3,), True),
    ("is_even", (-4,), True),
    ("min", (3, 5), 3),
    ("max", (3, 5), 5),
    ("max", (3, 5.5), 5.5),
    ("max", (6, 5.5), 6.0),
    ("min", (2.5, 1), 1.0),
    ("min", ("b", "a"), "a"),
    ("max", (Char("a"), Char("z")), Char("z")),
    ("to_int", (3.9,), 3),
    ("to_int", (-3.9,), -3),
    ("to_int", (NAN,), 0),
    ("to_int", (Char("A"),), 65),
    ("to_int", (7,), 7),
    ("to_float", (7,), 7.0),
    ("to_hex", (255,), "ff"),
    ("to_hex", (-1,), "ffffffffffffffff"),
    ("to_octal", (8,), "10"),
    ("to_binary", (5,), "101"),
    ("floor", (-1.5,), -2.0),
    ("ceiling", (1.2,), 2.0),
    ("round", (2.5,), 3.0),
    ("round", (-2.5,), -3.0),
    ("round", (0.49999999999999994,), 0.0),
    ("round", (INF,), INF),
    ("int", (-1.7,), -1.0),
    ("fraction", (1.75,), 0.75),
    ("fraction", (INF,), NAN),
    ("get$floor", (1.5,), 1.0),
    ("is_nan", (NAN,), True),
    ("is_finite", (INF,), False),
    ("is_infinite", (-INF,), True),
    ("sqrt", (16.0,), 4.0),
    ("sqrt", (-1.0,), NAN),
    ("exp", (0.0,), 1.0),
    ("exp", (1000.0,), INF),
    ("ln", (1.0,), 0.0),
    ("ln", (0.0,), -INF),
    ("ln", (-1.0,), NAN),
    ("log", (1000.0,), 3.0),
    ("log", (8.0, 2.0), 3.0),
    ("sin", (0.0,), 0.0),
    ("sin", (INF,), NAN),
    ("asin", (2.0,), NAN),
    ("sinh", (-1000.0,), -INF),
    ("atan", (1.0, 1.0), math.pi / 4),
    ("hypot", (3.0, 4.0), 5.0),
    ("PI", (), math.pi),
    ("E", (), math.e),
    ("parse_int", ("42",), 42),
    ("parse_int", (" -42 ",), -42),
    ("parse_int", ("+7",), 7),
    ("parse_int", ("ff", 16), 255),
    ("parse_int", ("FF", 16), 255),
    ("parse_int", ("z", 36), 35),
    ("parse_int", ("-9223372036854775808",), I64_MIN),
    ("parse_float", ("1.5",), 1.5),
    ("parse_float", (" 1e3 ",), 1000.0),
    ("parse_float", ("1.",), 1.0),
    ("parse_float", (".5",), 0.5),
    ("parse_float", ("-inf",), -INF),
    ("parse_float", ("NaN",), NAN),
    ("to_string", (1.0,), "1.0"),
    ("to_string", (None,), ""),
    ("to_debug", ("a",), '"a"'),
    ("to_debug", (Char("a"),), "'a'"),
    ("to_string", ([1, "a"],), '[1, "a"]'),
]


@pytest.mark.parametrize(("name", "args", "expected"), NUMBERS, ids=lambda v: repr(v)[:30])
def test_numbers(name, args, expected):
    check(name, args, expected)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("abs", (I64_MIN,)),
        ("sign", (NAN,)),
        ("to_int", (1e19,)),
        ("to_int", (-1e19,)),
        ("parse_int", ("",)),
        ("parse_int", ("12x",)),
        ("parse_int", ("1_000",)),
        ("parse_int", ("-",)),
        ("parse_int", ("9223372036854775808",)),
        ("parse_int", ("10", 1)),
        ("parse_int", ("10", 37)),
        ("parse_int", ("g", 16)),
        ("parse_float", ("",)),
        ("parse_float", ("abc",)),
        ("parse_float", ("1_0",)),
        ("parse_float", ("e5",)),
        ("parse_float", (".",)),
    ],
)
def test_number_errors(name, args):
    error(name, *args, kind="ErrorArithmetic")


def test_number_error_messages():
    assert error("abs", I64_MIN, kind="ErrorArithmetic").message == (
        "Negation overflow: --9223372036854775808"
    )
    assert error("parse_int", "abc", kind="ErrorArithmetic").message == (
        "Error parsing integer number 'abc': invalid digit found in string"
    )
    assert error("parse_int", "1", 99, kind="ErrorArithmetic").message == "Invalid radix: '99'"
    assert error("to_int", 1e20, kind="ErrorArithmetic").message == (
        "Integer overflow: to_int(100000000000000000000)"
    )


def test_trig_wants_float():
    assert lookup("sqrt", [4]) is None
    assert lookup("is_odd", [1.0]) is None


# ---- strings ----

STRINGS = [
    ("len", ("héllo",), 5),
    ("get$len", ("abc",), 3),
    ("bytes", ("héllo",), 6),
    ("is_empty", ("",), True),
    ("get$is_empty", ("a",), False),
    ("contains", ("hello", "ell"), True),
    ("contains", ("hello", Char("z")), False),
    ("starts_with", ("hello", "he"), True),
    ("ends_with", ("hello", "lo"), True),
    ("index_of", ("hello", "l"), 2),
    ("index_of", ("hello", Char("o")), 4),
    ("index_of", ("hello", "z"), -1),
    ("index_of", ("hello", "l", 3), 3),
    ("index_of", ("hello", "l", -2), 3),
    ("index_of", ("hello", "h", -99), 0),
    ("index_of", ("hello", "l", 5), -1),
    ("index_of", ("", "", 0), 0),
    ("index_of", ("héllo", "l"), 2),
    ("get", ("abc", 1), Char("b")),
    ("get", ("abc", -1), Char("c")),
    ("get", ("abc", 3), None),
    ("get", ("abc", -4), None),
    ("set", ("abc", 1, Char("X")), ("aXc", None)),
    ("set", ("abc", -1, Char("X")), ("abX", None)),
    ("set", ("abc", 5, Char("X")), ("abc", None)),
    ("sub_string", ("hello", 1, 3), "ell"),
    ("sub_string", ("hello", 2), "llo"),
    ("sub_string", ("hello", -3, 2), "ll"),
    ("sub_string", ("hello", -10, 2), "he"),
    ("sub_string", ("hello", 10, 2), ""),
    ("sub_string", ("hello", 1, 0), ""),
    ("sub_string", ("hello", 3, 99), "lo"),
    ("sub_string", ("hello", Range(1, 3)), "el"),
    ("sub_string", ("hello", Range(1, 3, True)), "ell"),
    ("sub_string", ("hello", Range(3, 1)), ""),
    ("crop", ("hello", 1, 3), ("ell", None)),
    ("crop", ("hello", 2), ("llo", None)),
    ("crop", ("hello", Range(0, 2, True)), ("hel", None)),
    ("to_upper", ("Hi",), "HI"),
    ("to_lower", ("Hi",), "hi"),
    ("make_upper", ("Hi",), ("HI", None)),
    ("make_lower", ("Hi",), ("hi", None)),
    ("trim", ("  pad \n",), ("pad", None)),
    ("clear", ("abc",), ("", None)),
    ("truncate", ("abcdef", 3), ("abc", None)),
    ("truncate", ("abc", 10), ("abc", None)),
    ("truncate", ("abc", -1), ("", None)),
    ("pad", ("abc", 5, Char("-")), ("abc--", None)),
    ("pad", ("abc", 8, "xy"), ("abcxyxyx", None)),
    ("pad", ("abc", 2, Char("-")), ("abc", None)),
    ("remove", ("hello", "l"), ("heo", None)),
    ("remove", ("hello", Char("h")), ("ello", None)),
    ("replace", ("hello", "l", "L"), ("heLLo", None)),
    ("replace", ("hello", Char("l"), Char("_")), ("he__o", None)),
    ("replace", ("ab", "", "-"), ("-a-b-", None)),
    ("pop", ("abc",), ("ab", Char("c"))),
    ("pop", ("",), ("", None)),
    ("pop", ("abcde", 2), ("abc", "de")),
    ("pop", ("ab", 5), ("", "ab")),
    ("pop", ("ab", 0), ("ab", "")),
    ("append", ("ab", "cd"), ("abcd", None)),
    ("append", ("ab", Char("c")), ("abc", None)),
    ("append", ("n=", 42), ("n=42", None)),
    ("append", ("x", None), ("x", None)),
    ("split", ("a,b,c", ","), ["a", "b", "c"]),
    ("split", ("a,b,c", Char(",")), ["a", "b", "c"]),
    ("split", (" a b  c ",), ["a", "b", "c"]),
    ("split", ("a,b,c", ",", 2), ["a", "b,c"]),
    ("split", ("a,b,c", ",", 0), ["a,b,c"]),
    ("split", ("abc", ""), ["", "a", "b", "c", ""]),
    ("split", ("abc", "", 2), ["", "abc"]),
    ("split", ("abc", "", 3), ["", "a", "bc"]),
    ("split", ("hello", 2), ["he", "llo"]),
    ("split", ("hello", -2), ["hel", "lo"]),
    ("split", ("hello", 99), ["hello", ""]),
    ("split", ("hello", -99), ["", "hello"]),
    ("split_rev", ("a,b,c", ","), ["c", "b", "a"]),
    ("split_rev", ("a,b,c", ",", 2), ["c", "a,b"]),
    ("split_rev", ("abc", "", 3), ["", "c", "ab"]),
    ("to_chars", ("ab",), [Char("a"), Char("b")]),
    ("to_blob", ("hé",), bytearray(b"h\xc3\xa9")),
]


@pytest.mark.parametrize(("name", "args", "expected"), STRINGS, ids=lambda v: repr(v)[:30])
def test_strings(name, args, expected):
    check(name, args, expected)


def test_chars_iterator_is_reusable():
    it = call("chars", "abc")
    assert isinstance(it, HostIterator)
    assert list(it) == [Char("a"), Char("b"), Char("c")]
    assert all(type(c) is Char for c in it)
    assert list(call("chars", "abcdef", -3)) == ["d", "e", "f"]
    assert list(call("chars", "abcdef", 1, 2)) == ["b", "c"]
    assert list(call("chars", "abcdef", Range(1, 3, True))) == ["b", "c", "d"]


def test_string_size_limits():
    ctx = FakeCtx(max_string_size=10)
    err = error("pad", "abc", 11, Char("x"), kind="ErrorDataTooLarge", ctx=ctx)
    assert err.message.startswith("Length of string")
    error("pad", "abc", 10, Char("é"), kind="ErrorDataTooLarge", ctx=ctx)
    check("pad", ("abc", 10, Char("x")), ("abcxxxxxxx", None), ctx=ctx)
    error("replace", "aaaa", "a", "xyz", kind="ErrorDataTooLarge", ctx=ctx)


def test_huge_pad_without_limit_is_data_too_large():
    error("pad", "a", 2**62, Char("x"), kind="ErrorDataTooLarge")


# ---- chars ----


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("to_upper", (Char("a"),), Char("A")),
        ("to_lower", (Char("Q"),), Char("q")),
        ("to_upper", (Char("ß"),), Char("S")),
        ("make_upper", (Char("a"),), (Char("A"), None)),
        ("make_lower", (Char("A"),), (Char("a"), None)),
    ],
)
def test_chars(name, args, expected):
    check(name, args, expected)
