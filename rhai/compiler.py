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
from .compile.assignment import AssignmentGen
from .compile.calls import ENGINE_BUILTINS, CallGen
from .compile.expressions import ExpressionGen
from .compile.int_types import infer_ints, infer_strs, int_functions
from .compile.op_costs import block_cost, stmt_cost
from .compile.operators import OperatorGen
from .compile.pycode import LITERAL, MEM_CHUNK
from .compile.resolve import Decl, Frame, Resolver
from .compile.statements import StatementGen
from .compile.variables import VariableGen
from .parser import Script

# `from rhai.compiler import ENGINE_BUILTINS, generate` is the engine's view of the compiler.
__all__ = ["ENGINE_BUILTINS", "generate"]

# Generated code reaches script functions only directly (`f0_name(None, D + 1, ...)`, which
# passes the depth) or through these helpers: natives, host functions, function pointers and
# `eval` may call back into the script, and they learn the caller's depth from `_rt.depth`.
_USES_T = re.compile(r"\bT\b")
_REENTRANT = re.compile(r"\b(?:_rt\b|_rt_eval\(|_call\(|_call_method\(|_contains\()")


class Unit:
    """Module-level output: function definitions, closure factories and constants."""

    def __init__(self, engine: Any, script: Script) -> None:
        self.engine = engine
        self.script = script
        self.lines: list[str] = []
        self.consts: list[Any] = []
        self.counter = 0
        self.fn_names: dict[tuple[str, int], str] = {}
        # script functions with an INT entry (`fN_name_i`), see `int_entry_keys`
        self.int_entries: dict[tuple[str, int], str] = {}
        self.int_fns: set[tuple[str, int]] = set()
        self.bang_keys: set[tuple[str, int]] = set()
        self.called: set[str] = set()
        self.bang_names: dict[tuple[str, int], str] = {}
        self.site_positions: list[tuple[int, int]] = []
        # INT entries (Python name -> Rhai name): frames `runtime.unwind` wraps errors for
        self.int_names: dict[str, str] = {}
        # (line, UTF-8 column) of a marked call in the generated code -> its Rhai position
        self.call_sites: dict[tuple[int, int], tuple[int, int]] = {}
        for i, (name, n) in enumerate(script.functions):
            self.fn_names[(name, n)] = f"f{i}_{name}"
            self.bang_names[(name, n)] = f"fb{i}_{name}"

    def const(self, v: Any) -> str:
        self.consts.append(v)
        return f"_K[{len(self.consts) - 1}]"

    def call_site(self, pos: tuple[int, int]) -> str:
        """A mark put before a call that passes no position (an INT entry's): `generate`
        removes it and records where the call starts in the generated code, so an error
        raised in the callee finds the Rhai position from its caller's frame
        (`runtime.unwind`, `runtime.caller_position`) instead of every call passing it."""
        self.site_positions.append(pos)
        return f"\x01{len(self.site_positions) - 1}\x02"

    def uid(self) -> int:
        self.counter += 1
        return self.counter


