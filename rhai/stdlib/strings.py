"""String functions (Rhai's string_more and string_basic packages).

Positions count chars (Python code points), negative positions count from the end, and
out-of-range positions are clamped the way Rhai clamps them. Strings are immutable in Python, so
the in-place functions return `Mut(new_string, result)` for the engine to write back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from rhai.values import Char, HostIterator, Mut, Range, to_debug, to_string

from .context import check_string_size, too_large
from .positions import iter_window, range_window
from .registry import ANY, BLOB, CHAR, INT, RANGE, STR, register

TEXT = (STR, CHAR)

#: Unicode White_Space, which Rust's `trim` and `split_whitespace` use.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_WS_RUN = re.compile(f"[{re.escape(WHITESPACE)}]+")
_PY_ONLY_SPACE = frozenset("\x1c\x1d\x1e\x1f")


def utf8_len(s: str) -> int:
    """Length in UTF-8 bytes, the unit of `max_string_size` and `bytes`."""
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def _offset(n: int, start: int) -> int | None:
    """Start position for sub_string/crop, or None when the result is empty."""
    if start < 0:
        return max(n + start, 0)
    return None if start >= n else start


def sub_string_of(s: str, start: int, length: int) -> str:
    if not s or length <= 0:
        return ""
    offset = _offset(len(s), start)
    if offset is None:
        return ""
    return s[offset : offset + length]


# ---- display ----


@register("to_string", ANY)
def _to_string(ctx: Any, value: Any) -> str:
    return to_string(value)


@register("to_debug", ANY)
def _to_debug(ctx: Any, value: Any) -> str:
    return to_debug(value)


# ---- size ----


@register(("len", "get$len"), STR)
def _len(ctx: Any, s: str) -> int:
    return len(s)


@register(("bytes", "get$bytes"), STR)
def _bytes(ctx: Any, s: str) -> int:
    return utf8_len(s)


@register(("is_empty", "get$is_empty"), STR)
def _is_empty(ctx: Any, s: str) -> bool:
    return not s


# ---- searching ----


@register("contains", STR, TEXT)
def _contains(ctx: Any, s: str, find: str) -> bool:
    return find in s


@register("starts_with", STR, TEXT)
def _starts_with(ctx: Any, s: str, prefix: str) -> bool:
    return s.startswith(prefix)


@register("ends_with", STR, TEXT)
def _ends_with(ctx: Any, s: str, suffix: str) -> bool:
    return s.endswith(suffix)


@register("index_of", STR, TEXT)
def _index_of(ctx: Any, s: str, find: str) -> int:
    return s.find(find) if s else -1


@register("index_of", STR, TEXT, INT)
def _index_of_from(ctx: Any, s: str, find: str, start: int) -> int:
    n = len(s)
    if not n:
        return -1
    if start < 0:
        start = max(n + start, 0)
    elif start >= n:
        return -1
    return s.find(find, start)


@register("get", STR, INT)
def _get(ctx: Any, s: str, index: int) -> Char | None:
    n = len(s)
    if index >= n or index < -n:
        return None
    return Char(s[index])


@register("set", STR, INT, CHAR, mutates=True)
def _set(ctx: Any, s: str, index: int, ch: str) -> Mut:
    n = len(s)
    if index >= n or index < -n:
        return Mut(s, None)
    if index < 0:
        index += n
    return Mut(s[:index] + ch + s[index + 1 :], None)


# ---- parts ----


@register("sub_string", STR, INT, INT)
def _sub_string(ctx: Any, s: str, start: int, length: int) -> str:
    return sub_string_of(s, start, length)


@register("sub_string", STR, INT)
def _sub_string_tail(ctx: Any, s: str, start: int) -> str:
    return sub_string_of(s, start, len(s))


@register("sub_string", STR, RANGE)
def _sub_string_range(ctx: Any, s: str, r: Range) -> str:
    return sub_string_of(s, *range_window(r))


@register("crop", STR, INT, INT, mutates=True)
def _crop(ctx: Any, s: str, start: int, length: int) -> Mut:
    return Mut(sub_string_of(s, start, length), None)


@register("crop", STR, INT, mutates=True)
def _crop_tail(ctx: Any, s: str, start: int) -> Mut:
    return Mut(sub_string_of(s, start, len(s)), None)


@register("crop", STR, RANGE, mutates=True)
def _crop_range(ctx: Any, s: str, r: Range) -> Mut:
    return Mut(sub_string_of(s, *range_window(r)), None)


# ---- editing ----


@register("to_upper", STR)
def _to_upper(ctx: Any, s: str) -> str:
    return s.upper()


@register("to_lower", STR)
def _to_lower(ctx: Any, s: str) -> str:
    return s.lower()


@register("make_upper", STR, mutates=True)
def _make_upper(ctx: Any, s: str) -> Mut:
    return Mut(s.upper(), None)


@register("make_lower", STR, mutates=True)
def _make_lower(ctx: Any, s: str) -> Mut:
    return Mut(s.lower(), None)


@register("trim", STR, mutates=True)
def _trim(ctx: Any, s: str) -> Mut:
    return Mut(s.strip(WHITESPACE), None)


@register("clear", STR, mutates=True)
def _clear(ctx: Any, s: str) -> Mut:
    return Mut("", None)


@register("truncate", STR, INT, mutates=True)
def _truncate(ctx: Any, s: str, length: int) -> Mut:
    return Mut(s[:length] if length > 0 else "", None)


def _padded(ctx: Any, s: str, length: int, padding: str) -> Mut:
    if length <= 0:
        return Mut(s, None)
    check_string_size(ctx, length)
    missing = length - len(s)
    if missing <= 0 or not padding:
        return Mut(s, None)
    try:
        if len(padding) == 1:
            fill = padding * missing
        else:
            fill = (padding * (missing // len(padding) + 1))[:missing]
    except (MemoryError, OverflowError):
        raise too_large("Length of string") from None
    result = s + fill
    check_string_size(ctx, utf8_len(result))
    return Mut(result, None)


register("pad", STR, INT, TEXT, mutates=True)(_padded)


@register("remove", STR, TEXT, mutates=True)
def _remove(ctx: Any, s: str, find: str) -> Mut:
    return Mut(s.replace(find, ""), None)


@register("replace", STR, TEXT, TEXT, mutates=True)
def _replace(ctx: Any, s: str, find: str, sub: str) -> Mut:
    if not s:
        return Mut(s, None)
    if len(sub) > len(find):
        count = s.count(find)
        growth = count * (utf8_len(sub) - utf8_len(find))
        check_string_size(ctx, utf8_len(s) + growth)
    try:
        return Mut(s.replace(find, sub), None)
    except (MemoryError, OverflowError):
        raise too_large("Length of string") from None


@register("pop", STR, mutates=True)
def _pop(ctx: Any, s: str) -> Mut:
    if not s:
        return Mut(s, None)
    return Mut(s[:-1], Char(s[-1]))


@register("pop", STR, INT, mutates=True)
def _pop_n(ctx: Any, s: str, n: int) -> Mut:
    if n <= 0:
        return Mut(s, "")
    if n >= len(s):
        return Mut("", s)
    return Mut(s[:-n], s[-n:])


@register("append", STR, TEXT, mutates=True)
def _append_text(ctx: Any, s: str, other: str) -> Mut:
    return Mut(s + other, None)


@register("append", STR, BLOB, mutates=True)
def _append_blob(ctx: Any, s: str, blob: bytearray) -> Mut:
    return Mut(s + blob.decode("utf-8", "replace"), None)


@register("append", STR, ANY, mutates=True)
def _append_any(ctx: Any, s: str, other: Any) -> Mut:
    return Mut(s + to_string(other), None)


# ---- splitting ----


def _split_empty(s: str, pieces: int | None, reverse: bool) -> list[str]:
    """Rust's split on "": an empty piece, every char, an empty piece (splitn/rsplitn too)."""
    full = ["", *s, ""]
    if reverse:
        full.reverse()
    if pieces is None or pieces >= len(full):
        return full
    if pieces == 1:
        return [s]
    head = full[: pieces - 1]
    rest = s[: len(s) - (pieces - 2)] if reverse else s[pieces - 2 :]
    return [*head, rest]


