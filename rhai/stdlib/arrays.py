"""Array functions (Rhai's array_basic package).

Positions follow Rhai's `calc_offset_len` (negative counts from the end and clamps at 0; past the
end clamps to the length) or `calc_index` (out of range gives `()`), whichever the original
uses. Callbacks get `(item)` or `(item, index)` according to the callable's arity, with `this`
bound to the item. Results handed out of an array are copies, as in Rhai.
"""

from __future__ import annotations

import re
from functools import cmp_to_key
from typing import Any

from rhai.errors import RhaiError
from rhai.values import Char, FnPtr, Range, equals, item_count, type_name

from .context import (
    COPIED,
    arity,
    caller,
    check_array_size,
    copy_out,
    make_item_caller,
    make_pair_caller,
    method_style,
    too_large,
    truthy,
    unary_entry,
)
from .positions import index_in, offset_len, range_window
from .registry import ANY, ARRAY, FNPTR, INT, RANGE, STR, register

INT_MAX = 2**63 - 1


# ---- size ----


@register(("len", "get$len"), ARRAY)
def _len(ctx: Any, a: list) -> int:
    return len(a)


@register(("is_empty", "get$is_empty"), ARRAY)
def _is_empty(ctx: Any, a: list) -> bool:
    return not a


# ---- element access ----


@register("get", ARRAY, INT)
def _get(ctx: Any, a: list, index: int) -> Any:
    if not a:
        return None
    i, _ = offset_len(len(a), index, 0)
    return copy_out(a[i]) if i < len(a) else None


@register("set", ARRAY, INT, ANY, mutates=True)
def _set(ctx: Any, a: list, index: int, value: Any) -> None:
    if a:
        i, _ = offset_len(len(a), index, 0)
        if i < len(a):
            a[i] = copy_out(value)


# ---- growing and shrinking ----


@register("push", ARRAY, ANY, mutates=True)
def _push(ctx: Any, a: list, value: Any) -> None:
    a.append(copy_out(value))


@register("append", ARRAY, ARRAY, mutates=True)
def _append(ctx: Any, a: list, other: list) -> None:
    a.extend(map(copy_out, other))


@register("insert", ARRAY, INT, ANY, mutates=True)
def _insert(ctx: Any, a: list, index: int, value: Any) -> None:
    n = len(a)
    if index < 0:
        a.insert(max(n + index, 0), copy_out(value))
    elif index >= n:
        a.append(copy_out(value))
    else:
        a.insert(index, copy_out(value))


@register("pad", ARRAY, INT, ANY, mutates=True)
def _pad(ctx: Any, a: list, length: int, value: Any) -> None:
    if length <= len(a):
        return
    check_array_size(ctx, length)
    if type(value) in (list, dict):
        # every new item is a copy of `value`: the nested total must fit, checked before
        # building (a 1000-item pad of a 1M-item array would otherwise build 1G items)
        check_array_size(ctx, length + (length - len(a)) * item_count(value))
    try:
        if type(value) in (list, dict, bytearray):
            a.extend(copy_out(value) for _ in range(length - len(a)))
        else:
            a.extend([value] * (length - len(a)))
    except (MemoryError, OverflowError):
        raise too_large("Size of array") from None


@register("pop", ARRAY, mutates=True)
def _pop(ctx: Any, a: list) -> Any:
    return a.pop() if a else None


@register("shift", ARRAY, mutates=True)
def _shift(ctx: Any, a: list) -> Any:
    return a.pop(0) if a else None


@register("remove", ARRAY, INT, mutates=True)
def _remove(ctx: Any, a: list, index: int) -> Any:
    i = index_in(len(a), index)
    return None if i is None else a.pop(i)


@register("clear", ARRAY, mutates=True)
def _clear(ctx: Any, a: list) -> None:
    a.clear()


@register("truncate", ARRAY, INT, mutates=True)
def _truncate(ctx: Any, a: list, length: int) -> None:
    del a[max(length, 0) :]


@register("chop", ARRAY, INT, mutates=True)
def _chop(ctx: Any, a: list, length: int) -> None:
    if length <= 0:
        a.clear()
    elif length < len(a):
        del a[: len(a) - length]


