"""Reading, writing and declaring Rhai variables in generated code.

A variable is a Python local, a `Shared` cell when a closure captures it or a caller-scope
call site exposes it (see rhai/callerscope.py), or, when the resolver found no declaration,
a lookup in the dynamic variables of `eval` and the host's scope.
"""

from __future__ import annotations

from ..ast import Node
from .resolve import BlockScope, Decl


class VariableGen:
    """How variables and blocks' VarScopes appear in the generated code.

    Mixed into `FnGen` (rhai/compiler.py), whose emission helpers and state it uses."""

    def read_var(self, n: Node) -> str:
        d = n.decl
        if d is None:
            if n.global_:
                return f"_gconst(_GC, {n.name!r}, {n.pos!r})"
            if (n.name, 0) in self.unit.fn_names or any(
                name == n.name for name, _ in self.unit.fn_names
            ):
                return f"_FnPtr({n.name!r})"
            return f"_dget({self.dyn}, {n.name!r}, {n.pos!r})"
        if d.boxed:
            return f"{d.pyname}.value"
        return d.pyname

    def write_var(self, n: Node, value: str) -> None:
        d = n.decl
        if d is None:
            self.emit(f"_dset({self.dyn}, {n.name!r}, {value}, {n.pos!r})")
        elif d.boxed:
            self.emit(f"{d.pyname}.value = {value}")
        else:
            self.emit(f"{d.pyname} = {value}")

    def declare(self, d: Decl, value: str, pos: tuple[int, int], nvars: int) -> None:
        if self.max_vars and nvars > self.max_vars:
            self.emit(f"_rt.too_many_vars({pos!r})")
        if d.boxed:
            self.emit(f"{d.pyname} = _Shared({value})")
        else:
            self.emit(f"{d.pyname} = {value}")
        if d.const and self.kind == "main" and d in self.unit_top_decls:
            self.emit(f"_GC[{d.name!r}] = {d.pyname}{'.value' if d.boxed else ''}")
        self.register(d)

    def register(self, d: Decl) -> None:
        """An exposed variable's cell goes into its block's VarScope once it is declared."""
        if d.exposed:
            assert d.home is not None
            value = f"{d.pyname}.value" if d.boxed else d.pyname
            cell = f"_ConstCell({value})" if d.const else d.pyname
            self.emit(f"{d.home.var}[{d.name!r}] = {cell}")

    def open_scope(self, scope: BlockScope | None) -> None:
        """Entering a block whose variables are exposed: its VarScope starts empty."""
        if scope is not None and scope.var is not None:
            self.emit(f"{scope.var} = _VS({self.scope_ref(scope.parent)})")

    @staticmethod
    def scope_ref(scope: BlockScope | None) -> str:
        """The run-time VarScope nearest to `scope` (itself or an enclosing block)."""
        while scope is not None and scope.var is None:
            scope = scope.parent
        return "None" if scope is None else scope.var

    def caller_scope(self, n: Node, fresh: str = "") -> str:
        """What a call site hands over: one object, whatever the number of variables."""
        extra = f", {fresh}" if fresh else ""
        return f"_CS({self.scope_ref(n.env_scope)}, {self.dyn}{extra})"

    unit_top_decls: set[Decl] = set()
