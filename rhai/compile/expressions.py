"""Expressions: literals, variables, collections, interpolated strings, indexing, properties
and `&&`/`||`/`??`; operators are in rhai/compile/operators.py and calls in
rhai/compile/calls.py.

Each generator returns the Python code of the value and its static type when known ("int",
"float", "bool", "str", ...), which lets operators skip type checks.
"""

from __future__ import annotations

from typing import Any

from ..ast import Node
from ..errors import RhaiError
from ..values import Char
from .pycode import LITERAL, MEM_CHUNK, SIMPLE

_TYPE_OF_CONST = {int: "int", float: "float", bool: "bool", str: "str", Char: "char"}


def branches_type(n: Node) -> str | None:
    """The static type of `if c { lit } else { lit }` whose two literals share a type (so
    `s += if c { "x" } else { "y" }` compiles to a plain string append)."""
    types = set()
    for branch in (n.then, n.other):
        if branch is None or branch.kind != "block" or len(branch.stmts) != 1:
            return None
        stmt = branch.stmts[0]
        if stmt.kind != "expr" or stmt.expr.kind != "const":
            return None
        types.add(_TYPE_OF_CONST.get(type(stmt.expr.value)))
    return types.pop() if len(types) == 1 else None


def safe_link(n: Node) -> Node | None:
    """The `?.`/`?[` link of an index/property/method chain nearest its root, if any."""
    found = None
    while n.kind in ("index", "prop", "method"):
        if n.safe:
            found = n
        n = n.target
    return found