@register("reverse", ARRAY, mutates=True)
def _reverse(ctx: Any, a: list) -> None:
    a.reverse()


# ---- slices ----


def _extract(a: list, start: int, count: int) -> list:
    if not a or count <= 0:
        return []
    start, count = offset_len(len(a), start, count)
    return [copy_out(v) for v in a[start : start + count]]


@register("extract", ARRAY, INT, INT)
def _extract_len(ctx: Any, a: list, start: int, count: int) -> list:
    return _extract(a, start, count)


@register("extract", ARRAY, INT)
def _extract_tail(ctx: Any, a: list, start: int) -> list:
    return _extract(a, start, INT_MAX)


@register("extract", ARRAY, RANGE)
def _extract_range(ctx: Any, a: list, r: Range) -> list:
    return _extract(a, *range_window(r))


@register("split", ARRAY, INT, mutates=True)
def _split(ctx: Any, a: list, index: int) -> list:
    if not a:
        return []
    start, _ = offset_len(len(a), index, INT_MAX)
    tail = a[start:]
    del a[start:]
    return tail


def _drain_window(a: list, start: int, count: int) -> list:
    if not a or count <= 0:
        return []
    start, count = offset_len(len(a), start, count)
    out = a[start : start + count]
    del a[start : start + count]
    return out


def _retain_window(a: list, start: int, count: int) -> list:
    if not a or count <= 0:
        return []
    start, count = offset_len(len(a), start, count)
    if count == 0:
        return []  # unlike BLOBs, Rhai leaves an array alone when the window is empty
    out = a[:start] + a[start + count :]
    a[:] = a[start : start + count]
    return out


def _by_filter(ctx: Any, a: list, fn: FnPtr, keep_matches: bool) -> list:
    """Split `a` by the filter; `a` keeps one side, the other side is returned."""
    call = make_item_caller(ctx, fn)
    kept: list = []
    out: list = []
    for i, item in enumerate(a):
        hit = truthy(call(item, i))
        (kept if hit == keep_matches else out).append(item)
    a[:] = kept
    return out


@register("drain", ARRAY, FNPTR, mutates=True)
def _drain_fn(ctx: Any, a: list, fn: FnPtr) -> list:
    return _by_filter(ctx, a, fn, keep_matches=False)


@register("drain", ARRAY, INT, INT, mutates=True)
def _drain_len(ctx: Any, a: list, start: int, count: int) -> list:
    return _drain_window(a, start, count)


@register("drain", ARRAY, RANGE, mutates=True)
def _drain_range(ctx: Any, a: list, r: Range) -> list:
    return _drain_window(a, *range_window(r))


@register("retain", ARRAY, FNPTR, mutates=True)
def _retain_fn(ctx: Any, a: list, fn: FnPtr) -> list:
    return _by_filter(ctx, a, fn, keep_matches=True)


@register("retain", ARRAY, INT, INT, mutates=True)
def _retain_len(ctx: Any, a: list, start: int, count: int) -> list:
    return _retain_window(a, start, count)


@register("retain", ARRAY, RANGE, mutates=True)
def _retain_range(ctx: Any, a: list, r: Range) -> list:
    return _retain_window(a, *range_window(r))


def _splice(a: list, start: int, count: int, replace: list) -> None:
    if not a:
        a[:] = map(copy_out, replace)
        return
    start, count = offset_len(len(a), start, count)
    a[start : start + count] = map(copy_out, replace)


@register("splice", ARRAY, INT, INT, ARRAY, mutates=True)
def _splice_len(ctx: Any, a: list, start: int, count: int, replace: list) -> None:
    _splice(a, start, count, replace)


@register("splice", ARRAY, RANGE, ARRAY, mutates=True)
def _splice_range(ctx: Any, a: list, r: Range, replace: list) -> None:
    _splice(a, *range_window(r), replace)


@register("dedup", ARRAY, mutates=True)
def _dedup(ctx: Any, a: list) -> None:
    if len(a) < 2:
        return
    out = [a[0]]
    for item in a[1:]:
        if not equals(out[-1], item):
            out.append(item)
    a[:] = out


