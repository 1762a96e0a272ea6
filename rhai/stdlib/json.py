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
from rhai.values import INT_MAX, INT_MIN, FnPtr, Shared, to_debug, type_name

from .registry import MAP, STR, register


def map_to_json(m: dict) -> str:
    return "{" + ",".join(f"{to_debug(k)}:{value_to_json(m[k])}" for k in sorted(m)) + "}"


def value_to_json(value: Any) -> str:
    """One value as Rhai's `format_dynamic_as_json` writes it."""
    t = type(value)
    if value is None:
        return "null"
    if t is dict:
        return map_to_json(value)
    if t is list:
        return "[" + ",".join(map(value_to_json, value)) + "]"
    if t is bytearray:
        return "[" + ",".join(map(str, value)) + "]"
    if t is FnPtr:
        name = to_debug(value.name)
        if not value.curry:
            return name
        return "[" + ",".join([name, *map(value_to_json, value.curry)]) + "]"
    if t is Shared:
        return value_to_json(value.value)
    return to_debug(value)


@register("to_json", MAP)
def _to_json(ctx: Any, m: dict) -> str:
    try:
        return map_to_json(m)
    except RecursionError:
        raise RhaiError("ErrorStackOverflow", "Stack overflow") from None


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
