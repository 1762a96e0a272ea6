"""The caller's variables as `f!()`, `call!()`, `eval` and `is_def_var` see them.

Script variables are Python locals, which nothing outside their function can reach by name.
Spelling every visible variable out at each such call site made the generated code grow with
variables times call sites (a 13 KB script compiled to gigabytes). Instead, a variable that one of
these call sites can see lives in a `Shared` cell, and the cell is registered by name in its
block's `VarScope` when its declaration runs; each block's `VarScope` links to the enclosing
one. A call site then hands over one object, `CallerScope(innermost VarScope, dynamic
variables)`, so the generated code is linear in the script and a callee reads and writes the
caller's variables through the cells, as Rhai's shared scope does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .values import Shared


class ConstCell:
    """A constant's value in a `VarScope`: readable, never written through a `CallerScope`."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class VarScope(dict):
    """name -> cell of one block's variables declared so far; `parent` is the enclosing block.

    Created each time the block is entered, so a loop body starts empty on every iteration
    and a variable declared later in the block is not visible before its declaration ran.
    """

    __slots__ = ("parent",)

    def __init__(self, parent: VarScope | None) -> None:
        super().__init__()
        self.parent = parent


class _ConstNames:
    """`name in scope.consts` for a `CallerScope`, without building a set per lookup."""

    __slots__ = ("scope",)

    def __init__(self, scope: CallerScope) -> None:
        self.scope = scope

    def __contains__(self, name: object) -> bool:
        return self.scope.is_const(name)

    def __iter__(self) -> Iterator[str]:
        return iter([name for name in self.scope if self.scope.is_const(name)])


class CallerScope:
    """A mapping over the caller's block variables (innermost first), then `dyn`.

    `dyn` holds variables the compiler could not see: the host's scope at the top level,
    `eval`-declared ones, or the scope of a caller further out. Names that exist nowhere are
    written to `fresh` (by default a private dict, so a `let` made by `eval` inside an `f!()`
    call ends with that call, as before).
    """

    __slots__ = ("dyn", "fresh", "scope")

    def __init__(self, scope: VarScope | None, dyn: Any, fresh: Any = None) -> None:
        self.scope = scope
        self.dyn = dyn
        self.fresh = {} if fresh is None else fresh

    def _cell(self, name: object) -> Shared | ConstCell | None:
        if type(name) is not str:
            return None
        s = self.scope
        while s is not None:
            cell = s.get(name)
            if cell is not None:
                return cell
            s = s.parent
        return None

    def __contains__(self, name: object) -> bool:
        if type(name) is not str:
            return False
        return self._cell(name) is not None or name in self.dyn or name in self.fresh

    def __getitem__(self, name: str) -> Any:
        cell = self._cell(name)
        if cell is not None:
            return cell.value
        if name in self.dyn:
            return self.dyn[name]
        return self.fresh[name]

    def __setitem__(self, name: str, value: Any) -> None:
        cell = self._cell(name)
        if type(cell) is Shared:
            cell.value = value
        elif cell is None:
            if name in self.dyn:
                self.dyn[name] = value
            else:
                self.fresh[name] = value

    def is_const(self, name: object) -> bool:
        cell = self._cell(name)
        if cell is not None:
            return type(cell) is ConstCell
        return name in getattr(self.dyn, "consts", ())

    @property
    def consts(self) -> _ConstNames:
        return _ConstNames(self)

    def statics(self) -> dict[str, Shared | ConstCell]:
        """The visible block variables by name (an inner one hides an outer one)."""
        out: dict[str, Shared | ConstCell] = {}
        s = self.scope
        while s is not None:
            for name, cell in s.items():
                out.setdefault(name, cell)
            s = s.parent
        return out

    def keys(self) -> list[str]:
        names = dict.fromkeys(self.fresh)
        names.update(dict.fromkeys(self.dyn))
        names.update(dict.fromkeys(self.statics()))
        return list(names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def items(self) -> list[tuple[str, Any]]:
        return [(name, self[name]) for name in self.keys()]


__all__ = ["CallerScope", "ConstCell", "VarScope"]
