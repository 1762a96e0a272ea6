"""Rhai's standard library for the pure-Python engine.

The engine asks `lookup(name, args)` for every function or method that is neither an operator
nor one of its own built-ins; the answer is the first registered `Native` overload whose
arity and parameter types fit the arguments (exact `type()` tests, so bool is not INT and a char
is not a string), or None for ErrorFunctionNotFound. Answers are cached per name and argument
types because the engine asks on every call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import (  # noqa: F401  (imported to register their natives)
    arrays,
    bits,
    blobs,
    chars,
    fnptrs,
    json,
    maps,
    numbers,
    ranges,
    strings,
    time,
)
from .context import NO_THIS
from .registry import NATIVES, Native, register

BUILTIN_NAMES: frozenset[str] = frozenset(NATIVES) | frozenset(
    name.split("$", 1)[1] for name in NATIVES if "$" in name
)

_cache: dict[tuple, Native | None] = {}


def _resolve(name: str, types: tuple[type, ...]) -> Native | None:
    for native in NATIVES.get(name, ()):
        if native.accepts(types):
            return native
    return None


def lookup(name: str, args: Sequence[Any]) -> Native | None:
    """The overload of built-in `name` that accepts `args`, or None."""
    key = (name, *map(type, args))
    try:
        return _cache[key]
    except KeyError:
        found = _cache[key] = _resolve(name, key[1:])
        return found


__all__ = ["BUILTIN_NAMES", "NATIVES", "NO_THIS", "Native", "lookup", "register"]