@register("dedup", ARRAY, FNPTR, mutates=True)
def _dedup_fn(ctx: Any, a: list, fn: FnPtr) -> None:
    if len(a) < 2:
        return
    call_fn = ctx.call_fn
    out = [a[0]]
    for item in a[1:]:
        try:
            same = truthy(call_fn(fn, [out[-1], item]))
        except RhaiError:
            same = False
        if not same:
            out.append(item)
    a[:] = out


# ---- searching ----


@register("contains", ARRAY, ANY)
def _contains(ctx: Any, a: list, value: Any) -> bool:
    t = type(value)
    if t is int or t is str or t is bool:
        for item in a:
            if type(item) is t and item == value:
                return True
            if t is int and type(item) is float and equals(item, value):
                return True
        return False
    return any(equals(item, value) for item in a)


def _start_of(a: list, start: int) -> int:
    return offset_len(len(a), start, 0)[0]


def _find_index(ctx: Any, a: list, fn: FnPtr, start: int) -> int:
    call = make_item_caller(ctx, fn)
    for i in range(_start_of(a, start), len(a)):
        if truthy(call(a[i], i)):
            return i
    return -1


@register("index_of", ARRAY, FNPTR)
def _index_of_fn(ctx: Any, a: list, fn: FnPtr) -> int:
    return _find_index(ctx, a, fn, 0)


@register("index_of", ARRAY, FNPTR, INT)
def _index_of_fn_from(ctx: Any, a: list, fn: FnPtr, start: int) -> int:
    return _find_index(ctx, a, fn, start)


_FN_NAME = re.compile(r"_*[A-Za-z][A-Za-z0-9_]*")


def _index_of_name(ctx: Any, a: list, name: str, start: int) -> int:
    """Rhai's deprecated `index_of("fn_name")`: the named function is the filter; when no
    function of that name takes the items, the string is searched for as a value."""
    if a and _FN_NAME.fullmatch(name):
        try:
            return _find_index(ctx, a, FnPtr(name), start)
        except RhaiError as e:
            inner = e.inner if e.kind == "ErrorInFunctionCall" and e.inner is not None else e
            if inner.kind != "ErrorFunctionNotFound" or not str(
                inner.details.get("function", "")
            ).startswith(name):
                raise
    return _index_of_value(a, name, start)


@register("index_of", ARRAY, STR)
def _index_of_str(ctx: Any, a: list, name: str) -> int:
    return _index_of_name(ctx, a, name, 0)


@register("index_of", ARRAY, STR, INT)
def _index_of_str_from(ctx: Any, a: list, name: str, start: int) -> int:
    return _index_of_name(ctx, a, name, start)


def _index_of_value(a: list, value: Any, start: int) -> int:
    for i in range(_start_of(a, start), len(a)):
        if equals(a[i], value):
            return i
    return -1


@register("index_of", ARRAY, ANY)
def _index_of(ctx: Any, a: list, value: Any) -> int:
    return _index_of_value(a, value, 0)


@register("index_of", ARRAY, ANY, INT)
def _index_of_from(ctx: Any, a: list, value: Any, start: int) -> int:
    return _index_of_value(a, value, start)


@register("find", ARRAY, FNPTR)
def _find(ctx: Any, a: list, fn: FnPtr) -> Any:
    i = _find_index(ctx, a, fn, 0)
    return None if i < 0 else copy_out(a[i])


@register("find", ARRAY, FNPTR, INT)
def _find_from(ctx: Any, a: list, fn: FnPtr, start: int) -> Any:
    i = _find_index(ctx, a, fn, start)
    return None if i < 0 else copy_out(a[i])


def _find_map(ctx: Any, a: list, fn: FnPtr, start: int) -> Any:
    call = make_item_caller(ctx, fn)
    for i in range(_start_of(a, start), len(a)):
        result = call(a[i], i)
        if result is not None:
            return result
    return None


@register("find_map", ARRAY, FNPTR)
def _find_map_all(ctx: Any, a: list, fn: FnPtr) -> Any:
    return _find_map(ctx, a, fn, 0)