class ExpressionGen:
    """Expressions other than operators and calls.

    Mixed into `FnGen` (rhai/compiler.py), whose emission helpers and state it uses."""

    def expr(self, n: Node) -> tuple[str, str | None]:
        k = n.kind
        if k in ("index", "prop", "method"):
            link = safe_link(n)
            if link is not None:
                return self.elvis(n, link)
        if k == "py":
            return n.code, None
        if k == "const":
            return self.literal(n.value)
        if k == "unit":
            return "None", "unit"
        if k == "var":
            if getattr(n, "evdicts", None):
                dicts = "(" + "".join(d + ", " for d in n.evdicts) + ")"
                t = self.tmp()
                return (
                    f"({t}[{n.name!r}] if ({t} := _ev_find({dicts}, {n.name!r})) is not None "
                    f"else {self.read_var(n)})",
                    None,
                )
            return self.read_var(n), ("int" if n.decl in self.ints else None)
        if k == "this":
            return f"_this(T, {n.pos!r})", None
        if k == "binary":
            return self.binary(n)
        if k in ("and", "or"):
            return self.logic(n)
        if k == "coalesce":
            left, _ = self.expr(n.left)
            t = self.tmp()
            lines, right = self.capture(lambda: self.expr(n.right)[0])
            if not lines:
                return f"({right} if ({t} := {left}) is None else {t})", None
            self.emit(f"{t} = {left}")
            self.emit(f"if {t} is None:")
            self.put(lines)
            self.emit(f"    {t} = {right}")
            return t, None
        if k == "unary":
            code, t = self.expr(n.operand)
            if n.op == "-":
                if t == "float":
                    return f"(-{code})", "float"
                return f"_neg({code}, {n.pos!r})", ("int" if t == "int" else None)
            if n.op == "+":
                return f"_plus({code}, {n.pos!r})", t
            if t == "bool":
                return f"(not {code})", "bool"
            return f"_not({code}, {n.pos!r})", "bool"
        if k == "range":
            a, b = self.exprs_in_order([n.left, n.right])
            return f"_make_range({a}, {b}, {n.inclusive}, {n.pos!r})", "range"
        if k == "array":
            items = self.exprs_in_order(n.items)
            items = [
                f"_cp({c})"
                if node.kind in ("var", "index", "prop", "this")
                and not getattr(node, "no_copy", False)
                else c
                for c, node in zip(items, n.items, strict=True)
            ]
            code = "[" + ", ".join(items) + "]"
            if any(i.kind not in ("const", "unit") for i in n.items):
                code = f"_rt.check_deep({code}, {n.pos!r})"
            return code, "array"
        if k == "map":
            values = self.exprs_in_order([v for _, v in n.items])
            parts = []
            for (key, node), c in zip(n.items, values, strict=True):
                if node.kind in ("var", "index", "prop", "this") and not getattr(
                    node, "no_copy", False
                ):
                    c = f"_cp({c})"
                parts.append(f"{key!r}: {c}")
            code = "{" + ", ".join(parts) + "}"
            if any(v.kind not in ("const", "unit") for _, v in n.items):
                code = f"_rt.check_deep({code}, {n.pos!r})"
            return code, "map"
        if k == "istr":
            parts = []
            for part in n.parts:
                if isinstance(part, str):
                    parts.append(repr(part))
                    continue
                self.open_scope(part.vscope)
                if len(part.stmts) == 1 and part.stmts[0].kind == "expr":
                    v, vt = self.expr(part.stmts[0].expr)
                    t = self.tmp()
                    if vt == "int":
                        self.emit(f"{t} = str({v})")
                    elif vt == "str":
                        self.emit(f"{t} = {v}")
                    else:
                        self.emit(f"{t} = _interp({v})")
                    parts.append(t)
                else:
                    v = self.block_value(part.stmts)
                    t = self.tmp()
                    self.emit(f"{t} = _interp({v})")
                    parts.append(t)
            cap = self.unit.engine.max_string_size
            joined = " + ".join(parts) if parts else "''"
            if self.max_memory:
                self.uses_m = True
                s = self.tmp()
                lim = min(MEM_CHUNK, cap // 4) if cap else MEM_CHUNK
                return (
                    f"({s} if (_m := _m + len({s} := {joined})) <= {lim} "
                    f"else _rt.mem_str({s}, _m, {n.pos!r}, (_m := 0)))",
                    "str",
                )
            if not cap:
                return f"({joined})", "str"
            s = self.tmp()
            return (
                f"({s} if len({s} := {joined}) <= {cap // 4} else _rt.check_size({s}, {n.pos!r}))",
                "str",
            )
        if k == "index":
            target, _ = self.expr(n.target)
            mark = (len(self.lines), self.indent)
            idx, it = self.expr(n.index)
            if len(self.lines) > mark[0]:
                target = self.spill_before(mark[0], mark[1], target)
            p = repr(n.pos)
            if it in ("str", "int") and (not LITERAL.match(target) or target.startswith("_t")):
                # inline map[string] / array[int]; the guard binds the operands first
                t1, t2 = target, idx
                if not SIMPLE.match(target):
                    t1 = self.spill_before(mark[0], mark[1], target)
                if not SIMPLE.match(idx):
                    t2 = self.tmp()
                    self.emit(f"{t2} = {idx}")
                g1 = f"type({t1})"
                if it == "str":
                    return f"({t1}.get({t2}) if {g1} is dict else _index({t1}, {t2}, {p}))", None
                return (
                    f"({t1}[{t2}] if {g1} is list and -len({t1}) <= {t2} < len({t1}) "
                    f"else _index({t1}, {t2}, {p}))",
                    None,
                )
            return f"_index({target}, {idx}, {p})", None
        if k == "prop":
            target, _ = self.expr(n.target)
            return f"_prop({target}, {n.name!r}, {n.pos!r})", None
        if k == "call":
            return self.call(n)
        if k == "method":
            return self.method(n)
        if k == "closure":
            return self.closure(n), "fn"
        if k == "if":
            return self.compound(n, want=True), branches_type(n)
        if k in ("block", "while", "loop", "do", "for", "switch", "try"):
            return self.compound(n, want=True), None
        raise RhaiError("ErrorSystem", f"compiler: unknown expression {k}")

    def elvis(self, n: Node, link: Node) -> tuple[str, str | None]:
        """A chain through `?.`/`?[`: `()` as a whole when the value before `link` is `()`.

        The rest of the chain is compiled with `link` made plain and, unless it starts at a
        variable (re-read, so mutating methods still write back), reading the value already
        computed; the tree is restored afterwards (a body may be compiled twice)."""
        base, _ = self.expr(link.target)
        t = self.tmp()
        r = self.tmp()
        self.emit(f"{t} = {base}")
        self.emit(f"{r} = None")
        self.emit(f"if {t} is not None:")
        saved = link.target
        if saved.kind not in ("var", "this"):
            link.target = Node("py", saved.pos, code=t)
        link.safe = False
        self.indent += 1
        try:
            code, _ = self.expr(n)
            self.emit(f"{r} = {code}")
        finally:
            self.indent -= 1
            link.target = saved
            link.safe = True
        return r, None

    def literal(self, v: Any) -> tuple[str, str | None]:
        t = type(v)
        if t is bool:
            return ("True" if v else "False"), "bool"
        if t is int:
            return (f"({v})" if v < 0 else repr(v)), "int"
        if t is float:
            if v != v or v in (float("inf"), float("-inf")):
                return self.unit.const(v), "float"
            return (f"({v!r})" if v < 0 or repr(v).startswith("-") else repr(v)), "float"
        if t is str:
            return repr(v), "str"
        return self.unit.const(v), _TYPE_OF_CONST.get(t)

    def logic(self, n: Node) -> tuple[str, str]:
        left = self.cond_code(n.left)
        if n.right.kind in ("const", "unit") and type(getattr(n.right, "value", None)) is not bool:
            # Rhai rejects a non-bool literal operand even when `&&`/`||` would short-circuit:
            # check the left side, then fail on the right one
            right, _ = self.expr(n.right)
            return f"({left} and False) or _cond({right}, {n.right.pos!r})", "bool"
        lines, right = self.capture(lambda: self.cond_code(n.right))
        if not lines:
            if n.kind == "and":
                return f"({right} if {left} else False)", "bool"
            return f"(True if {left} else {right})", "bool"
        t = self.tmp()
        self.emit(f"{t} = {left}")
        self.emit(f"if {'' if n.kind == 'and' else 'not '}{t}:")
        self.put(lines)
        self.emit(f"    {t} = {right}")
        return t, "bool"
