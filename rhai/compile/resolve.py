"""Name resolution: binds every variable use to its declaration before any code is generated.

The resolver walks the syntax tree once and annotates it in place: `var` nodes get their `Decl`,
blocks their `BlockScope`, functions and closures their `Frame`, closures the list of cells they
capture. Code generation then only reads these annotations, so a variable that a later closure
captures (or that a later `f!()`/`eval` call site exposes) is a `Shared` cell from the moment it
is declared, and the INT inference (rhai/compile/int_types.py) sees every write of a variable.
"""

from __future__ import annotations

from typing import Any

from ..ast import Node
from ..errors import RhaiError
from ..parser import parse_error


class Decl:
    """One declared variable: its Python name and what the resolver learned about it."""

    __slots__ = (
        "arith_use",
        "captured",
        "const",
        "exposed",
        "home",
        "kind",
        "mutated",
        "name",
        "pyname",
        "writes",
    )

    def __init__(self, name: str, pyname: str, const: bool) -> None:
        self.name = name
        self.pyname = pyname
        self.const = const
        self.captured = False
        # seen by an `f!()`/`eval`/`is_def_var` call site: registered in `home`'s VarScope
        self.exposed = False
        self.home: BlockScope | None = None
        # for INT inference: how the variable gets its values
        self.kind = "let"
        self.writes: list[tuple[str, Node | None]] = []
        self.mutated = False
        self.arith_use = False

    @property
    def boxed(self) -> bool:
        """Lives in a `Shared` cell: captured by a closure, or an exposed variable (an exposed
        constant never changes, so its value is registered as it is)."""
        return self.captured or (self.exposed and not self.const)


class BlockScope(dict):
    """One block's declarations (name -> Decl) while resolving; see rhai/callerscope.py.

    `var` names the block's run-time VarScope, created only when a call site exposes one of
    the block's variables (or, for a closure's outermost block, its captures)."""

    def __init__(self, parent: BlockScope | None) -> None:
        super().__init__()
        self.parent = parent
        self.decls: list[Decl] = []
        self.exposed = 0  # decls[:exposed] are exposed already
        self.var: str | None = None


class Frame:
    """Resolver state for one function, closure or the main body."""

    def __init__(self, kind: str, closure: Node | None, parent: Frame | None) -> None:
        self.kind = kind
        self.closure = closure
        self.parent = parent
        self.scopes: list[BlockScope] = [BlockScope(None)]
        self.decls: list[Decl] = []
        # scopes (by id) whose `eval` calls may have declared variables, and their dict names
        self.eval_dicts: dict[int, str] = {}
        self.has_eval = False
        self.uses_this = False


