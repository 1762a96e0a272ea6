"""Statements and control flow: blocks, `if`, loops, `switch`, `try`/`catch`.

A control-flow construct used as an expression (`let x = if c { 1 } else { 2 };`) is emitted as
statements before the expression that needs its value, which goes through a temporary; when
both branches need no statements, `if` stays an inline conditional expression.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..ast import Node
from ..errors import RhaiError
from ..parser import parse_error
from ..values import Range
from .int_ranges import loop_bounds, narrowed
from .op_costs import iteration_cost
from .pycode import LITERAL


class StatementGen:
    """Statements and compound expressions.

    Mixed into `FnGen` (rhai/compiler.py), whose emission helpers and state it uses."""

    def block_value(self, stmts: list[Node]) -> str:
        """Emit all statements; return the expression for the value of the last one."""
        for s in stmts[:-1]:
            self.stmt(s)
        if not stmts:
            return "None"
        last = stmts[-1]
        if last.kind == "expr":
            code, _ = self.expr(last.expr)
            return code
        self.stmt(last)
        return "None"

    def block_stmts(self, stmts: list[Node]) -> None:
        for s in stmts:
            self.stmt(s)

    def body(self, node: Node, want: bool) -> str:
        if node.kind == "block":
            self.open_scope(node.vscope)
            if want:
                return self.block_value(node.stmts)
            self.block_stmts(node.stmts)
            return "None"
        code, _ = self.expr(node)
        if not want:
            self.emit_discard(code)
            return "None"
        return code

    def emit_discard(self, code: str) -> None:
        if not LITERAL.match(code) and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", code):
            self.emit(code)

    def stmt(self, s: Node) -> None:
        k = s.kind
        if k == "expr":
            e = s.expr
            if e.kind in ("if", "while", "loop", "do", "for", "switch", "try", "block"):
                self.compound(e, want=False)
            else:
                code, _ = self.expr(e)
                self.emit_discard(code)
        elif k == "let":
            value = self.stored(s.value) if s.value is not None else "None"
            self.declare(s.decl, value, s.pos, s.nvars)
        elif k == "assign":
            self.assign(s)
        elif k == "return":
            value = self.stored(s.value) if s.value is not None else "None"
            self.emit(f"return {value}")
        elif k == "throw":
            if s.value is None and self.catches:
                self.emit(f"raise {self.catches[-1]}")
            else:
                value = self.expr(s.value)[0] if s.value is not None else "None"
                self.emit(f"raise _rt.throw({value}, {s.pos!r})")
        elif k == "break":
            if s.value is not None:
                value = self.stored(s.value)
                self.emit(f"{self.loops[-1]} = {value}")
            self.emit("break")
        elif k == "continue":
            self.emit("continue")
        else:
            raise RhaiError("ErrorSystem", f"compiler: unknown statement {k}")

    def compound(self, e: Node, want: bool) -> str:
        k = e.kind
        if k == "block":
            self.open_scope(e.vscope)
            if want:
                return self.block_value(e.stmts)
            self.block_stmts(e.stmts)
            return "None"
        if k == "if":
            return self.if_(e, want)
        if k in ("while", "loop", "do", "for"):
            return self.loop(e, want)
        if k == "switch":
            return self.switch(e, want)
        if k == "try":
            return self.try_(e, want)
        raise RhaiError("ErrorSystem", f"compiler: unknown compound {k}")

    def cond_code(self, node: Node) -> str:
        code, t = self.expr(node)
        if t == "bool":
            return code
        return f"_cond({code}, {node.pos!r})"

    def branch(self, cond: Node, truth: bool, fn: Callable[[], Any]) -> tuple[list[str], Any]:
        """Compile one branch of an `if`, with what its condition tells about a variable."""
        narrow = narrowed(cond, truth, self.ints, self.bounds)
        if narrow is None:
            return self.capture(fn)
        name, rng = narrow
        saved = self.bounds.get(name)
        self.bounds[name] = rng
        try:
            return self.capture(fn)
        finally:
            if saved is None:
                del self.bounds[name]
            else:
                self.bounds[name] = saved

    def if_(self, e: Node, want: bool) -> str:
        c = self.cond_code(e.cond)
        then_lines, then_v = self.branch(e.cond, True, lambda: self.body(e.then, want))
        if e.other is not None:
            other_node = e.other
            if other_node.kind == "if":
                else_lines, else_v = self.branch(
                    e.cond, False, lambda: self.compound(other_node, want)
                )
            else:
                else_lines, else_v = self.branch(e.cond, False, lambda: self.body(other_node, want))
        else:
            else_lines, else_v = [], "None"
        if want and not then_lines and not else_lines:
            return f"({then_v} if {c} else {else_v})"
        result = self.tmp() if want else None
        self.emit(f"if {c}:")
        self.put(then_lines)
        if result:
            self.emit(f"    {result} = {then_v}")
        elif not then_lines:
            self.emit("    pass")
        if else_lines or result:
            self.emit("else:")
            self.put(else_lines)
            if result:
                self.emit(f"    {result} = {else_v}")
        return result or "None"

    def enter_block(self, e: Node) -> None:
        """Python allows 20 nested loop/try blocks per function; refuse deeper nesting."""
        self.py_blocks += 1
        if self.py_blocks > 18:
            raise parse_error("ExprTooDeep", "Too many nested loops or try blocks", e.pos)

    def loop(self, e: Node, want: bool) -> str:
        self.enter_block(e)
        try:
            return self.loop_inner(e, want)
        finally:
            self.py_blocks -= 1

    def loop_inner(self, e: Node, want: bool) -> str:
        k = e.kind
        result = self.tmp()
        self.emit(f"{result} = None")
        self.loops.append(result)
        if k == "for":
            self.for_(e)
        else:
            if k == "do":
                first = self.tmp()
                self.emit(f"{first} = True")
                self.emit("while True:")
                self.indent += 1
                self.emit(f"if {first}:")
                self.emit(f"    {first} = False")
                self.emit("else:")
                self.indent += 1
                c = self.cond_code(e.cond)
                self.emit(f"if {'' if e.until else 'not '}{c}: break")
                self.indent -= 1
            elif k == "while":
                lines, c = self.capture(lambda: self.cond_code(e.cond))
                if lines:
                    self.emit("while True:")
                    self.indent += 1
                    self.put(lines)
                    self.emit(f"if not {c}: break")
                else:
                    self.emit(f"while {c}:")
                    self.indent += 1
            else:
                self.emit("while True:")
                self.indent += 1
            self.tick(e.pos, iteration_cost(e))
            body_lines, _ = self.capture(lambda: self.body(e.body, False), 0)
            self.put(body_lines)
            self.emit("pass")
            self.indent -= 1
        self.loops.pop()
        return result

    def for_(self, e: Node) -> None:
        it = e.iterable
        if it.kind == "range":
            a, b = self.exprs_in_order([it.left, it.right])
            src = f"_for_range({a}, {b}, {it.inclusive}, {it.pos!r})"
        else:
            code, _ = self.expr(it)
            src = f"_for_iter({code}, {it.pos!r})"
        var = e.var_decl
        idx = e.idx_decl
        if self.max_vars and e.nvars > self.max_vars:
            self.emit(f"_rt.too_many_vars({e.pos!r})")
        self.open_scope(e.vscope)
        for d in (var, idx):
            if d is not None and d.boxed:
                self.emit(f"{d.pyname} = _Shared(None)")
                self.register(d)
        loop_var = self.tmp() if var.boxed else var.pyname
        rng = loop_bounds(e, self.ints)
        if rng is not None:
            self.bounds[var.pyname] = rng
        if idx is not None:
            idx_var = self.tmp() if idx.boxed else idx.pyname
            self.emit(f"for {idx_var}, {loop_var} in enumerate({src}):")
        else:
            self.emit(f"for {loop_var} in {src}:")
        self.indent += 1
        if var.boxed:
            self.emit(f"{var.pyname}.value = {loop_var}")
        if idx is not None and idx.boxed:
            self.emit(f"{idx.pyname}.value = {idx_var}")
        self.tick(e.pos, iteration_cost(e))
        self.body(e.body, False)
        self.emit("pass")
        self.indent -= 1

    def switch(self, e: Node, want: bool) -> str:
        subj, _ = self.expr(e.subject)
        s = self.tmp()
        self.emit(f"{s} = {subj}")
        result = self.tmp() if want else None
        if result:
            self.emit(f"{result} = None")
        exact = []
        ranges = []
        for values, guard, body in e.cases:
            ev = [v for v in values if type(v) is not Range]
            rv = [v for v in values if type(v) is Range]
            if ev:
                exact.append((ev, guard, body))
            if rv:
                ranges.append((rv, guard, body))
        # `done` records a match; a guard that needs statements is evaluated inside its test
        done = self.tmp()
        self.emit(f"{done} = False")
        for values, guard, body in exact + ranges:
            tests = " or ".join(self.case_test(s, v) for v in values)
            self.emit(f"if not {done} and ({tests}):")
            self.indent += 1
            if guard is not None:
                gcode = self.cond_code(guard)
                self.emit(f"if {gcode}:")
                self.indent += 1
            self.emit(f"{done} = True")
            v = self.body(body, want)
            if result:
                self.emit(f"{result} = {v}")
            if guard is not None:
                self.indent -= 1
            self.indent -= 1
        if e.default is not None:
            self.emit(f"if not {done}:")
            self.indent += 1
            v = self.body(e.default, want)
            self.emit(f"{result} = {v}" if result else "pass")
            self.indent -= 1
        return result or "None"

    def case_test(self, s: str, v: Any) -> str:
        t = type(v)
        if t is Range:
            end = v.end + 1 if v.inclusive else v.end
            return (
                f"((type({s}) is int and {v.start} <= {s} < {end}) "
                f"or _switch_eq({s}, {self.unit.const(v)}))"
            )
        if t is int:
            return f"(type({s}) is int and {s} == {v})"
        if t is bool:
            return f"{s} is {v}"
        if t is str:
            return f"(type({s}) is str and {s} == {v!r})"
        if v is None:
            return f"{s} is None"
        return f"_switch_eq({s}, {self.unit.const(v)})"

    def try_(self, e: Node, want: bool) -> str:
        self.enter_block(e)
        try:
            return self.try_inner(e, want)
        finally:
            self.py_blocks -= 1

    def try_inner(self, e: Node, want: bool) -> str:
        result = self.tmp() if want else None
        if result:
            self.emit(f"{result} = None")
        self.emit("try:")
        self.indent += 1
        v = self.body(e.body, want)
        self.emit(f"{result} = {v}" if result else "pass")
        self.indent -= 1
        exc = self.tmp()
        self.emit(f"except RhaiError as {exc}:")
        self.indent += 1
        self.emit(f"if not _catchable({exc}): raise")
        self.open_scope(e.vscope)
        if e.err_decl is not None:
            self.declare(e.err_decl, f"_caught({exc})", e.pos, 0)
        self.catches.append(exc)
        self.body(e.catch, False)
        self.catches.pop()
        self.emit(f"{result} = None" if result else "pass")
        self.indent -= 1
        return result or "None"
