"""Writes through variables and index/property paths: `=`, compound assignment, and the
write-back of natives that mutate their first argument (`Mut` results).

Rhai assigns values, not references: `a[1].x = v` reads the root variable `a`, updates a copy
along the path (`_rt.set_path`) and stores the root again, with inline fast paths for `x += e`
and `x[k] = v` on locals.
"""

from __future__ import annotations

from typing import Any

from ..ast import Node
from ..parser import parse_error
from .expressions import safe_link
from .pycode import LITERAL, MEM_CHUNK, SIMPLE, fits_i64


class AssignmentGen:
    """Assignment to variables, `this` and paths.

    Mixed into `FnGen` (rhai/compiler.py), whose emission helpers and state it uses."""

    def path_of(self, node: Node) -> tuple[Node, list[tuple[str, Any]]] | None:
        """Root variable and accessors of an index/property chain, or None."""
        acc: list[tuple[str, Any]] = []
        while node.kind in ("index", "prop"):
            acc.append(("i", node) if node.kind == "index" else ("p", node))
            node = node.target
        if node.kind not in ("var", "this"):
            return None
        acc.reverse()
        return node, acc

    def root_read(self, root: Node) -> str:
        if root.kind == "this":
            return f"_this(T, {root.pos!r})"
        return self.read_var(root)

    def root_write(self, root: Node, value: str, pos: tuple[int, int]) -> None:
        if root.kind == "this":
            self.emit(f"if T is None: _unbound({pos!r})")
            self.emit(f"T[0] = {value}")
            return
        if root.decl is not None and root.decl.const:
            self.emit(
                f"raise _err('ErrorAssignmentToConstant', "
                f"{('Cannot modify constant ' + root.name)!r}, {pos!r})"
            )
            return
        self.write_var(root, value)

    def path_keys(self, acc: list[tuple[str, Any]]) -> tuple[str, str]:
        kinds = "".join(a for a, _ in acc)
        keys = []
        for a, node in acc:
            if a == "p":
                keys.append(repr(node.name))
            else:
                code, _ = self.expr(node.index)
                if not LITERAL.match(code):
                    t = self.tmp()
                    self.emit(f"{t} = {code}")
                    code = t
                keys.append(code)
        return kinds, "(" + "".join(k + ", " for k in keys) + ")"

    def assign(self, s: Node) -> None:
        target = s.target
        op = s.op
        link = safe_link(target)
        if link is not None:
            self.assign_elvis(s, link)
            return
        if target.kind in ("var", "this"):
            if op == "=":
                value = self.stored(s.value)
            elif (
                op == "+="
                and target.kind == "var"
                and target.decl is not None
                and not target.decl.boxed
                and target.decl not in self.ints
                and not target.decl.const
            ):
                self.add_assign_local(target, s)
                return
            else:
                cur = self.root_read(target)
                if target.kind == "var" and target.decl is not None:
                    cur_t = "int" if target.decl in self.ints else None
                else:
                    t = self.tmp()
                    self.emit(f"{t} = {cur}")
                    cur = t
                    cur_t = None
                rhs, rt = self.expr(s.value)
                value = self.binop(op[:-1], cur, cur_t, rhs, rt, s.pos, in_place=True)
            self.root_write(target, value, s.pos)
            return
        path = self.path_of(target)
        if path is None:
            raise parse_error(
                "AssignmentToInvalidLHS", "Cannot assign to this expression", target.pos
            )
        root, acc = path
        if root.kind == "var" and root.decl is not None and root.decl.const:
            self.emit(
                f"raise _err('ErrorAssignmentToConstant', "
                f"{('Cannot modify constant ' + root.name)!r}, {target.pos!r})"
            )
            return
        kinds, keys = self.path_keys(acc)
        if op == "=":
            value = self.stored(s.value)
        else:
            cur = self.tmp()
            self.emit(f"{cur} = _rt.get_path({self.root_read(root)}, {kinds!r}, {keys}, {s.pos!r})")
            rhs, rt = self.expr(s.value)
            value = self.binop(op[:-1], cur, None, rhs, rt, s.pos, in_place=True)
        t = self.tmp()
        self.emit(f"{t} = {value}")
        root_code = self.root_read(root)
        if kinds == "i" and root.kind == "var" and root.decl is not None and not root.decl.boxed:
            # `x[k] = v` on a local array or map: store in place, no helper call
            x = root.decl.pyname
            k = keys[1:-3]
            cap = self.unit.engine.max_map_size
            self.emit(f"if type({x}) is dict and type({k}) is str and type({t}) not in _CT:")
            self.emit(f"    {x}[{k}] = {t}")
            if cap:
                self.emit(f"    if len({x}) > {cap}: _rt.check_size({x}, {target.pos!r})")
            if self.max_memory:
                self.indent += 1
                self.count_mem("100", x, repr(target.pos))
                self.indent -= 1
            self.emit(
                f"elif type({x}) is list and type({k}) is int and -len({x}) <= {k} < len({x}) "
                f"and type({t}) not in _CT:"
            )
            self.emit(f"    {x}[{k}] = {t}")
            self.emit("else:")
            self.indent += 1
            self.root_write(
                root, f"_rt.set_path({root_code}, {kinds!r}, {keys}, {t}, {target.pos!r})", s.pos
            )
            self.indent -= 1
            return
        self.root_write(
            root, f"_rt.set_path({root_code}, {kinds!r}, {keys}, {t}, {target.pos!r})", s.pos
        )

    def assign_elvis(self, s: Node, link: Node) -> None:
        """`x?[i] = v`, `x?.p += v`: the value is computed first (as in Rhai), then nothing
        happens when the value before the `?.`/`?[` link is `()`."""
        v = self.tmp()
        self.emit(f"{v} = {self.stored(s.value)}")
        base, _ = self.expr(link.target)
        self.emit(f"if {base} is not None:")
        saved = s.value
        s.value = Node("py", saved.pos, code=v)
        link.safe = False
        self.indent += 1
        try:
            self.assign(s)
        finally:
            self.indent -= 1
            s.value = saved
            link.safe = True

    def add_assign_local(self, target: Node, s: Node) -> None:
        """`x += e` on a local: INT and string fast paths, in-place string append."""
        x = target.decl.pyname
        rhs, rt = self.expr(s.value)
        known_str = rt == "str" and target.decl in self.strs
        if not SIMPLE.match(rhs) and not known_str:
            t = self.tmp()
            self.emit(f"{t} = {rhs}")
            rhs = t
        p = repr(s.pos)
        cap = self.unit.engine.max_string_size
        if known_str:
            # `x` only ever holds strings: no type test (the body below stays at this level)
            self.indent -= 1
        elif rt != "str":
            self.emit(f"if type({x}) is int and type({rhs}) is int:")
            self.emit(
                f"    {x} = (_r if {fits_i64(f'(_r := {x} + {rhs})', '_r')} "
                f"else _ovf('+', {x}, {rhs}, {p}))"
            )
            self.emit(f"elif type({x}) is str and type({rhs}) is str:")
        else:
            self.emit(f"if type({x}) is str:")
        self.emit(f"    {x} += {rhs}")
        if self.max_memory:
            # counts the whole new string: when `x` is also held elsewhere, `+=` copies it
            self.indent += 1
            self.count_mem(f"len({x})", x, p, min(MEM_CHUNK, cap // 4) if cap else MEM_CHUNK)
            self.indent -= 1
        elif cap:
            self.emit(f"    if len({x}) > {cap // 4}: _rt.check_size({x}, {p})")
        if known_str:
            self.indent += 1
            return
        self.emit("else:")
        self.emit(f"    {x} = _iadd({x}, {rhs}, {p})")

    def mutating_call(
        self,
        head: str,
        path: tuple[Node, list],
        first: str,
        rest: list[str],
        rest_nodes: list[Node],
        pos: tuple[int, int],
    ) -> str:
        """A native call whose first argument is a variable path: write back `Mut` results."""
        root, acc = path
        rest = [
            f"_cp({c})" if a.kind in ("var", "index", "prop", "this") else c
            for c, a in zip(rest, rest_nodes, strict=True)
        ]
        r = self.tmp()
        is_const = root.kind == "var" and root.decl is not None and root.decl.const
        if is_const:
            first = f"_cp({first})"
        self.emit(f"{r} = {head}{first}{''.join(', ' + a for a in rest)})")
        if is_const:
            self.emit(f"if type({r}) is _Mut: {r} = {r}.result")
            return r
        self.emit(f"if type({r}) is _Mut:")
        self.indent += 1
        if not acc:
            self.root_write(root, f"{r}.this", pos)
        else:
            kinds, keys = self.path_keys(acc)
            self.root_write(
                root,
                f"_rt.set_path({self.root_read(root)}, {kinds!r}, {keys}, {r}.this, {pos!r})",
                pos,
            )
        self.emit(f"{r} = {r}.result")
        self.indent -= 1
        return r