@register("find_map", ARRAY, FNPTR, INT)
def _find_map_from(ctx: Any, a: list, fn: FnPtr, start: int) -> Any:
    return _find_map(ctx, a, fn, start)


@register("some", ARRAY, FNPTR)
def _some(ctx: Any, a: list, fn: FnPtr) -> bool:
    call = make_item_caller(ctx, fn)
    return any(truthy(call(item, i)) for i, item in enumerate(a))


@register("all", ARRAY, FNPTR)
def _all(ctx: Any, a: list, fn: FnPtr) -> bool:
    call = make_item_caller(ctx, fn)
    return all(truthy(call(item, i)) for i, item in enumerate(a))


# ---- functional ----


@register("map", ARRAY, FNPTR)
def _map(ctx: Any, a: list, fn: FnPtr) -> list:
    direct = unary_entry(ctx, fn)
    if direct is not None:
        compiled, depth = direct
        return [compiled(None, depth, None, item) for item in a]
    if arity(ctx, fn) == 1:  # the common `|x| ...`, without the per-item adapter
        call = caller(ctx, fn)
        return [call([item], item) for item in a]
    call_item = make_item_caller(ctx, fn)
    return [call_item(item, i) for i, item in enumerate(a)]


@register("filter", ARRAY, FNPTR)
def _filter(ctx: Any, a: list, fn: FnPtr) -> list:
    direct = unary_entry(ctx, fn)
    if direct is not None:
        compiled, depth = direct
        # kept containers are copied (Rhai copies on read); scalars need no call
        return [
            copy_out(item) if type(item) in COPIED else item
            for item in a
            if compiled(None, depth, None, item) is True
        ]
    if arity(ctx, fn) == 1:
        call = caller(ctx, fn)
        return [copy_out(item) for item in a if call([item], item) is True]
    call_item = make_item_caller(ctx, fn)
    return [copy_out(item) for i, item in enumerate(a) if call_item(item, i) is True]


@register("for_each", ARRAY, FNPTR, mutates=True)
def _for_each(ctx: Any, a: list, fn: FnPtr) -> None:
    """`|| ...` and `|i| ...` see the item as `this` and may change it; `|x, i|` get copies.

    Changing `this` needs the engine's `ctx.call_fn_this(fnptr, args, this)`, which returns
    `(result, this_after)`; without it the items stay as they are.
    """
    n = arity(ctx, fn)
    call_this = getattr(ctx, "call_fn_this", None)
    if n is None:
        call = method_style(caller(ctx, fn), fn)
        for i, item in enumerate(a):
            call(item, i)
        return
    if n == 2:
        for i, item in enumerate(a):
            ctx.call_fn(fn, [item, i], item)
        return
    for i, item in enumerate(a):
        args = [] if n == 0 else [i]
        if call_this is None:
            ctx.call_fn(fn, args, item)
        else:
            a[i] = call_this(fn, args, item)[1]


@register("reduce", ARRAY, FNPTR)
def _reduce(ctx: Any, a: list, fn: FnPtr) -> Any:
    return _reduce_init(ctx, a, fn, None)


@register("reduce", ARRAY, FNPTR, ANY)
def _reduce_init(ctx: Any, a: list, fn: FnPtr, acc: Any) -> Any:
    call = make_pair_caller(ctx, fn, item_as_this=True)
    for i, item in enumerate(a):
        acc = call(acc, item, i)
    return acc


@register("reduce_rev", ARRAY, FNPTR)
def _reduce_rev(ctx: Any, a: list, fn: FnPtr) -> Any:
    return _reduce_rev_init(ctx, a, fn, None)


@register("reduce_rev", ARRAY, FNPTR, ANY)
def _reduce_rev_init(ctx: Any, a: list, fn: FnPtr, acc: Any) -> Any:
    call = make_pair_caller(ctx, fn, item_as_this=True)
    for i in range(len(a) - 1, -1, -1):
        acc = call(acc, a[i], i)
    return acc


