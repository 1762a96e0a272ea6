"""Char functions: case conversion (new char or in place). `to_int` lives with the numbers."""

from __future__ import annotations

from typing import Any

from rhai.values import Char, Mut

from .registry import CHAR, register


def _first(text: str, fallback: str) -> Char:
    """The mapped char; a mapping to several chars leaves the char as it was (`'ß'` stays)."""
    return Char(text) if len(text) == 1 else Char(fallback)


@register("to_upper", CHAR)
def _to_upper(ctx: Any, c: str) -> Char:
    return _first(c.upper(), c)


@register("to_lower", CHAR)
def _to_lower(ctx: Any, c: str) -> Char:
    return _first(c.lower(), c)


@register("make_upper", CHAR, mutates=True)
def _make_upper(ctx: Any, c: str) -> Mut:
    return Mut(_first(c.upper(), c), None)


@register("make_lower", CHAR, mutates=True)
def _make_lower(ctx: Any, c: str) -> Mut:
    return Mut(_first(c.lower(), c), None)
