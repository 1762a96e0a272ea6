"""JSON: `map.to_json()` in Rhai's compact format, and `parse_json(text)` into an object map.

`to_json` writes keys and scalars in their debug form, `()` as `null`, arrays, BLOBs and nested
maps recursively, with no spaces (as Rhai's `format_map_as_json` does). `parse_json` accepts a
JSON object (any other JSON value is ErrorMismatchOutputType, as in Rhai); `null` becomes `()`,
and integers outside i64 become FLOAT as in Rhai's lexer.
"""

from __future__ import annotations

import json as _json
from typing import Any

from rhai.errors import RhaiError
from rhai.values import INT_MAX, INT_MIN, WORK, FnPtr, Shared, to_debug, type_name

from .context import limit, too_large
from .registry import MAP, STR, register


class _Raw(str):
    """Text to write as-is (punctuation, keys) among the values still to convert."""

    __slots__ = ()


class _Written:
    """Marks the end of a function pointer's text, which is then remembered for reuse."""

    __slots__ = ("key", "start")

    def __init__(self, key: int, start: int) -> None:
        self.key = key
        self.start = start


def map_to_json(m: dict, max_len: int = 0) -> str:
    return value_to_json(m, max_len)


def value_to_json(value: Any, max_len: int = 0) -> str:
    """One value as Rhai's `format_dynamic_as_json` writes it.

    Iterative, so nesting depth costs no Python recursion. Function pointers share curried
    values, so the text of a small value can be exponentially long: each pointer's text is
    written once and then reused whole, and with `max_len` the writer stops with
    ErrorDataTooLarge once the text grows past `max_len` characters.
    """
    out: list[str] = []
    size = work = 0
    memo: dict[int, str] = {}
    stack: list[Any] = [value]
    while stack:
        x = stack.pop()
        t = type(x)
        if t is _Raw:
            piece: str = x
        elif t is _Written:
            text = "".join(out[x.start :])
            del out[x.start :]
            memo[x.key] = piece = text
            size -= len(text)
        elif x is None:
            piece = "null"
        elif t is dict or t is list or (t is FnPtr and x.curry):
            if t is FnPtr:
                known = memo.get(id(x))
                if known is not None:
                    piece = known
                    size += len(piece)
                    if max_len and size > max_len:
                        raise too_large("Length of string")
                    out.append(piece)
                    continue
            if t is dict:
                keys = sorted(x)
                items = [x[k] for k in keys]
                heads = [_Raw(("," if i else "") + to_debug(k) + ":") for i, k in enumerate(keys)]
                seq: list[Any] = [_Raw("{")]
                close = "}"
            elif t is list:
                items = x
                heads = [_Raw("," if i else "") for i in range(len(items))]
                seq = [_Raw("[")]
                close = "]"
            else:
                items = list(x.curry)
                heads = [_Raw(",")] * len(items)
                seq = [_Raw("[" + to_debug(x.name))]
                close = "]"
            work += len(items)
            for head, item in zip(heads, items, strict=True):
                seq.append(head)
                seq.append(item)
            seq.append(_Raw(close))
            if t is FnPtr:
                seq.append(_Written(id(x), len(out)))
            stack.extend(reversed(seq))
            continue
        elif t is bytearray:
            piece = "[" + ",".join(map(str, x)) + "]"
        elif t is FnPtr:
            piece = to_debug(x.name)
        elif t is Shared:
            stack.append(x.value)
            continue
        else:
            piece = to_debug(x)
        size += len(piece)
        if max_len and size > max_len:
            WORK.n += work
            raise too_large("Length of string")
        out.append(piece)
    WORK.n += work
    return "".join(out)


@register("to_json", MAP)
def _to_json(ctx: Any, m: dict) -> str:
    return map_to_json(m, limit(ctx, "max_string_size") or limit(ctx, "max_memory"))


def _int(text: str) -> Any:
    value = int(text)
    return value if INT_MIN <= value <= INT_MAX else float(value)


def _convert(value: Any) -> Any:
    if type(value) is list:
        return [_convert(v) for v in value]
    if type(value) is dict:
        return {k: _convert(v) for k, v in value.items()}
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


@register("parse_json", STR)
def _parse_json(ctx: Any, text: str) -> dict:
    try:
        value = _json.loads(text, parse_int=_int, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:
        raise RhaiError(
            "ErrorParsing",
            f"Invalid JSON: {err}",
            parse_kind="BadInput",
            lex_kind="UnexpectedInput",
        ) from None
    value = _convert(value)
    if type(value) is not dict:
        actual = type_name(value)
        raise RhaiError(
            "ErrorMismatchOutputType",
            f"Output type incorrect: {actual} (expecting map)",
            expected="map",
            actual=actual,
        )
    return value