@register("zip", ARRAY, ARRAY, FNPTR)
def _zip(ctx: Any, a: list, b: list, fn: FnPtr) -> list:
    call = make_pair_caller(ctx, fn)
    return [call(x, y, i) for i, (x, y) in enumerate(zip(a, b, strict=False))]


# ---- sorting ----

_SORTABLE = frozenset({int, float, bool, str, Char})


def _unsortable(what: str) -> RhaiError:
    return RhaiError("ErrorFunctionNotFound", f"Function not found: {what}", function=what)


def sort_builtin(a: list, descending: bool) -> None:
    """`sort()`: elements of one built-in type in natural order; anything else is an error."""
    if len(a) < 2:
        return
    t = type(a[0])
    for item in a:
        if type(item) is not t:
            raise _unsortable("elements of different types cannot be sorted")
    if t is type(None):
        return
    if t not in _SORTABLE:
        raise _unsortable(f"elements of {type_name(a[0])} cannot be sorted")
    a.sort(reverse=descending)


def _comparer(ctx: Any, fn: FnPtr) -> Any:
    """A sort key from a comparison callback, read the way Rhai reads it.

    An INT result orders by its sign; `true` means "first goes before second" and `false` the
    opposite; any other result, or a (catchable) error, falls back to ordering by type, which
    leaves values of one type where they are. Limit errors still stop the sort.
    """
    call = caller(ctx, fn)

    def compare(x: Any, y: Any) -> int:
        try:
            result = call([x, y])
        except RhaiError as err:
            if not err.catchable:
                raise
            result = None
        t = type(result)
        if t is int:
            return result
        if t is bool:
            return -1 if result else 1
        tx, ty = type_name(x), type_name(y)
        return (tx > ty) - (tx < ty)

    return cmp_to_key(compare)


@register("sort", ARRAY, mutates=True)
def _sort(ctx: Any, a: list) -> None:
    sort_builtin(a, descending=False)


@register("sort_desc", ARRAY, mutates=True)
def _sort_desc(ctx: Any, a: list) -> None:
    sort_builtin(a, descending=True)


@register(("sort", "sort_by"), ARRAY, FNPTR, mutates=True)
def _sort_fn(ctx: Any, a: list, fn: FnPtr) -> None:
    if len(a) > 1:
        a.sort(key=_comparer(ctx, fn))


@register("order", ARRAY)
def _order(ctx: Any, a: list) -> list:
    out = [copy_out(v) for v in a]
    sort_builtin(out, descending=False)
    return out


@register("order_desc", ARRAY)
def _order_desc(ctx: Any, a: list) -> list:
    out = [copy_out(v) for v in a]
    sort_builtin(out, descending=True)
    return out


@register(("order", "order_by"), ARRAY, FNPTR)
def _order_fn(ctx: Any, a: list, fn: FnPtr) -> list:
    out = [copy_out(v) for v in a]
    if len(out) > 1:
        out.sort(key=_comparer(ctx, fn))
    return out


# ---- a function name given as a string stands for `Fn(name)` ----


def _by_name(native: Any) -> Any:
    def by_name(ctx: Any, a: list, name: str, *rest: Any) -> Any:
        return native(ctx, a, FnPtr(name), *rest)

    return by_name


for _name, _native, _extra in (
    ("map", _map, ()),
    ("filter", _filter, ()),
    ("for_each", _for_each, ()),
    ("some", _some, ()),
    ("all", _all, ()),
    ("find", _find, ()),
    ("find", _find_from, (INT,)),
    ("find_map", _find_map_all, ()),
    ("find_map", _find_map_from, (INT,)),
    ("reduce", _reduce, ()),
    ("reduce", _reduce_init, (ANY,)),
    ("reduce_rev", _reduce_rev, ()),
    ("reduce_rev", _reduce_rev_init, (ANY,)),
    ("drain", _drain_fn, ()),
    ("retain", _retain_fn, ()),
    ("dedup", _dedup_fn, ()),
    ("sort", _sort_fn, ()),
):
    _mutating = _name in {"for_each", "drain", "retain", "dedup", "sort"}
    register(_name, ARRAY, STR, *_extra, mutates=_mutating)(_by_name(_native))