class Resolver:
    """Binds every variable use to its declaration and finds what closures capture.

    Runs before code generation so a variable that a later closure captures is a `Shared`
    cell from the moment it is declared.
    """

    def __init__(self, script_fns: frozenset[tuple[str, int]] = frozenset()) -> None:
        self.counter = 0
        # (name, arity) of the script's functions: a method call to one binds `this` to the
        # target variable, which the function may set to a value of any type
        self.script_fns = script_fns
        self.frame: Frame | None = None
        self.top_decls: list[Decl] = []
        self.bang_keys: set[tuple[str, int]] = set()
        self.bang_all = False

    def new_decl(self, name: str, const: bool) -> Decl:
        self.counter += 1
        return Decl(name, f"v{self.counter}_{name}", const)

    def declare(self, name: str, const: bool = False) -> Decl:
        d = self.new_decl(name, const)
        assert self.frame is not None
        self.frame.scopes[-1][name] = d
        self.frame.scopes[-1].decls.append(d)
        self.frame.decls.append(d)
        if self.frame.kind == "main" and len(self.frame.scopes) == 1:
            self.top_decls.append(d)
        return d

    def expose(self) -> BlockScope:
        """A call site handing its scope to `f!()`, `call!()`, `eval` or `is_def_var`: every
        variable declared so far in the enclosing blocks of this function (or closure) gets a
        cell in its block's VarScope. Returns the innermost block. Each declaration is exposed
        at most once, so this is linear in the script however many call sites there are.
        A closure sees its own variables and what it captures, as in Rhai."""
        f = self.frame
        assert f is not None
        for scope in f.scopes:
            if scope.exposed < len(scope.decls):
                for d in scope.decls[scope.exposed :]:
                    d.exposed = True
                    d.mutated = True
                    d.home = scope
                scope.exposed = len(scope.decls)
                self.scope_var(scope)
        if f.closure is not None:
            self.scope_var(f.scopes[0])
        return f.scopes[-1]

    def scope_var(self, scope: BlockScope) -> None:
        if scope.var is None:
            self.counter += 1
            scope.var = f"_S{self.counter}"

    def count_vars(self) -> int:
        assert self.frame is not None
        return sum(len(s) for s in self.frame.scopes)

    def lookup(self, name: str) -> Decl | None:
        f = self.frame
        crossed: list[Frame] = []
        while f is not None:
            for scope in reversed(f.scopes):
                d = scope.get(name)
                if d is not None:
                    if crossed:
                        d.captured = True
                        for c in crossed:
                            caps = c.closure.captures  # type: ignore[union-attr]
                            if d not in caps:
                                caps.append(d)
                    return d
            if f.closure is None:
                return None
            crossed.append(f)
            f = f.parent
        return None

    def eval_dicts_before(self, name: str) -> list[str]:
        """Dicts of `eval`-declared variables that could shadow `name` here, innermost first."""
        f = self.frame
        assert f is not None
        out = []
        for scope in reversed(f.scopes):
            if name in scope:
                break
            dn = f.eval_dicts.get(id(scope))
            if dn is not None:
                out.append(dn)
        return out

    def run_frame(self, kind: str, closure: Node | None, params: list[str], body: Node) -> list:
        saved = self.frame
        self.frame = Frame(kind, closure, saved if closure is not None else None)
        decls = [self.declare(p) for p in params]
        for d in decls:
            d.kind = "param"
        if kind == "main":
            for s in body.stmts:
                self.walk(s)
        else:
            self.walk(body)
        frame = self.frame
        self.frame = saved
        return [decls, frame]

    def walk(self, n: Any) -> None:
        if n is None:
            return
        k = n.kind
        f = self.frame
        assert f is not None
        if k in ("const", "unit", "continue"):
            return
        if k == "this":
            f.uses_this = True
            return
        if k == "var":
            n.decl = None if n.global_ else self.lookup(n.name)
            n.evdicts = self.eval_dicts_before(n.name) if f.eval_dicts else []
            return
        if k == "array":
            for x in n.items:
                self.walk(x)
        elif k == "map":
            for _, x in n.items:
                self.walk(x)
        elif k == "istr":
            for x in n.parts:
                if not isinstance(x, str):
                    self.walk(x)
        elif k == "unary":
            self.walk(n.operand)
        elif k in ("binary", "and", "or", "coalesce", "range"):
            self.walk(n.left)
            self.walk(n.right)
            if k == "binary":
                for side in (n.left, n.right):
                    if side.kind == "var" and side.decl is not None:
                        side.decl.arith_use = True
        elif k == "index":
            self.walk(n.target)
            self.walk(n.index)
        elif k == "prop":
            self.walk(n.target)
        elif k == "call":
            for x in n.args:
                self.walk(x)
            if n.name == "eval":
                f.has_eval = True
                n.env_scope = self.expose()
                n.top_level = len(f.scopes) == 1 and f.closure is None
                n.eval_dict = None
                if not n.top_level:
                    self.counter += 1
                    n.eval_dict = f.eval_dicts.setdefault(id(f.scopes[-1]), f"_EV{self.counter}")
            if n.name == "take" and n.args:
                root = _root_var(n.args[0])
                if root is not None:
                    root.mutated = True
            if n.name == "is_def_var":
                n.env_scope = self.expose()
            if n.bang:
                # `f!(..)` runs in the caller's scope: it may read and write any visible variable
                n.env_scope = self.expose()
                self.bang_keys.add((n.name, len(n.args)))
                if n.name == "call":
                    self.bang_all = True
        elif k == "method":
            self.walk(n.target)
            for x in n.args:
                self.walk(x)
            if n.name == "call" or (n.name, len(n.args)) in self.script_fns:
                root = _root_var(n.target)
                if root is not None:
                    root.mutated = True
        elif k == "closure":
            n.captures = []
            decls, frame = self.run_frame("closure", n, n.params, n.body)
            n.param_decls = decls
            n.frame = frame
        elif k == "block":
            n.vscope = BlockScope(f.scopes[-1])
            f.scopes.append(n.vscope)
            for s in n.stmts:
                self.walk(s)
            f.scopes.pop()
        elif k == "if":
            self.walk(n.cond)
            self.walk(n.then)
            self.walk(n.other)
        elif k == "switch":
            self.walk(n.subject)
            for _, guard, body in n.cases:
                self.walk(guard)
                self.walk(body)
            self.walk(n.default)
        elif k in ("while", "do"):
            self.walk(n.cond)
            self.walk(n.body)
        elif k == "loop":
            self.walk(n.body)
        elif k == "for":
            self.walk(n.iterable)
            n.vscope = BlockScope(f.scopes[-1])
            f.scopes.append(n.vscope)
            n.var_decl = self.declare(n.var)
            n.var_decl.kind = "for_range" if n.iterable.kind == "range" else "for"
            n.idx_decl = self.declare(n.index_var) if n.index_var else None
            if n.idx_decl is not None:
                n.idx_decl.kind = "for_range"
            n.nvars = self.count_vars()
            self.walk(n.body)
            f.scopes.pop()
        elif k == "try":
            self.walk(n.body)
            n.vscope = BlockScope(f.scopes[-1])
            f.scopes.append(n.vscope)
            n.err_decl = self.declare(n.err_var) if n.err_var else None
            self.walk(n.catch)
            f.scopes.pop()
        elif k == "let":
            self.walk(n.value)
            n.decl = self.declare(n.name, n.const)
            n.decl.writes.append(("=", n.value))
            n.nvars = self.count_vars()
        elif k == "assign":
            self.walk(n.target)
            self.walk(n.value)
            t = n.target
            if t.kind == "var" and t.decl is not None:
                t.decl.writes.append((n.op, n.value))
                if n.op == "=" and n.value.kind in ("array", "map"):
                    _mark_no_copy(n.value, t.decl)
            else:
                root = _root_var(t)
                if root is not None:
                    root.mutated = True
            if t.kind == "var" and t.decl is not None and t.decl.const:
                raise parse_error(
                    "AssignmentToConstant",
                    f"Cannot assign to constant '{t.name}'",
                    t.pos,
                )
        elif k == "expr":
            self.walk(n.expr)
        elif k in ("break", "return", "throw"):
            self.walk(n.value)
        else:
            raise RhaiError("ErrorSystem", f"resolver: unknown node {k}")


def _mark_no_copy(literal: Node, decl: Decl) -> None:
    """`x = [x]`: the old value of `x` is dropped, so its one use in the literal needs no copy."""
    items = literal.items if literal.kind == "array" else [v for _, v in literal.items]
    uses = [i for i in items if i.kind == "var" and i.decl is decl]
    if len(uses) == 1 and not _mentions(items, decl, uses[0]):
        uses[0].no_copy = True


def _mentions(node: Any, decl: Decl, skip: Node) -> bool:
    if isinstance(node, Node):
        if node is skip:
            return False
        if node.kind == "var" and node.decl is decl:
            return True
        if node.kind == "closure":
            return decl in node.captures
        return any(
            _mentions(v, decl, skip)
            for k, v in node.__dict__.items()
            if k not in ("decl", "env_scope", "frame", "param_decls", "captures")
        )
    if isinstance(node, (list, tuple)):
        return any(_mentions(v, decl, skip) for v in node)
    return False


def _root_var(node: Node) -> Decl | None:
    while node.kind in ("index", "prop"):
        node = node.target
    return node.decl if node.kind == "var" else None
