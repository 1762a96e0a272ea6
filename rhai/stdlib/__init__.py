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

#: Cache as a tree: name -> type of arg 0 -> type of arg 1 ... -> None -> answer.
_tree: dict[str, dict] = {}


def _resolve(name: str, types: tuple[type, ...]) -> Native | None:
    for native in NATIVES.get(name, ()):
        if native.accepts(types):
            return native
    return None


def _remember(name: str, args: Sequence[Any]) -> Native | None:
    node = _tree.setdefault(name, {})
    for arg in args:
        node = node.setdefault(type(arg), {})
    found = node[None] = _resolve(name, tuple(map(type, args)))
    return found


def lookup(name: str, args: Sequence[Any]) -> Native | None:
    """The overload of built-in `name` that accepts `args`, or None."""
    try:
        node = _tree[name]
        for arg in args:
            node = node[type(arg)]
        return node[None]
    except KeyError:
        return _remember(name, args)


__all__ = ["BUILTIN_NAMES", "NATIVES", "NO_THIS", "Native", "lookup", "register"]
