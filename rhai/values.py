"""How Rhai values live in Python, and the rules every part of the engine shares for them.

Mapping: INT -> int (never bool), FLOAT -> float, bool -> bool, char -> `Char`, string -> str,
() -> None, array -> list, map -> dict (str keys; kept unordered, *presented* sorted), BLOB ->
bytearray, function pointer -> `FnPtr`, range -> `Range`, timestamp -> `Timestamp`. Type tests use
`type(v) is ...` because bool is an int and Char is a str in Python but not in Rhai.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, NamedTuple

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
FLOAT_EPSILON = sys.float_info.epsilon


class _Work(threading.local):
    """Elements visited by deep operations (copy, compare, display, size checks) since the
    engine last looked: one `==` or copy can do work proportional to the data, and the engine
    turns this count into operations so `max_operations` sees it. Per thread, because an engine
    runs one script at a time but several engines may run in parallel threads."""

    n = 0
    #: elements (list items, map entries, 40-byte chunks of BLOBs) created by deep copies
    copied = 0


WORK = _Work()


class Char(str):
    """A Rhai `char`: one Unicode scalar, distinct from a one-character string."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Char({str.__repr__(self)})"


class FnPtr:
    """A function pointer: a function name plus curried arguments.

    Anonymous functions (closures) carry the compiled callable in `fn` and a generated name;
    captured variables are among the curried arguments as `Shared` cells.
    """

    __slots__ = ("curry", "depth", "fn", "name")

    def __init__(self, name: str, curry: tuple = (), fn: Any = None) -> None:
        self.name = name
        self.curry = tuple(curry)
        self.fn = fn
        # nesting depth of the curried values, kept so that checking the depth of a pointer
        # never walks shared curried pointers more than once
        self.depth = 1 + max(map(nesting, self.curry), default=0)

    @property
    def is_anonymous(self) -> bool:
        return self.fn is not None

    def curried(self, args: tuple | list) -> FnPtr:
        return FnPtr(self.name, self.curry + tuple(args), self.fn)

    def __eq__(self, other: object) -> bool:
        return equals(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FnPtr({self.name!r}, curry={self.curry!r})"


class Range:
    """An INT range `start..end` or `start..=end` (type_of "range" / "range=")."""

    __slots__ = ("end", "inclusive", "start")

    def __init__(self, start: int, end: int, inclusive: bool = False) -> None:
        self.start = start
        self.end = end
        self.inclusive = inclusive

    def as_python(self) -> range:
        return range(self.start, self.end + 1 if self.inclusive else self.end)

    def __eq__(self, other: object) -> bool:
        return type(other) is Range and (self.start, self.end, self.inclusive) == (
            other.start,
            other.end,
            other.inclusive,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{self.start}..{'=' if self.inclusive else ''}{self.end}"


class Timestamp:
    """A point in time from `timestamp()`, measured on the monotonic clock."""

    __slots__ = ("instant",)

    def __init__(self, instant: float | None = None) -> None:
        self.instant = time.monotonic() if instant is None else instant

    def __eq__(self, other: object) -> bool:
        return type(other) is Timestamp and other.instant == self.instant

    __hash__ = None  # type: ignore[assignment]


class HostIterator:
    """Base for iterable values the standard library makes (`range(a, b, step)`, `x.bits()`)."""

    type_name = "iterator"

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError


class Shared:
    """A cell for a variable captured by a closure: both sides see later changes."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Shared({self.value!r})"


class Mut(NamedTuple):
    """Returned by a native that changes an immutable first argument (string, INT) in place.

    The engine stores `this` back into the variable the method was called on and gives the
    script `result`.
    """

    this: Any
    result: Any


_TYPE_NAMES: dict[type, str] = {
    int: "i64",
    float: "f64",
    bool: "bool",
    Char: "char",
    str: "string",
    list: "array",
    dict: "map",
    type(None): "()",
    FnPtr: "Fn",
    bytearray: "blob",
    Timestamp: "timestamp",
}


def type_name(value: Any) -> str:
    """The name `type_of()` gives and error messages use."""
    t = type(value)
    name = _TYPE_NAMES.get(t)
    if name is not None:
        return name
    if t is Range:
        return "range=" if value.inclusive else "range"
    if t is Shared:
        return type_name(value.value)
    if isinstance(value, HostIterator):
        return value.type_name
    return t.__name__


def deep_copy(value: Any) -> Any:
    """Rhai copies values on assignment and when passing them to script functions."""
    t = type(value)
    if t is list:
        WORK.copied += len(value)
        return [deep_copy(v) if type(v) in _CONTAINERS else v for v in value]
    if t is dict:
        WORK.copied += len(value)
        return {k: deep_copy(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
    if t is bytearray:
        WORK.copied += len(value) // 40 + 1
        return bytearray(value)
    if t is Range:
        return copy.copy(value)
    return value


_CONTAINERS = frozenset({list, dict, bytearray, Range})


def nesting(value: Any) -> int:
    """How deeply arrays, maps and function pointers nest in `value` (a scalar is 0)."""
    above = best = 0
    level = [value]
    while level:
        below: list[Any] = []
        for x in level:
            t = type(x)
            if t is list:
                best = above + 1
                below.extend([y for y in x if type(y) in _NESTING])
            elif t is dict:
                best = above + 1
                below.extend([y for y in x.values() if type(y) in _NESTING])
            elif t is FnPtr:
                best = max(best, above + x.depth)
            elif t is Shared:
                below.append(x.value)
        above += 1
        level = below
    return best


_NESTING = (list, dict, FnPtr, Shared)


def item_count(value: Any) -> int:
    """Array items and map entries in `value`, counted through nested arrays and maps (what
    Rhai's recursive array size limit counts)."""
    total = 0
    stack = [value]
    while stack:
        x = stack.pop()
        if type(x) is list:
            total += len(x)
            stack.extend([y for y in x if type(y) is list or type(y) is dict])
        elif type(x) is dict:
            total += len(x)
            stack.extend([y for y in x.values() if type(y) is list or type(y) is dict])
    return total


# ---- float comparison (epsilon-relative, as Rhai's checked build does) ----


def _scale(x: float, y: float) -> float:
    return 1.0 if x * y == 0 else max(abs(x), abs(y))


def float_eq(x: float, y: float) -> bool:
    return abs(x - y) / _scale(x, y) <= FLOAT_EPSILON


def float_lt(x: float, y: float) -> bool:
    return (y - x) / _scale(x, y) > FLOAT_EPSILON


def float_le(x: float, y: float) -> bool:
    return (x - y) / _scale(x, y) <= FLOAT_EPSILON


def equals(a: Any, b: Any, memo: dict | None = None) -> bool:
    """Rhai `==`: numeric across INT/FLOAT, string with char, structural for containers.

    Values of different (non-numeric, non-text) types are never equal. `memo` remembers pairs
    of containers already compared in this comparison: function pointers share their curried
    values, so without it comparing `f.curry(f, f)` nested 40 times would take 2^40 steps.
    """
    ta, tb = type(a), type(b)
    if ta is Shared:
        return equals(a.value, b, memo)
    if tb is Shared:
        return equals(a, b.value, memo)
    if ta is tb:
        if ta is float:
            return float_eq(a, b)
        if ta is list or ta is dict or ta is FnPtr:
            return _equal_containers(a, b, ta, {} if memo is None else memo)
        return a == b
    if (ta is int and tb is float) or (ta is float and tb is int):
        return float_eq(float(a), float(b))
    if ta in (str, Char) and tb in (str, Char):
        return str(a) == str(b)
    return False


def _equal_containers(a: Any, b: Any, t: type, memo: dict) -> bool:
    # plain loops, not all(<generator>), and no `==` on FnPtr: recursion then stays in Python
    # frames and never grows the C stack, so deeply nested data cannot crash a small thread stack
    key = (id(a), id(b))
    known = memo.get(key)
    if known is not None:
        return known
    memo[key] = True  # a pair met again while being compared (a cycle) does not decide
    if t is FnPtr:
        same = a.name == b.name and a.fn is b.fn and len(a.curry) == len(b.curry)
        items: Any = zip(a.curry, b.curry, strict=True) if same else ()
    elif t is list:
        same = len(a) == len(b)
        items = zip(a, b, strict=True) if same else ()
    else:
        same = a.keys() == b.keys()
        items = ((v, b[k]) for k, v in a.items()) if same else ()
    if same:
        WORK.n += len(a.curry) if t is FnPtr else len(a)
        for x, y in items:
            if not equals(x, y, memo):
                same = False
                break
    memo[key] = same
    return same


# ---- display ----

_MAX_NATURAL_FLOAT = 1e13
_MIN_NATURAL_FLOAT = 1e-13


def float_to_string(x: float) -> str:
    """Rhai's float display: `1.0`, `0.5`, exponent form beyond 1e13 / below 1e-13."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    magnitude = abs(x)
    if magnitude == 0:
        return "-0.0" if str(x).startswith("-") else "0.0"
    digits = Decimal(repr(x))
    if magnitude > _MAX_NATURAL_FLOAT or magnitude < _MIN_NATURAL_FLOAT:
        sign, numerals, exponent = digits.as_tuple()
        text = "".join(map(str, numerals)).rstrip("0") or "0"
        power = exponent + len(numerals) - 1
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{'-' if sign else ''}{mantissa}e{power}"
    text = format(digits, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if "." in text else text + ".0"


def _escape(text: str, quote: str) -> str:
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == quote:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\0":
            out.append("\\0")
        elif not ch.isprintable():
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return "".join(out)


def to_string(value: Any) -> str:
    """`to_string`, `print` and string interpolation: unit is empty, strings are bare."""
    t = type(value)
    if t is str or t is Char:
        return str(value)
    if t is type(None):
        return ""
    return to_debug(value)


def to_json_value(value: Any) -> Any:
    """A value a script produced as plain JSON data, for hosts that store or send results.

    JSON has no characters, function pointers, blobs, ranges or timestamps: a character is a
    string, a function pointer its name, a blob a list of byte values, a non-finite float and
    anything else its `to_string` text. Map keys are strings; shared cells are unwrapped.
    """
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else to_string(value)
    if isinstance(value, Char):
        return str(value)
    if isinstance(value, list):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, FnPtr):
        return value.name
    if isinstance(value, Shared):
        return to_json_value(value.value)
    if isinstance(value, bytearray | bytes):
        return list(value)
    return to_string(value)


def to_debug(value: Any) -> str:
    """`debug` and the form used inside arrays and maps: strings quoted, unit as `()`."""
    t = type(value)
    if t is int:
        return str(value)
    if t is bool:
        return "true" if value else "false"
    if t is float:
        return float_to_string(value)
    if t is str:
        return '"' + _escape(value, '"') + '"'
    if t is Char:
        return "'" + _escape(value, "'") + "'"
    if value is None:
        return "()"
    if t is list:
        WORK.n += len(value)
        parts = []
        for v in value:  # a loop, not a generator: see `equals`
            parts.append(to_debug(v))
        return "[" + ", ".join(parts) + "]"
    if t is dict:
        WORK.n += len(value)
        parts = []
        for k in sorted(value):
            parts.append(to_debug(k) + ": " + to_debug(value[k]))
        return "#{" + ", ".join(parts) + "}"
    if t is FnPtr:
        return f"Fn({value.name})"
    if t is bytearray:
        return "[" + value.hex() + "]"
    if t is Range:
        return repr(value)
    if t is Shared:
        return to_debug(value.value)
    if t is Timestamp:
        return "<timestamp>"
    return f"<{type_name(value)}>"


def iter_of(value: Any) -> Iterator[Any] | None:
    """What `for` walks over, or None when the value is not iterable (ErrorFor)."""
    t = type(value)
    if t is Range:
        return iter(value.as_python())
    if t is list:
        return iter(list(value))
    if t is str:
        return map(Char, value)
    if t is bytearray:
        return iter(bytes(value))
    if t is Shared:
        return iter_of(value.value)
    if isinstance(value, HostIterator):
        return iter(value)
    return None


# ---- memory held by values (for the engine's `max_memory` budget) ----

_SCALARS = frozenset({int, float, bool, type(None), Char, Range, Timestamp})
#: Approximate CPython sizes: a list slot plus the number object it points to, and the fixed
#: overhead of a list, a map entry, a function pointer and a shared cell.
SLOT_BYTES = 40
_LIST_BYTES = 56
_ENTRY_BYTES = 100
_OBJECT_BYTES = 64
#: Strings at least this long are counted once however often they are referenced (Python
#: shares them); shorter ones are counted at every reference, which is cheaper and errs high.
_SHARED_STR = 256


def held_bytes(roots: Any) -> int:
    """Approximate bytes held by `roots` and everything reachable from them as script values.

    Walks lists, maps, tuples, function pointers (curried values and closure captures) and
    shared cells, each object once (so shared and cyclic structures cost what they occupy);
    other Python objects count nothing. Iterative, so data of any depth is safe to measure.
    """
    total = 0
    seen: set[int] = set()
    stack = list(roots)
    pop = stack.pop
    push = stack.append
    getsizeof = sys.getsizeof
    scalars = _SCALARS
    while stack:
        x = pop()
        t = type(x)
        if t is str:
            if len(x) >= _SHARED_STR:
                if id(x) in seen:
                    continue
                seen.add(id(x))
            total += getsizeof(x)
            continue
        if t in scalars:
            continue
        if id(x) in seen:
            continue
        seen.add(id(x))
        if t is list or t is tuple:
            total += _LIST_BYTES + SLOT_BYTES * len(x)
            if not set(map(type, x)) <= scalars:
                for y in x:
                    if type(y) not in scalars:
                        push(y)
        elif t is dict:
            total += _ENTRY_BYTES * len(x)
            for k, y in x.items():
                if type(k) is str:
                    total += getsizeof(k)
                if type(y) not in scalars:
                    push(y)
        elif t is bytearray:
            total += getsizeof(x)
        elif t is FnPtr:
            total += _OBJECT_BYTES
            push(x.curry)
            for cell in getattr(x.fn, "__closure__", None) or ():
                with contextlib.suppress(ValueError):  # an empty cell
                    push(cell.cell_contents)
        elif t is Shared:
            total += _OBJECT_BYTES
            push(x.value)
    return total
