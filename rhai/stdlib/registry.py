"""The table of native functions and the decorator that fills it.

Kept apart from `__init__` so every family module can register itself without import cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rhai.values import Char, FnPtr, Range, Timestamp

INT = int
FLOAT = float
BOOL = bool
STR = str
CHAR = Char
ARRAY = list
MAP = dict
BLOB = bytearray
FNPTR = FnPtr
RANGE = Range
TIMESTAMP = Timestamp
UNIT = type(None)
ANY = None

ParamSpec = type | tuple[type, ...] | None


class Native:
    """One overload of a built-in function: accepted argument types plus the callable.

    `fn(ctx, *args)` returns the result; `mutates` tells the engine the first argument is changed
    in place (lists, dicts and bytearrays directly, immutable values through `values.Mut`).
    """

    __slots__ = ("fn", "mutates", "name", "params")

    def __init__(
        self,
        name: str,
        params: tuple[frozenset[type] | None, ...],
        fn: Callable[..., Any],
        mutates: bool,
    ) -> None:
        self.name = name
        self.params = params
        self.fn = fn
        self.mutates = mutates

    def accepts(self, types: Sequence[type]) -> bool:
        return len(types) == len(self.params) and all(
            p is None or t in p for p, t in zip(self.params, types, strict=True)
        )

    def __repr__(self) -> str:
        names = ", ".join(
            "any" if p is None else "|".join(sorted(t.__name__ for t in p)) for p in self.params
        )
        return f"Native({self.name}({names}){' mut' if self.mutates else ''})"


NATIVES: dict[str, list[Native]] = {}


def _param(spec: ParamSpec) -> frozenset[type] | None:
    if spec is None:
        return None
    if isinstance(spec, tuple):
        return frozenset(spec)
    return frozenset((spec,))


def register(
    names: str | tuple[str, ...], *params: ParamSpec, mutates: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated `fn(ctx, *args)` under each of `names` for `params`.

    A name may be a property getter such as `"get$len"`. Overloads are tried in registration
    order, so register the more specific signature first.
    """
    if isinstance(names, str):
        names = (names,)
    specs = tuple(_param(p) for p in params)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            NATIVES.setdefault(name, []).append(Native(name, specs, fn, mutates))
        return fn

    return decorate
