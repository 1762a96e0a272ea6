"""Object map functions (Rhai's map_basic package).

Maps are Python dicts presented in sorted key order (Rhai keeps them in a BTreeMap), so
`keys`, `values` and the callbacks of `drain`/`retain`/`filter` all walk keys sorted.
Callbacks (`map`, `filter`, `drain`, `retain`) get `(key, value)`; a one-parameter callable gets
the key with `this` bound to the value.
"""

from __future__ import annotations

from typing import Any

from rhai.values import FnPtr

from .context import arity, caller, copy_out, truthy
from .registry import ANY, FNPTR, MAP, STR, register


@register("len", MAP)
def _len(ctx: Any, m: dict) -> int:
    return len(m)


@register("is_empty", MAP)
def _is_empty(ctx: Any, m: dict) -> bool:
    return not m


@register("contains", MAP, STR)
def _contains(ctx: Any, m: dict, key: str) -> bool:
    return key in m


@register("get", MAP, STR)
def _get(ctx: Any, m: dict, key: str) -> Any:
    return copy_out(m.get(key))


@register("set", MAP, STR, ANY, mutates=True)
def _set(ctx: Any, m: dict, key: str, value: Any) -> None:
    m[key] = copy_out(value)


@register("remove", MAP, STR, mutates=True)
def _remove(ctx: Any, m: dict, key: str) -> Any:
    return m.pop(key, None)


@register("clear", MAP, mutates=True)
def _clear(ctx: Any, m: dict) -> None:
    m.clear()


@register("mixin", MAP, MAP, mutates=True)
def _mixin(ctx: Any, m: dict, other: dict) -> None:
    for k, v in other.items():
        m[k] = copy_out(v)


@register("fill_with", MAP, MAP, mutates=True)
def _fill_with(ctx: Any, m: dict, other: dict) -> None:
    for k, v in other.items():
        if k not in m:
            m[k] = copy_out(v)


@register("keys", MAP)
def _keys(ctx: Any, m: dict) -> list:
    return sorted(m)


@register("values", MAP)
def _values(ctx: Any, m: dict) -> list:
    return [copy_out(m[k]) for k in sorted(m)]


def _entry_caller(ctx: Any, fn: FnPtr) -> Any:
    """`|k, v|` gets key and value; `|k|` (or a native) gets the key with `this` = value."""
    n = arity(ctx, fn)
    call = caller(ctx, fn)
    if n == 2:
        return lambda k, v: call([k, v])
    if n == 0:
        return lambda k, v: call([], v)
    return lambda k, v: call([k], v)


def _partition(ctx: Any, m: dict, fn: FnPtr) -> tuple[dict, dict]:
    """(entries the filter accepts, entries it rejects), in key order."""
    call = _entry_caller(ctx, fn)
    hits: dict = {}
    misses: dict = {}
    for k in sorted(m):
        v = m[k]
        (hits if truthy(call(k, v)) else misses)[k] = v
    return hits, misses


@register("drain", MAP, FNPTR, mutates=True)
def _drain(ctx: Any, m: dict, fn: FnPtr) -> dict:
    hits, misses = _partition(ctx, m, fn)
    m.clear()
    m.update(misses)
    return hits


@register("retain", MAP, FNPTR, mutates=True)
def _retain(ctx: Any, m: dict, fn: FnPtr) -> dict:
    hits, misses = _partition(ctx, m, fn)
    m.clear()
    m.update(hits)
    return misses


@register("filter", MAP, FNPTR)
def _filter(ctx: Any, m: dict, fn: FnPtr) -> dict:
    hits, _ = _partition(ctx, m, fn)
    return {k: copy_out(v) for k, v in hits.items()}


@register("map", MAP, FNPTR)
def _map(ctx: Any, m: dict, fn: FnPtr) -> dict:
    call = _entry_caller(ctx, fn)
    return {k: call(k, m[k]) for k in sorted(m)}
