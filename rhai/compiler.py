"""Compile a parsed script to Python source, once, so running it never walks the syntax tree.

Each Rhai function becomes one Python function `(T, D, P, *params)`: `T` is the `this` holder
(a one-item list, or None), `D` the call depth and `P` the caller's position. Variables are
Python locals with mangled names (`v12_total`); variables captured by closures live in `Shared`
cells. Statements that Python cannot nest in an expression (blocks, loops, `if` with
statements, `try`) are emitted before the expression that needs their value ("prelude") and
their value goes through a temporary.

Sandbox: user text never becomes Python code. Identifiers are mangled from the [A-Za-z0-9_]
alphabet the lexer enforces; strings, numbers and positions appear only as `repr()` literals of
plain str/int/float, everything else through the constants table `_K`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .ast import FnDef, Node
from .compile.int_ranges import bounded, int_literal, loop_bounds, narrowed
from .compile.int_types import INT_CLOSED, infer_ints, int_functions, static_int
from .compile.resolve import BlockScope, Decl, Frame, Resolver
from .errors import RhaiError
from .parser import Script, parse_error
from .values import Char, Range

_SIMPLE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|'[^'\\]*')$")
_LITERAL = re.compile(
    r"^(?:-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|\(-?\d+(?:\.\d+)?\)|None|True|False|'[^'\\]*'|_t\d+)$"
)
# Generated code reaches script functions only directly (`f0_name(None, D + 1, ...)`, which
# passes the depth) or through these helpers: natives, host functions, function pointers and
# `eval` may call back into the script, and they learn the caller's depth from `_rt.depth`.
_REENTRANT = re.compile(r"\b(?:_rt\b|_rt_eval\(|_call\(|_call_method\(|_contains\()")
_INT_MIN = "-9223372036854775808"
_INT_MAX = "9223372036854775807"

# Names handled by the engine itself rather than the standard library.
ENGINE_BUILTINS = frozenset(
    {
        "print",
        "debug",
        "type_of",
        "Fn",
        "call",
        "curry",
        "is_def_fn",
        "is_def_var",
        "is_shared",
        "eval",
        "take",
        "exit",
        "throw",
    }
)
_ARITH = {"+", "-", "*"}
_CMP = {"<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}
_TYPE_OF_CONST = {int: "int", float: "float", bool: "bool", str: "str", Char: "char"}
#: With a memory budget, inline fast paths add the bytes they allocate to the function's local
#: `_m` and hand them to the runtime (`_rt.mem_flush`) once they pass this many; a local is far
#: cheaper in a hot loop than the runtime's counter.
_MEM_CHUNK = 1 << 20


class Unit:
    """Module-level output: function definitions, closure factories and constants."""

    def __init__(self, engine: Any, script: Script) -> None:
        self.engine = engine
        self.script = script
        self.lines: list[str] = []
        self.consts: list[Any] = []
        self.counter = 0
        self.fn_names: dict[tuple[str, int], str] = {}
        self.int_fns: set[tuple[str, int]] = set()
        self.bang_keys: set[tuple[str, int]] = set()
        self.called: set[str] = set()
        self.bang_names: dict[tuple[str, int], str] = {}
        for i, (name, n) in enumerate(script.functions):
            self.fn_names[(name, n)] = f"f{i}_{name}"
            self.bang_names[(name, n)] = f"fb{i}_{name}"

    def const(self, v: Any) -> str:
        self.consts.append(v)
        return f"_K[{len(self.consts) - 1}]"

    def uid(self) -> int:
        self.counter += 1
        return self.counter


class FnGen:
    """Generates the Python body of one function, closure or the main script."""

    def __init__(self, unit: Unit, kind: str, frame: Frame, fn_name: str) -> None:
        self.unit = unit
        self.kind = kind
        self.frame = frame
        self.fn_name = fn_name
        self.lines: list[str] = []
        self.indent = 1
        self.ntmp = 0
        self.ints: set[Decl] = set()
        # known value ranges of INT expressions (by generated code), e.g. `for i in 0..10`
        self.bounds: dict[str, tuple[int, int]] = {}
        self.bang = False
        self.py_blocks = 0
        self.dispatch: list[tuple[str, str]] = []
        self.loops: list[str] = []
        self.catches: list[str] = []
        eng = unit.engine
        self.max_ops = eng.max_operations
        self.max_vars = eng.max_variables
        self.max_memory = eng.max_memory
        self.uses_m = False  # the function counts allocations in its local `_m`
        if kind == "fn":
            self.dyn = "_E" if frame.has_eval else "_NOVARS"
        else:
            self.dyn = "_SC"

    # ---- emission helpers ----
    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    def tmp(self) -> str:
        self.ntmp += 1
        return f"_t{self.ntmp}"

    def capture(self, fn: Callable[[], Any], extra_indent: int = 1) -> tuple[list[str], Any]:
        saved = self.lines
        self.lines = []
        self.indent += extra_indent
        try:
            result = fn()
        finally:
            self.indent -= extra_indent
            lines, self.lines = self.lines, saved
        return lines, result

    def put(self, lines: list[str]) -> None:
        self.lines.extend(lines)

    def count_mem(self, nbytes: str, value: str, p: str, limit: int = _MEM_CHUNK) -> None:
        """Count `nbytes` allocated by an inline fast path (see `_MEM_CHUNK`)."""
        self.uses_m = True
        self.emit(f"_m += {nbytes}")
        self.emit(f"if _m > {limit}: _m = _rt.mem_flush(_m, {value}, {p})")

    def with_m(self, lines: list[str]) -> list[str]:
        """Function body `lines` with `_m` initialised when the body counts allocations."""
        return ["    _m = 0", *lines] if self.uses_m else lines

    def tick(self, p: tuple[int, int]) -> None:
        if self.max_ops:
            self.emit(f"if next(_OPS) > {self.max_ops}: _tmo({p!r})")

    def spill_before(self, mark: int, indent: int, code: str) -> str:
        """Evaluate `code` at `mark` (before a later operand's prelude) and use a temporary."""
        if _LITERAL.match(code):
            return code
        t = self.tmp()
        self.lines.insert(mark, "    " * indent + f"{t} = {code}")
        return t

    def exprs_in_order(self, nodes: list[Node]) -> list[str]:
        """Compile operands left to right, keeping evaluation order when preludes appear."""
        out: list[str] = []
        for node in nodes:
            mark = (len(self.lines), self.indent)
            code, _ = self.expr(node)
            if len(self.lines) > mark[0]:
                # earlier operands must be evaluated before this operand's prelude
                shift = 0
                for j in range(len(out)):
                    if not _LITERAL.match(out[j]):
                        t = self.tmp()
                        self.lines.insert(mark[0] + shift, "    " * mark[1] + f"{t} = {out[j]}")
                        shift += 1
                        out[j] = t
            out.append(code)
        return out

    def stored(self, node: Node) -> str:
        """An expression whose value is stored somewhere: copies values read from variables."""
        code, t = self.expr(node)
        if node.kind in ("var", "index", "prop", "this") and t not in (
            "int",
            "float",
            "bool",
            "str",
        ):
            return f"_cp({code}, {node.pos!r})"
        return code

    # ---- variables ----
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

    # ---- statements ----
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
        if not _LITERAL.match(code) and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", code):
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

    # ---- assignment ----
    def path_of(self, node: Node) -> tuple[Node, list[tuple[str, Any]]] | None:
        """Root variable and accessors of an index/property chain, or None."""
        acc: list[tuple[str, Any]] = []
        while node.kind in ("index", "prop"):
            if node.safe:
                return None
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
                if not _LITERAL.match(code):
                    t = self.tmp()
                    self.emit(f"{t} = {code}")
                    code = t
                keys.append(code)
        return kinds, "(" + "".join(k + ", " for k in keys) + ")"

    def assign(self, s: Node) -> None:
        target = s.target
        op = s.op
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

    def add_assign_local(self, target: Node, s: Node) -> None:
        """`x += e` on a local: INT and string fast paths, in-place string append."""
        x = target.decl.pyname
        rhs, rt = self.expr(s.value)
        if not _SIMPLE.match(rhs):
            t = self.tmp()
            self.emit(f"{t} = {rhs}")
            rhs = t
        p = repr(s.pos)
        cap = self.unit.engine.max_string_size
        if rt != "str":
            self.emit(f"if type({x}) is int and type({rhs}) is int:")
            self.emit(
                f"    {x} = (_r if {_INT_MIN} <= (_r := {x} + {rhs}) <= {_INT_MAX} "
                f"else _ovf('+', {x}, {rhs}, {p}))"
            )
            self.emit(f"elif type({x}) is str and type({rhs}) is str:")
        else:
            self.emit(f"if type({x}) is str:")
        self.emit(f"    {x} += {rhs}")
        if self.max_memory:
            # counts the whole new string: when `x` is also held elsewhere, `+=` copies it
            self.indent += 1
            self.count_mem(f"len({x})", x, p, min(_MEM_CHUNK, cap // 4) if cap else _MEM_CHUNK)
            self.indent -= 1
        elif cap:
            self.emit(f"    if len({x}) > {cap // 4}: _rt.check_size({x}, {p})")
        self.emit("else:")
        self.emit(f"    {x} = _iadd({x}, {rhs}, {p})")

    # ---- compound statements / expressions ----
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
            self.tick(e.pos)
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
        self.tick(e.pos)
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

    # ---- expressions ----
    def expr(self, n: Node) -> tuple[str, str | None]:
        k = n.kind
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
                lim = min(_MEM_CHUNK, cap // 4) if cap else _MEM_CHUNK
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
            if n.safe:
                t = self.tmp()
                lines, idx = self.capture(lambda: self.expr(n.index)[0])
                if lines:
                    self.emit(f"{t} = {target}")
                    self.emit(f"if {t} is not None:")
                    self.put(lines)
                    self.emit(f"    {t} = _index({t}, {idx}, {n.pos!r})")
                    return t, None
                return (
                    f"(None if ({t} := {target}) is None else _index({t}, {idx}, {n.pos!r}))",
                    None,
                )
            mark = (len(self.lines), self.indent)
            idx, it = self.expr(n.index)
            if len(self.lines) > mark[0]:
                target = self.spill_before(mark[0], mark[1], target)
            p = repr(n.pos)
            if it in ("str", "int") and (not _LITERAL.match(target) or target.startswith("_t")):
                # inline map[string] / array[int]; the guard binds the operands first
                t1, t2 = target, idx
                if not _SIMPLE.match(target):
                    t1 = self.spill_before(mark[0], mark[1], target)
                if not _SIMPLE.match(idx):
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
            if n.safe:
                t = self.tmp()
                return (
                    f"(None if ({t} := {target}) is None else _prop({t}, {n.name!r}, {n.pos!r}))",
                    None,
                )
            return f"_prop({target}, {n.name!r}, {n.pos!r})", None
        if k == "call":
            return self.call(n)
        if k == "method":
            return self.method(n)
        if k == "closure":
            return self.closure(n), "fn"
        if k in ("block", "if", "while", "loop", "do", "for", "switch", "try"):
            return self.compound(n, want=True), None
        raise RhaiError("ErrorSystem", f"compiler: unknown expression {k}")

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

    def binary(self, n: Node) -> tuple[str, str | None]:
        op = n.op
        a, ta = self.expr(n.left)
        mark = (len(self.lines), self.indent)
        b, tb = self.expr(n.right)
        if len(self.lines) > mark[0]:
            a = self.spill_before(mark[0], mark[1], a)
        if op in ("in", "!in"):
            code = f"_contains({b}, {a}, {n.pos!r})"
            return (code if op == "in" else f"(not {code})"), "bool"
        return self.binop(op, a, ta, b, tb, n.pos), _result_type(op, ta, tb)

    def bind(self, code: str, typ: str | None) -> tuple[str, str, str | None]:
        """(first use, later uses, type check) for an operand used more than once."""
        if _SIMPLE.match(code):
            # `x.__class__` is a little faster than `type(x)` for the hot INT checks
            check = None if typ == "int" else f"({code}).__class__ is int"
            return code, code, check
        t = self.tmp()
        if typ == "int":
            return f"({t} := {code})", t, None
        return f"({t} := {code})", t, f"({t} := {code}).__class__ is int"

    def binop(
        self,
        op: str,
        a: str,
        ta: str | None,
        b: str,
        tb: str | None,
        pos: tuple[int, int],
        in_place: bool = False,
    ) -> str:
        p = repr(pos)
        if len(a) > 300:
            t = self.tmp()
            self.emit(f"{t} = {a}")
            a = t
        if len(b) > 300:
            t = self.tmp()
            self.emit(f"{t} = {b}")
            b = t
        if ta == "float" and tb == "float" and op in _ARITH:
            return f"({a} {op} {b})"
        if op in ("==", "!="):
            if ta in ("int", "str", "bool") and ta == tb:
                return f"({a} {op} {b})"
            fn = "_eq" if op == "==" else "_ne"
            known = ta if ta in ("int", "str") else tb if tb in ("int", "str") else None
            if known is not None:
                other, _t_other = (b, tb) if known == ta else (a, ta)
                if _SIMPLE.match(other):
                    py = "int" if known == "int" else "str"
                    return f"(({a} {op} {b}) if type({other}) is {py} else {fn}({a}, {b}, {p}))"
            return f"{fn}({a}, {b}, {p})"
        int_ok = ta in (None, "int") and tb in (None, "int")
        if not int_ok:
            if op == "+" and in_place:
                return f"_iadd({a}, {b}, {p})"
            return self.slow(op, a, b, p)
        # INT fast path, guarded by type checks on operands not known to be INT; when any
        # check is needed, complex operands are bound inside the guard (which runs first)
        need_guard = ta != "int" or tb != "int"
        a1, a2, ca = self.bind(a, None if need_guard and not _SIMPLE.match(a) else ta)
        b1, b2, cb = self.bind(b, None if need_guard and not _SIMPLE.match(b) else tb)
        if ca and not _SIMPLE.match(a):
            a1 = a2
        if cb and not _SIMPLE.match(b):
            b1 = b2
        checks = [c for c in (ca, cb) if c]
        if not checks:
            guard = None
        elif len(checks) == 1:
            guard = checks[0]
        else:
            guard = f"({checks[0]}) & ({checks[1]})"
        lit_b = int_literal(b)
        lit_a = int_literal(a)
        ba = self.bound_of(a) if ta == "int" else None
        bb = self.bound_of(b) if tb == "int" else None
        if ba is not None and bb is not None:
            exact = bounded(op, a, ba, b, bb)
            if exact is not None:
                code, rng = exact
                self.bounds[code] = rng
                return code
        # with a non-negative operand only one side of the overflow check can fail
        if bb is not None and op in ("+", "-"):
            lit_b = bb[0] if bb[0] >= 0 else None
        if ba is not None and op == "+" and ba[0] >= 0:
            lit_a = ba[0]
        if op in _ARITH:
            expr = f"(_r := {a1} {op} {b1})"
            if (op == "+" and lit_b is not None and lit_b >= 0) or (
                op == "+" and lit_a is not None and lit_a >= 0
            ):
                test = f"{expr} <= {_INT_MAX}"
            elif op == "-" and lit_b is not None and lit_b >= 0:
                test = f"{expr} >= {_INT_MIN}"
            else:
                test = f"{_INT_MIN} <= {expr} <= {_INT_MAX}"
            fast = f"(_r if {test} else _ovf({op!r}, {a2}, {b2}, {p}))"
        elif op in _CMP:
            fast = f"({a1} {op} {b1})"
        elif op in ("%", "/"):
            pyop = "%" if op == "%" else "//"
            helper = "_mod" if op == "%" else "_div"
            # the condition runs first, so it is where operands get bound
            cond = f"{a1} >= 0" if lit_b is not None and lit_b > 0 else f"({a1} >= 0) & ({b1} > 0)"
            fast = f"({a2} {pyop} {b2} if {cond} else {helper}({a2}, {b2}, {p}))"
        else:
            return self.slow(op, a, b, p)
        if guard is None:
            return fast
        slow_fn = "_iadd" if (op == "+" and in_place) else None
        slow = f"{slow_fn}({a2}, {b2}, {p})" if slow_fn else self.slow(op, a2, b2, p)
        return f"({fast} if {guard} else {slow})"

    def bound_of(self, code: str) -> tuple[int, int] | None:
        v = int_literal(code)
        if v is not None:
            return (v, v)
        return self.bounds.get(code)

    def slow(self, op: str, a: str, b: str, p: str) -> str:
        if op == "+":
            return f"_add({a}, {b}, {p})"
        if op in ("-", "*"):
            return f"_arith({op!r}, {a}, {b}, {p})"
        if op == "/":
            return f"_div({a}, {b}, {p})"
        if op == "%":
            return f"_mod({a}, {b}, {p})"
        if op == "**":
            return f"_pow({a}, {b}, {p})"
        if op in _CMP:
            return f"{_CMP[op]}({a}, {b}, {p})"
        if op in ("<<", ">>"):
            return f"_shift({op!r}, {a}, {b}, {p})"
        if op in ("&", "|", "^"):
            return f"_bitop({op!r}, {a}, {b}, {p})"
        raise RhaiError("ErrorSystem", f"compiler: unknown operator {op}")

    # ---- calls ----
    def depth(self) -> str:
        return "D + 1"

    def call(self, n: Node) -> tuple[str, str | None]:
        name = n.name
        nargs = len(n.args)
        p = repr(n.pos)
        key = (name, nargs)
        script = self.unit.fn_names.get(key)
        if script is not None and n.bang:
            return self.bang_call(n, key), None
        if name == "call" and n.bang and nargs >= 1:
            return self.bang_call(n, None), None
        if script is not None:
            args = self.exprs_in_order(n.args)
            args = [
                f"_cp({c})" if a.kind in ("var", "index", "prop", "this") else c
                for c, a in zip(args, n.args, strict=True)
            ]
            rtype = (
                "int"
                if key in self.unit.int_fns
                and all(static_int(a, self.ints, self.unit.int_fns) for a in n.args)
                else None
            )
            return f"{script}(None, {self.depth()}, {p}{''.join(', ' + a for a in args)})", rtype
        if name in ENGINE_BUILTINS:
            r = self.builtin(n)
            if r is not None:
                return r
        self.unit.called.add(name)
        if n.args:
            path = self.path_of(n.args[0])
            if path is not None:
                args = self.exprs_in_order(n.args)
                return self.mutating_call(
                    f"_rt.call_raw({name!r}, {p}, ", path, args[0], args[1:], n.args[1:], n.pos
                ), None
        args = self.exprs_in_order(n.args)
        args = [
            f"_cp({c})" if a.kind in ("var", "index", "prop", "this") and i else c
            for i, (c, a) in enumerate(zip(args, n.args, strict=True))
        ]
        return f"_call({name!r}, {p}{''.join(', ' + a for a in args)})", None

    def bang_call(self, n: Node, key: tuple[str, int] | None) -> str:
        """`f!(args)`: the function reads and writes the caller's variables in place, through
        the cells of a CallerScope."""
        args = self.exprs_in_order(n.args)
        args = [
            f"_cp({c})" if a.kind in ("var", "index", "prop", "this") else c
            for c, a in zip(args, n.args, strict=True)
        ]
        env = self.caller_scope(n)
        if key is None:
            # `call!(f, args)`: the pointer's function, run in the caller's scope
            rest = "".join(a + ", " for a in args[1:])
            return f"_rt.call_bang({args[0]}, {env}, ({rest}), {n.pos!r})"
        return (
            f"{self.unit.bang_names[key]}(None, {self.depth()}, {n.pos!r}, {env}"
            f"{''.join(', ' + a for a in args)})"
        )

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

    def builtin(self, n: Node) -> tuple[str, str | None] | None:
        name = n.name
        nargs = len(n.args)
        p = repr(n.pos)
        if name in ("print", "debug") and nargs == 1:
            (a,) = self.exprs_in_order(n.args)
            fn = "_rt.print_" if name == "print" else "_rt.debug"
            return f"{fn}({a})", "unit"
        if name == "type_of" and nargs == 1:
            (a,) = self.exprs_in_order(n.args)
            return f"_type_name({a})", "str"
        if name == "Fn" and nargs == 1:
            arg = n.args[0]
            if arg.kind == "const" and type(arg.value) is str:
                # a pointer to a named function is a (possible) call of it
                self.unit.called.add(arg.value)
            (a,) = self.exprs_in_order(n.args)
            return f"_rt.make_fn({a}, {p})", "fn"
        if name == "call" and nargs >= 1:
            args = self.exprs_in_order(n.args)
            rest = "".join(a + ", " for a in args[1:])
            return f"_rt.call_ptr({args[0]}, ({rest}), None, {p})", None
        if name == "curry" and nargs >= 1:
            args = self.exprs_in_order(n.args)
            rest = "".join(a + ", " for a in args[1:])
            return f"_rt.curry({args[0]}, ({rest}), {p})", "fn"
        if name == "is_def_fn" and nargs == 2:
            a, b = self.exprs_in_order(n.args)
            return f"_rt.is_def_fn({a}, {b})", "bool"
        if name == "is_def_fn" and nargs == 3:
            typed = {
                key: fn.this_type
                for key, fn in self.unit.script.functions.items()
                if fn.this_type is not None
            }
            a, b, c = self.exprs_in_order(n.args)
            return f"_rt.is_def_method({a}, {b}, {c}, {self.unit.const(typed)})", "bool"
        if name == "is_def_var" and nargs == 1:
            (a,) = self.exprs_in_order(n.args)
            return f"({a} in {self.caller_scope(n)})", "bool"
        if name == "is_shared" and nargs == 1:
            arg = n.args[0]
            if arg.kind == "var" and arg.decl is not None:
                return ("True" if arg.decl.captured else "False"), "bool"
            (a,) = self.exprs_in_order(n.args)
            return f"(type({a}) is _Shared)", "bool"
        if name == "take" and nargs == 1:
            arg = n.args[0]
            (a,) = self.exprs_in_order(n.args)
            t = self.tmp()
            self.emit(f"{t} = {a}")
            path = self.path_of(arg)
            if path is not None and not (
                path[0].kind == "var" and path[0].decl is not None and path[0].decl.const
            ):
                root, acc = path
                if not acc:
                    self.root_write(root, "None", arg.pos)
                else:
                    kinds, keys = self.path_keys(acc)
                    self.root_write(
                        root,
                        f"_rt.set_path({self.root_read(root)}, {kinds!r}, {keys}, None, {p})",
                        arg.pos,
                    )
            return t, None
        if name == "exit":
            args = self.exprs_in_order(n.args)
            self.emit(f"raise _Exit({args[0] if args else 'None'})")
            return "None", None
        if name == "eval" and nargs == 1:
            (a,) = self.exprs_in_order(n.args)
            top = n.top_level and self.kind == "main"
            if n.eval_dict is not None:
                self.emit(f"{n.eval_dict} = {{}}")
            r = self.tmp()
            self.emit(
                f"{r} = _rt_eval({a}, {self.caller_scope(n, self.dyn)}, D, {p}, "
                f"{'_GC' if top else 'None'}, {n.top_level}, {n.eval_dict or 'None'})"
            )
            return r, None
        return None

    def method(self, n: Node) -> tuple[str, str | None]:
        name = n.name
        nargs = len(n.args)
        p = repr(n.pos)
        if n.safe:
            target, _ = self.expr(n.target)
            t = self.tmp()
            r = self.tmp()
            self.emit(f"{t} = {target}")
            self.emit(f"{r} = None")
            self.emit(f"if {t} is not None:")
            self.indent += 1
            args = self.exprs_in_order(n.args)
            self.emit(
                f"{r} = _rt.method_value({name!r}, {p}, {t}{''.join(', ' + a for a in args)})"
            )
            self.indent -= 1
            return r, None
        if name == "type_of" and nargs == 0:
            target, _ = self.expr(n.target)
            return f"_type_name({target})", "str"
        if name == "is_shared" and nargs == 0:
            tn = n.target
            if tn.kind == "var" and tn.decl is not None:
                return ("True" if tn.decl.captured else "False"), "bool"
            return "False", "bool"
        if name == "call" and n.args and self.path_of(n.target) is not None:
            path = self.path_of(n.target)
            root = path[0]
            cell = "None"
            if root.kind == "var" and root.decl is not None and root.decl.captured and not path[1]:
                cell = root.decl.pyname
            vals = self.exprs_in_order([n.target, *n.args])
            return self.mutating_call(
                f"_rt.call_method_m({p}, {cell}, ", path, vals[0], vals[1:], n.args, n.pos
            ), None
        if name == "call":
            vals = self.exprs_in_order([n.target, *n.args])
            rest = "".join(a + ", " for a in vals[1:])
            return f"_call_method({vals[0]}, ({rest}), {p})", None
        if name == "curry":
            vals = self.exprs_in_order([n.target, *n.args])
            rest = "".join(a + ", " for a in vals[1:])
            return f"_rt.curry({vals[0]}, ({rest}), {p})", "fn"
        script = self.unit.fn_names.get((name, nargs))
        path = self.path_of(n.target)
        if script is not None:
            vals = self.exprs_in_order([n.target, *n.args])
            args = [
                f"_cp({c})" if a.kind in ("var", "index", "prop", "this") else c
                for c, a in zip(vals[1:], n.args, strict=True)
            ]
            h = self.tmp()
            r = self.tmp()
            self.emit(f"{h} = [{vals[0]}]")
            self.emit(f"{r} = {script}({h}, {self.depth()}, {p}{''.join(', ' + a for a in args)})")
            if path is not None:
                root, acc = path
                is_const = root.kind == "var" and root.decl is not None and root.decl.const
                if not is_const:
                    self.emit(f"if {h}[0] is not {vals[0]}:")
                    self.indent += 1
                    if not acc:
                        self.root_write(root, f"{h}[0]", n.pos)
                    else:
                        kinds, keys = self.path_keys(acc)
                        self.root_write(
                            root,
                            f"_rt.set_path({self.root_read(root)}, {kinds!r}, {keys}, {h}[0], {p})",
                            n.pos,
                        )
                    self.indent -= 1
            return r, None
        script2 = self.unit.fn_names.get((name, nargs + 1))
        if script2 is not None:
            vals = self.exprs_in_order([n.target, *n.args])
            args = [f"_cp({c})" for c in vals]
            return f"{script2}(None, {self.depth()}, {p}{''.join(', ' + a for a in args)})", None
        self.unit.called.add(name)
        host = self.unit.engine._host_fns
        if name == "push" and nargs == 1 and ("push", 2) not in host:
            vals = self.exprs_in_order([n.target, *n.args])
            if path is None or not (
                path[0].kind == "var" and path[0].decl is not None and path[0].decl.const
            ):
                t = self.tmp()
                self.emit(f"{t} = {vals[0]}")
                arg = vals[1]
                if not _SIMPLE.match(arg):
                    arg = self.tmp()
                    self.emit(f"{arg} = {vals[1]}")
                vals[1] = arg
                self.emit(f"if type({t}) is list:")
                reads = n.args[0].kind in ("var", "index", "prop", "this")
                # a pushed array or map: recursive size and nesting depth must still fit
                self.emit(f"    if type({arg}) in _CT: _rt.check_store({t}, {arg}, {p})")
                self.emit(f"    {t}.append({f'_cp({arg}, {p})' if reads else arg})")
                cap = self.unit.engine.max_array_size
                if cap:
                    self.emit(f"    if len({t}) > {cap}: _rt.check_size({t}, {p})")
                if self.max_memory:
                    self.indent += 1
                    self.count_mem("40", t, p)
                    self.indent -= 1
                if path is not None:
                    self.emit("else:")
                    self.indent += 1
                    r = self.mutating_call(
                        f"_rt.method({name!r}, {p}, ", path, t, vals[1:], n.args, n.pos
                    )
                    self.indent -= 1
                else:
                    self.emit(f"else: _rt.method_value('push', {p}, {t}, _cp({vals[1]}, {p}))")
                return "None", "unit"
        if name == "len" and nargs == 0 and ("len", 1) not in host:
            (target,) = self.exprs_in_order([n.target])
            return f"_rt.len_({target}, {p})", None
        if path is not None:
            vals = self.exprs_in_order([n.target, *n.args])
            return self.mutating_call(
                f"_rt.method({name!r}, {p}, ", path, vals[0], vals[1:], n.args, n.pos
            ), None
        vals = self.exprs_in_order([n.target, *n.args])
        args = [
            f"_cp({c})" if a.kind in ("var", "index", "prop", "this") else c
            for c, a in zip(vals[1:], n.args, strict=True)
        ]
        return f"_rt.method_value({name!r}, {p}, {vals[0]}{''.join(', ' + a for a in args)})", None

    def closure(self, n: Node) -> str:
        """A closure's body becomes a module-level factory taking its captured cells.

        The factory is generated once per closure: a function body may be compiled twice (its
        INT-specialised copy), and regenerating the closures inside each copy doubled the
        code at every nesting level (a 300-byte script compiled to 44 MB)."""
        dyn = self.dyn if self.kind != "fn" else "_NOVARS"
        caps = [d.pyname for d in n.captures]
        made = getattr(n, "factory", None)
        if made is not None and made[1] == dyn:
            uid = made[0]
            return f"_FnPtr('anon${uid}', (), _mk{uid}({', '.join(caps)}))"
        uid = self.unit.uid()
        n.factory = (uid, dyn)
        fname = f"_cl{uid}"
        gen = FnGen(self.unit, "closure", n.frame, "anon")
        gen.dyn = dyn
        params = [d.pyname for d in n.param_decls]
        lines = gen.function_lines(fname, params, n.body, f"anon${uid}", n.param_decls, n.pos)
        unit = self.unit
        unit.lines.append(f"def _mk{uid}({', '.join(caps)}):")
        unit.lines.extend("    " + ln for ln in lines)
        unit.lines.append(f"    {fname}.arity = {len(params)}")
        unit.lines.append(f"    {fname}.uses_this = {n.frame.uses_this}")
        unit.lines.append(f"    return {fname}")
        return f"_FnPtr('anon${uid}', (), _mk{uid}({', '.join(caps)}))"

    # ---- whole functions ----
    def function_lines(
        self,
        pyname: str,
        params: list[str],
        body: Node,
        rhai_name: str,
        param_decls: list[Decl],
        pos: tuple[int, int],
        this_type: str | None = None,
    ) -> list[str]:
        eng = self.unit.engine
        self.indent = 1
        if eng.max_call_levels:
            self.emit(f"if D > {eng.max_call_levels}: _so(P)")
        if self.max_vars and len(params) > self.max_vars:
            self.emit("_rt.too_many_vars(P)")
        for typ, target in self.dispatch:
            # a typed method of the same name and arity handles `this` of its type
            args = "".join(", " + x for x in params)
            self.emit(
                f"if T is not None and _type_name(T[0]) == {typ!r}: return {target}(T, D, P{args})"
            )
        if this_type:
            # typed methods exist only for `this` of their type, in method-call style
            plain_args = "".join(x + ", " for x in params)
            self.emit(f"if T is None: raise _not_found({rhai_name!r}, ({plain_args}), P)")
            self.emit(
                f"if _type_name(T[0]) != {this_type!r}: "
                f"raise _not_found({rhai_name!r}, (T[0]{''.join(', ' + x for x in params)}), P)"
            )
        self.tick(pos)
        if self.frame.has_eval and not self.bang:
            self.emit("_E = {}")
        for dn in self.frame.eval_dicts.values():
            self.emit(f"{dn} = {{}}")
        for d in param_decls:
            if d.boxed:
                self.emit(f"{d.pyname} = _Shared({d.pyname})")
        root = self.frame.scopes[0]
        self.open_scope(root)
        if self.frame.closure is not None and root.var is not None:
            # a closure's scope holds what it captures (always cells) and its parameters
            for d in self.frame.closure.captures:
                cell = f"_ConstCell({d.pyname}.value)" if d.const else d.pyname
                self.emit(f"{root.var}[{d.name!r}] = {cell}")
        for d in param_decls:
            self.register(d)
        try_at = len(self.lines)
        self.emit("try:")
        self.indent += 1
        spec = [d for d in param_decls if not d.captured and not d.mutated and d.arith_use]
        if spec:
            # a copy of the body specialised for INT arguments, without their type checks
            fast_ints = infer_ints(self.frame.decls, set(spec))
            spec = [d for d in spec if d in fast_ints]
            if spec:
                self.emit(f"if {' and '.join(f'{d.pyname}.__class__ is int' for d in spec)}:")
                self.indent += 1
                self.ints = fast_ints
                value = self.body(body, True)
                self.emit(f"return {value}")
                self.indent -= 1
        self.ints = infer_ints(self.frame.decls)
        value = self.body(body, True)
        self.emit(f"return {value}")
        self.indent -= 1
        self.emit("except RhaiError as _e:")
        self.emit(f"    raise _wrap(_e, {rhai_name!r}, P) from None")
        self.publish_depth(try_at)
        extra = ", _E" if self.bang else ""
        header = f"def {pyname}(T, D, P{extra}{''.join(', ' + x for x in params)}):"
        return [header, *self.with_m(self.lines)]

    def publish_depth(self, try_at: int, has_finally: bool = False) -> None:
        """Keep `_rt.depth` equal to the depth of the innermost running function that may call
        back into the script (see `_REENTRANT`), so a callback made by a native, such as a
        comparator given to `sort`, runs one level deeper than its caller and `max_call_levels`
        bounds every path. Functions that only compute and call script functions directly (the
        hot path, e.g. `fib`) skip the two attribute stores."""
        if not any(_REENTRANT.search(line) for line in self.lines[try_at:]):
            return
        self.lines[try_at:try_at] = ["    _sd = _rt.depth", "    _rt.depth = D"]
        if not has_finally:
            self.lines.append("    finally:")
        self.lines.append("        _rt.depth = _sd")

    def main_lines(self, stmts: list[Node], top_decls: list[Decl]) -> list[str]:
        self.indent = 1
        self.ints = infer_ints(self.frame.decls)
        for d in top_decls:
            self.emit(f"{d.pyname} = _UNSET")
        self.open_scope(self.frame.scopes[0])
        if self.frame.has_eval:
            self.emit("_E = _SC")
        for dn in self.frame.eval_dicts.values():
            self.emit(f"{dn} = {{}}")
        try_at = len(self.lines)
        self.emit("try:")
        self.indent += 1
        value = self.block_value(stmts)
        self.emit(f"return {value}")
        self.indent -= 1
        self.emit("finally:")
        pairs = "".join(f"({d.name!r}, {d.pyname}, {d.const}), " for d in top_decls)
        self.emit(f"    _write_back(_WB, ({pairs}))")
        self.publish_depth(try_at, has_finally=True)
        return ["def _main(T, D, P):", *self.with_m(self.lines)]


def _result_type(op: str, ta: str | None, tb: str | None) -> str | None:
    if op in ("==", "!=", "<", "<=", ">", ">=", "in", "!in"):
        return "bool"
    if ta == "int" and tb == "int" and op in INT_CLOSED:
        return "int"
    if op in ("+", "-", "*", "/", "%", "**") and ta == "float" and tb in ("float", "int"):
        return "float"
    if op in ("+", "-", "*") and tb == "float" and ta == "int":
        return "float"
    if op in ("+",) and (ta == "str" or tb == "str"):
        return "str"
    return None


def generate(engine: Any, script: Script) -> tuple[str, Unit]:
    """Python source for `script` (defining `_main` and one function per script function)."""
    unit = Unit(engine, script)
    resolver = Resolver()
    fn_frames = {}
    for key, fn in script.functions.items():
        fn_frames[key] = resolver.run_frame("fn", None, fn.params, fn.body)
    extra_frames = {
        id(fn): resolver.run_frame("fn", None, fn.params, fn.body)
        for fns in script.extra_methods.values()
        for fn in fns
    }
    main_body = Node("block", (1, 1), stmts=script.stmts)
    _, main_frame = resolver.run_frame("main", None, [], main_body)
    parts: list[str] = []
    unit.int_fns = int_functions(script, fn_frames) - set(script.extra_methods)
    dispatch: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for key, fns in script.extra_methods.items():
        for fn in fns:
            pyname = f"fx{unit.uid()}_{fn.name}"
            dispatch.setdefault(key, []).append((fn.this_type, pyname))
            decls, frame = extra_frames[id(fn)]
            gen = FnGen(unit, "fn", frame, fn.name)
            parts.extend(
                gen.function_lines(
                    pyname,
                    [d.pyname for d in decls],
                    fn.body,
                    fn.name,
                    decls,
                    fn_pos(fn),
                    fn.this_type,
                )
            )
    for key, fn in script.functions.items():
        decls, frame = fn_frames[key]
        gen = FnGen(unit, "fn", frame, fn.name)
        gen.dispatch = dispatch.get(key, [])
        parts.extend(
            gen.function_lines(
                unit.fn_names[key],
                [d.pyname for d in decls],
                fn.body,
                fn.name,
                decls,
                fn_pos(fn),
                fn.this_type,
            )
        )
    bang_keys = set(script.functions) if resolver.bang_all else resolver.bang_keys
    unit.bang_keys = bang_keys & set(script.functions)
    for key in sorted(unit.bang_keys):
        fn = script.functions[key]
        decls, frame = fn_frames[key]
        gen = FnGen(unit, "fn", frame, fn.name)
        gen.dyn = "_E"
        gen.bang = True
        parts.extend(
            gen.function_lines(
                unit.bang_names[key],
                [d.pyname for d in decls],
                fn.body,
                fn.name,
                decls,
                fn_pos(fn),
                fn.this_type,
            )
        )
    gen = FnGen(unit, "main", main_frame, "main")
    gen.unit_top_decls = set(resolver.top_decls)
    parts.extend(gen.main_lines(script.stmts, resolver.top_decls))
    return "\n".join(unit.lines + parts) + "\n", unit


def fn_pos(fn: FnDef) -> tuple[int, int]:
    return (fn.line, fn.col)
