"""Function-pointer properties (Rhai's fn_basic package): `f.name` and `f.is_anonymous`.

Calling, currying and `Fn(...)` itself belong to the engine.
"""

from __future__ import annotations

from typing import Any

from rhai.values import FnPtr

from .registry import FNPTR, register


@register(("name", "get$name"), FNPTR)
def _name(ctx: Any, f: FnPtr) -> str:
    return f.name


@register(("is_anonymous", "get$is_anonymous"), FNPTR)
def _is_anonymous(ctx: Any, f: FnPtr) -> bool:
    return f.is_anonymous
