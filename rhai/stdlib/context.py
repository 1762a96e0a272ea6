"""What natives need from the engine's call context, and shared helpers for using it.

The engine passes a `ctx` with `call_fn(fnptr, args, this=NO_THIS)`, `fn_arity(fnptr)` and
`engine` (carrying `max_string_size`, `max_array_size`, `max_map_size`; 0 = unlimited).
Optional extras the stdlib uses when present: `caller(fnptr)` returning a fast
`call(args, this=NO_THIS)`, `unary_entry(fnptr)` (see `unary_entry` below), and
`call_fn_this(fnptr, args, this)` returning `(result, this_after)`.
"""

from __future__ import annotations

from typing import Any

from rhai.errors import RhaiError
from rhai.values import FnPtr, deep_copy


class _NoThis:
    """Sentinel: call a function pointer without binding `this`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_THIS"


NO_THIS: Any = _NoThis()

#: The values `copy_out` copies (every other value is immutable or shared on purpose).
COPIED = (list, dict, bytearray)


def copy_out(value: Any) -> Any:
    """A value handed out of a container that keeps its own copy (Rhai copies on read)."""
    return deep_copy(value) if type(value) in COPIED else value


def limit(ctx: Any, name: str) -> int:
    """An engine size limit (`max_string_size`, ...), 0 when unlimited or unknown."""
    return getattr(getattr(ctx, "engine", None), name, 0) or 0


def too_large(what: str) -> RhaiError:
    return RhaiError("ErrorDataTooLarge", f"{what} exceeds maximum limit", what=what)


def check_string_size(ctx: Any, n_bytes: int) -> None:
    """Refuse a string of `n_bytes` UTF-8 bytes before building it."""
    cap = limit(ctx, "max_string_size")
    if cap and n_bytes > cap:
        raise too_large("Length of string")


def check_array_size(ctx: Any, n: int, what: str = "Size of array") -> None:
    """Refuse an array or BLOB of `n` items before building it."""
    cap = limit(ctx, "max_array_size")
    if cap and n > cap:
        raise too_large(what)


def arity(ctx: Any, fn: FnPtr) -> int | None:
    """How many arguments the callable still expects, or None when the engine cannot tell."""
    getter = getattr(ctx, "fn_arity", None)
    return getter(fn) if getter is not None else None


def caller(ctx: Any, fn: FnPtr) -> Any:
    """A `call(args, this=NO_THIS)` for repeated calls of one function pointer.

    Uses the engine's optional `ctx.caller(fnptr)` fast path (resolved once per pointer) when it
    offers one, else `ctx.call_fn`.
    """
    make = getattr(ctx, "caller", None)
    if make is not None:
        return make(fn)
    call_fn = ctx.call_fn
    return lambda args, this=NO_THIS: call_fn(fn, args, this)


def unary_entry(ctx: Any, fn: FnPtr) -> tuple[Any, int] | None:
    """`(compiled, depth)` for a one-parameter closure that does not use `this`, when the
    engine offers it (`ctx.unary_entry`), else None: `map`/`filter` then call
    `compiled(None, depth, None, item)` in their own loop, without an argument list or an
    adapter function per item (an adapter's frame cost as much as the closure's body)."""
    make = getattr(ctx, "unary_entry", None)
    return make(fn) if make is not None else None


def make_item_caller(ctx: Any, fn: FnPtr) -> Any:
    """A `call(item, index)` for array callbacks: `|x|` gets the item, `|x, i|` the index too.

    `this` is bound to the item as well, so `|| this` and `|x| this` see it.
    """
    n = arity(ctx, fn)
    call = caller(ctx, fn)
    if n == 2:
        return lambda item, i: call([item, i], item)
    if n == 1:
        return lambda item, i: call([item], item)
    if n == 0:
        return lambda item, i: call([], item)
    return method_style(call, fn)


def method_style(call: Any, fn: FnPtr) -> Any:
    """Rhai's fallback when the arity is unknown (e.g. a native such as `Fn("to_string")`):
    call with the item as `this` (the first argument of a native), then, if no such function
    exists, again with the index as an argument.
    """

    def call_item(item: Any, i: int) -> Any:
        try:
            return call([], item)
        except RhaiError as err:
            signature = str(err.details.get("function", ""))
            if err.kind != "ErrorFunctionNotFound" or not signature.startswith(fn.name + " "):
                raise
        return call([i], item)

    return call_item


def make_pair_caller(ctx: Any, fn: FnPtr, item_as_this: bool = False) -> Any:
    """A `call(a, b, index)` for callbacks taking two values and optionally an index.

    With `item_as_this` (reduce), a one-parameter callable gets `a` with `b` bound to `this`.
    """
    n = arity(ctx, fn)
    call = caller(ctx, fn)
    if n == 3:
        return lambda a, b, i: call([a, b, i])
    if n == 1 and item_as_this:
        return lambda a, b, i: call([a], b)
    return lambda a, b, i: call([a, b])


def truthy(value: Any) -> bool:
    """Rhai's `as_bool().unwrap_or(false)`: only a real `true` counts."""
    return value is True