class FnGen(StatementGen, AssignmentGen, ExpressionGen, OperatorGen, CallGen, VariableGen):
    """Generates the Python body of one function, closure or the main script.

    The generators of each kind of syntax are mixins (rhai/compile/); this class holds the
    state they share, the emission helpers and the assembly of whole functions."""

    def __init__(self, unit: Unit, kind: str, frame: Frame, fn_name: str) -> None:
        self.unit = unit
        self.kind = kind
        self.frame = frame
        self.fn_name = fn_name
        self.lines: list[str] = []
        self.indent = 1
        self.ntmp = 0
        self.ints: set[Decl] = set()
        self.strs: set[Decl] = infer_strs(frame.decls)
        # known value ranges of INT expressions (by generated code), e.g. `for i in 0..10`
        self.bounds: dict[str, tuple[int, int]] = {}
        self.bang = False
        self.py_blocks = 0
        self.dispatch: list[tuple[str, str]] = []
        self.int_entry: str | None = None  # this function's INT entry, see int_entry_keys
        self.loops: list[str] = []
        self.catches: list[str] = []
        eng = unit.engine
        self.max_ops = eng.max_operations
        self.max_vars = eng.max_variables
        self.max_memory = eng.max_memory
        self.uses_m = False  # the function counts allocations in its local `_m`
        # operands of unknown type go straight to the runtime helpers (see function_lines)
        self.helpers_only = False
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

    def count_mem(self, nbytes: str, value: str, p: str, limit: int = MEM_CHUNK) -> None:
        """Count `nbytes` allocated by an inline fast path (see `MEM_CHUNK`)."""
        self.uses_m = True
        self.emit(f"_m += {nbytes}")
        self.emit(f"if _m > {limit}: _m = _rt.mem_flush(_m, {value}, {p})")

    def with_m(self, lines: list[str]) -> list[str]:
        """Function body `lines` with `_m` initialised when the body counts allocations."""
        return ["    _m = 0", *lines] if self.uses_m else lines

    def tick(self, p: tuple[int, int], ops: int) -> None:
        """Charge `ops` operations (see rhai/compile/op_costs.py) at position `p`."""
        if self.max_ops and ops > 0:
            self.emit(f"_O[0] = _oc if (_oc := _O[0] - {ops}) >= 0 else _tmo({p!r}, _oc)")

    def spill_before(self, mark: int, indent: int, code: str) -> str:
        """Evaluate `code` at `mark` (before a later operand's prelude) and use a temporary."""
        if LITERAL.match(code):
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
                    if not LITERAL.match(out[j]):
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
        entry_at = len(self.lines)
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
        self.tick(pos, 1 + block_cost(body))
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
        if self.int_entry is not None and not self.bang:
            # INT arguments go to the INT entry (which counts the call); this call level's
            # errors are wrapped here, as the INT entry has no handler
            self.lines[entry_at:entry_at] = [
                f"    if {' and '.join(f'{d.pyname}.__class__ is int' for d in param_decls)}:",
                "        try:",
                f"            return {self.int_entry}(D{''.join(', ' + x for x in params)})",
                "        except RhaiError as _e:",
                f"            raise _wrap(_e, {rhai_name!r}, P) from None",
            ]
            try_at += 5
            spec = []
            # the generic body only runs for non-INT arguments: INT fast paths guarded by
            # type tests would not pay for the time it takes to compile them (and `eval`
            # compiles every time)
            self.helpers_only = True
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

    def int_entry_lines(
        self,
        pyname: str,
        params: list[str],
        body: Node,
        rhai_name: str,
        param_decls: list[Decl],
        pos: tuple[int, int],
    ) -> list[str]:
        """The INT-specialised body as a function of its own, `fN_name_i(D, *ints)`, for
        call sites whose arguments are all statically INTs (see `int_entry_keys`): no `this`
        holder, no argument type checks, no caller position and no exception handler (the
        first handler an error reaches wraps it for each INT entry it left, with the position
        of the call found in the calling frame: `runtime.unwind`), so a recursive
        `fib(n - 1)` costs little more than a Python call. Depth and operation counting are
        as in the generic entry."""
        eng = self.unit.engine
        self.indent = 1
        if eng.max_call_levels:
            self.emit(f"if D > {eng.max_call_levels}: _soc()")
        self.tick(pos, 1 + block_cost(body))
        self.open_scope(self.frame.scopes[0])
        for d in param_decls:
            self.register(d)
        try_at = len(self.lines)
        self.emit("try:")
        self.indent += 1
        self.ints = infer_ints(self.frame.decls, set(param_decls))
        value = self.body(body, True)
        self.emit(f"return {value}")
        self.indent -= 1
        self.unit.int_names[pyname] = rhai_name
        if any(_REENTRANT.search(line) for line in self.lines[try_at:]):
            self.publish_depth(try_at)
        else:
            # no handler: an error leaving an INT entry is wrapped for it by the first
            # handler it reaches (`runtime.unwind`), which costs nothing on the call path
            del self.lines[try_at]
            self.lines[try_at:] = [line[4:] for line in self.lines[try_at:]]
        lines = self.with_m(self.lines)
        if any(_USES_T.search(line) for line in lines):
            lines.insert(0, "    T = None")
        return [f"def {pyname}(D{''.join(', ' + x for x in params)}):", *lines]

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
        if stmts:
            self.tick(stmts[0].pos, sum(stmt_cost(s) for s in stmts))
        value = self.block_value(stmts)
        self.emit(f"return {value}")
        self.indent -= 1
        self.emit("finally:")
        pairs = "".join(f"({d.name!r}, {d.pyname}, {d.const}), " for d in top_decls)
        self.emit(f"    _write_back(_WB, ({pairs}))")
        self.publish_depth(try_at, has_finally=True)
        return ["def _main(T, D, P):", *self.with_m(self.lines)]


def generate(engine: Any, script: Script) -> tuple[str, Unit]:
    """Python source for `script` (defining `_main` and one function per script function)."""
    unit = Unit(engine, script)
    resolver = Resolver(frozenset(script.functions))
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
    unit.int_entries = {
        key: unit.fn_names[key] + "_i" for key in int_entry_keys(engine, script, fn_frames)
    }
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
        gen.int_entry = unit.int_entries.get(key)
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
    for key, entry in unit.int_entries.items():
        fn = script.functions[key]
        decls, frame = fn_frames[key]
        gen = FnGen(unit, "fn", frame, fn.name)
        parts.extend(
            gen.int_entry_lines(
                entry, [d.pyname for d in decls], fn.body, fn.name, decls, fn_pos(fn)
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
    src = "\n".join(unit.lines + parts) + "\n"
    if unit.site_positions:
        src = "\n".join(_unmark(line, no, unit) for no, line in enumerate(src.split("\n"), 1))
    return src, unit


_SITE = re.compile("\x01(\\d+)\x02")


def _unmark(line: str, line_no: int, unit: Unit) -> str:
    """`line` without its call-site marks, recording where each marked call starts (as
    CPython's code positions give it: the line and the UTF-8 byte column)."""
    if "\x01" not in line:
        return line
    out: list[str] = []
    width = 0
    start = 0
    for m in _SITE.finditer(line):
        piece = line[start : m.start()]
        out.append(piece)
        width += len(piece.encode())
        unit.call_sites[(line_no, width)] = unit.site_positions[int(m.group(1))]
        start = m.end()
    out.append(line[start:])
    return "".join(out)


def int_entry_keys(engine: Any, script: Script, fn_frames: dict) -> list[tuple[str, int]]:
    """Script functions that get an INT entry (`FnGen.int_entry_lines`): every parameter is
    used arithmetically, never reassigned or captured, and the function has no `this`, no
    `eval` and no typed-method variants."""
    keys = []
    for key, fn in script.functions.items():
        decls, frame = fn_frames[key]
        if (
            not decls
            or fn.this_type is not None
            or key in script.extra_methods
            or frame.uses_this
            or frame.has_eval
            or frame.eval_dicts
            or (engine.max_variables and len(decls) > engine.max_variables)
            or any(d.captured or d.mutated or d.boxed or not d.arith_use for d in decls)
        ):
            continue
        if set(decls) <= infer_ints(frame.decls, set(decls)):
            keys.append(key)
    return keys


def fn_pos(fn: FnDef) -> tuple[int, int]:
    return (fn.line, fn.col)