@register("split", STR)
def _split_whitespace(ctx: Any, s: str) -> list:
    if not s:
        return [s]
    if _PY_ONLY_SPACE.isdisjoint(s):
        return s.split()
    return [p for p in _WS_RUN.split(s) if p]


@register("split", STR, INT)
def _split_at(ctx: Any, s: str, index: int) -> list:
    n = len(s)
    if index <= 0:
        if -index > n:
            return ["", s]
        cut = n + index
    else:
        cut = min(index, n)
    return [s[:cut], s[cut:]]


@register("split", STR, TEXT)
def _split(ctx: Any, s: str, delim: str) -> list:
    if not s:
        return [s]
    return s.split(delim) if delim else _split_empty(s, None, False)


@register("split", STR, TEXT, INT)
def _split_n(ctx: Any, s: str, delim: str, segments: int) -> list:
    if segments <= 1 or not s:
        return [s]
    pieces = segments
    if not delim:
        return _split_empty(s, pieces, False)
    return s.split(delim, pieces - 1)


@register("split_rev", STR, TEXT)
def _split_rev(ctx: Any, s: str, delim: str) -> list:
    if not s:
        return [s]
    if not delim:
        return _split_empty(s, None, True)
    parts = s.split(delim)
    parts.reverse()
    return parts


@register("split_rev", STR, TEXT, INT)
def _split_rev_n(ctx: Any, s: str, delim: str, segments: int) -> list:
    if segments <= 1 or not s:
        return [s]
    pieces = segments
    if not delim:
        return _split_empty(s, pieces, True)
    parts = s.rsplit(delim, pieces - 1)
    parts.reverse()
    return parts


@register("to_chars", STR)
def _to_chars(ctx: Any, s: str) -> list:
    return list(map(Char, s))


@register("to_blob", STR)
def _to_blob(ctx: Any, s: str) -> bytearray:
    return bytearray(s.encode("utf-8", "surrogatepass"))


class CharsIter(HostIterator):
    """What `s.chars()` returns: iterates the string's chars, each time afresh."""

    type_name = "CharsStream"

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __iter__(self) -> Iterator[Any]:
        return map(Char, self.text)


def _chars_window(s: str, start: int, length: int) -> CharsIter:
    if length <= 0:
        return CharsIter("")
    offset = start if start >= 0 else max(len(s) + start, 0)
    return CharsIter(s[offset : offset + length])


@register(("chars", "get$chars"), STR)
def _chars(ctx: Any, s: str) -> CharsIter:
    return CharsIter(s)


@register("chars", STR, INT)
def _chars_from(ctx: Any, s: str, start: int) -> CharsIter:
    return _chars_window(s, start, len(s))


@register("chars", STR, INT, INT)
def _chars_from_len(ctx: Any, s: str, start: int, length: int) -> CharsIter:
    return _chars_window(s, start, length)


@register("chars", STR, RANGE)
def _chars_range(ctx: Any, s: str, r: Range) -> CharsIter:
    return _chars_window(s, *iter_window(r))
