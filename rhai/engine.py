"""The host-facing API: Engine, AST and Scope.

`Engine.compile` parses a script and compiles it once to Python code; `eval`/`run` execute that
code. Whatever the input, only `RhaiError` leaves these methods: internal failures become
`ErrorSystem`, Python recursion becomes `ErrorStackOverflow` (or `ExprTooDeep` at compile time).
"""

from __future__ import annotations

import inspect
import re
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from . import runtime as rt_mod
from .callerscope import CallerScope, ConstCell, VarScope
from .compiler import ENGINE_BUILTINS, generate
from .errors import RhaiError, wrapped_message
from .parser import parse
from .runtime import ExitScript, Runtime, cp, err, from_host, unwind
from .values import Char, FnPtr, Shared, to_debug, to_string, type_name

try:
    from .stdlib import BUILTIN_NAMES as _STDLIB_NAMES
except ImportError:  # pragma: no cover - the standard library is developed in parallel
    _STDLIB_NAMES = frozenset()

_UNSET: Any = object()
_MODULE_NAME = re.compile(r"_*[A-Za-z][A-Za-z0-9_]*")
_RECURSION_LIMIT = 8000


class _ScopeDict(dict):
    """Variables visible to a script's top level; `consts` names the read-only ones."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.consts: set[str] = set()


class Scope:
    """Variables the host gives a script, and the script's top-level variables afterwards."""

    def __init__(self) -> None:
        self._vars = _ScopeDict()

    def push(self, name: str, value: Any) -> Scope:
        self._vars[name] = value
        self._vars.consts.discard(name)
        return self

    def push_constant(self, name: str, value: Any) -> Scope:
        self._vars[name] = value
        self._vars.consts.add(name)
        return self

    def set(self, name: str, value: Any) -> Scope:
        if name in self._vars.consts:
            raise RhaiError("ErrorAssignmentToConstant", f"Cannot modify constant {name}")
        self._vars[name] = value
        return self

    def get(self, name: str, default: Any = None) -> Any:
        return self._vars.get(name, default)

    def is_constant(self, name: str) -> bool:
        return name in self._vars.consts

    def names(self) -> list[str]:
        return list(self._vars)

    def __contains__(self, name: object) -> bool:
        return name in self._vars

    def __len__(self) -> int:
        return len(self._vars)

    def __repr__(self) -> str:
        return f"Scope({dict(self._vars)!r})"


class AST:
    """A compiled script: run it with `Engine.eval`/`Engine.run`/`Engine.call_fn`.

    - `functions`: {(name, arity)} of the script's own functions.
    - `functions_called`: names the script calls that are neither its own functions nor
      built in (stdlib or engine built-ins), i.e. what the host must provide.
    - `names_called`: every function name the script calls that is not its own, built in or
      not; a host that registers a name the stdlib also has (`log`, `sleep`) finds it here.
    """

    def __init__(self, source: str, code: str, unit: Any, namespace: dict[str, Any]) -> None:
        self.source = source
        self.code = code
        self._ns = namespace
        self._unit = unit
        self.functions: set[tuple[str, int]] = set(unit.fn_names)
        own = {name for name, _ in unit.fn_names}
        self.names_called: set[str] = {n for n in unit.called if n not in own}
        self.functions_called: set[str] = {
            n for n in self.names_called if n not in _STDLIB_NAMES and n not in ENGINE_BUILTINS
        }
        self.fn_table = {key: namespace[py] for key, py in unit.fn_names.items()}
        self.bang_table = {key: namespace[unit.bang_names[key]] for key in unit.bang_keys}
        self.private: set[tuple[str, int]] = {
            key for key, fn in unit.script.functions.items() if fn.private
        }


def _default_print(text: str) -> None:
    sys.stdout.write(text + "\n")


class Engine:
    """A Rhai script engine with safety limits (0 means unlimited).

    Defaults: max_operations=50_000_000, max_call_levels=64, max_expr_depth=64 (32 inside
    functions), max_string_size=10 MiB, max_array_size=max_map_size=1_000_000,
    max_variables=10_000, max_memory=256 MiB (all values a script holds together),
    max_data_depth=1024 (nesting of arrays, maps and curried function pointers),
    max_functions=0 (unlimited; functions and closures one script defines).

    `on_progress(operations)`, when set, is called every `progress_every` operations (default
    10_000) with the number of operations so far, like Rhai's `Engine::on_progress`: returning
    anything but None, or raising, ends the script with ErrorTerminated (never caught by the
    script). It rides on the operation counter, so it needs `max_operations` > 0, and costs
    nothing per operation (see `Runtime.start_counting`). A host uses it to stop a CPU-bound
    script cooperatively: cancel, timeout.
    """

    def __init__(
        self,
        *,
        max_operations: int = 50_000_000,
        max_call_levels: int = 64,
        max_expr_depth: int = 64,
        max_function_expr_depth: int | None = None,
        max_string_size: int = 10 * 1024 * 1024,
        max_array_size: int = 1_000_000,
        max_map_size: int = 1_000_000,
        max_variables: int = 10_000,
        max_memory: int = 256 * 1024 * 1024,
        max_data_depth: int = 1024,
        max_functions: int = 0,
        on_progress: Callable[[int], Any] | None = None,
        progress_every: int = 10_000,
    ) -> None:
        self.max_operations = max_operations
        self.max_call_levels = max_call_levels
        self.max_expr_depth = max_expr_depth
        self.max_function_expr_depth = (
            max_expr_depth // 2 if max_function_expr_depth is None else max_function_expr_depth
        )
        self.max_string_size = max_string_size
        self.max_array_size = max_array_size
        self.max_map_size = max_map_size
        self.max_variables = max_variables
        self.max_memory = max_memory
        self.max_data_depth = max_data_depth
        self.max_functions = max_functions
        self.on_print: Callable[[str], Any] = _default_print
        self.on_debug: Callable[[str], Any] = _default_print
        self.on_progress = on_progress
        self.progress_every = progress_every
        self._host_fns: dict[tuple[str, int], Callable[..., Any]] = {}
        self._module_consts: dict[str, dict[str, Any]] = {}
        self._rt = Runtime(self)
        # Deeply nested data (Rhai has no nesting limit) is copied, compared and printed
        # recursively; Python's default limit of 1000 frames would stop at ~500 levels.
        if sys.getrecursionlimit() < _RECURSION_LIMIT:
            sys.setrecursionlimit(_RECURSION_LIMIT)

    # ---- host functions ----
    def register_fn(self, name: str, fn: Callable[..., Any]) -> Engine:
        """Expose a Python callable to scripts as `name`, dispatched by its arity."""
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            self._host_fns[(name, 1)] = fn
            return self
        params = [
            p
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        required = sum(1 for p in params if p.default is p.empty)
        var = any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values())
        top = len(params) + (8 if var else 0)
        for n in range(required, top + 1):
            self._host_fns[(name, n)] = fn
        return self

    def register_module(self, name: str, members: Mapping[str, Any]) -> Engine:
        """Expose a named set of functions and constants: scripts call `name::fn(args)` and
        read `name::CONST`, as with a Rhai module registered by a host. Callables are
        registered like `register_fn` (under the qualified name, which is how they appear in
        `AST.functions_called`); other values are constants, copied into the script on each
        read. Registering the same name again adds to (and overrides members of) the module."""
        if not _MODULE_NAME.fullmatch(name):
            raise ValueError(f"module name {name!r} is not a Rhai identifier")
        consts = self._module_consts.setdefault(name, {})
        for member, value in members.items():
            if not _MODULE_NAME.fullmatch(member):
                raise ValueError(f"member {member!r} of module {name!r} is not a Rhai identifier")
            if callable(value) and not isinstance(value, FnPtr):
                self.register_fn(f"{name}::{member}", value)
            else:
                consts[member] = from_host(value)
        return self

    # ---- compile ----
    def compile(self, source: str) -> AST:
        """Parse and compile a script; raises RhaiError("ErrorParsing") on syntax errors."""
        return self._compile(source, eval_mode=False)

    def compile_expression(self, source: str) -> AST:
        """Compile a single expression, as Rhai's `compile_expression`: statements (`let`,
        assignments, `;`), `{}` blocks, loops and function definitions are parse errors, and
        the blocks of `if`/`switch` hold one expression each. A host evaluating a condition or
        a value from configuration gets no script where it asked for an expression."""
        return self._compile(source, eval_mode=False, expression_only=True)

    def eval_expression(self, source: str, scope: Scope | None = None) -> Any:
        """Compile `source` with `compile_expression` and return its value."""
        return self._run(self.compile_expression(source), scope)

    def _compile(self, source: str, eval_mode: bool, expression_only: bool = False) -> AST:
        if not isinstance(source, str):
            raise RhaiError("ErrorSystem", f"script must be a string, not {type(source).__name__}")
        try:
            script = parse(
                source,
                max_expr_depth=self.max_expr_depth,
                max_fn_expr_depth=self.max_function_expr_depth,
                max_string_size=self.max_string_size,
                max_array_size=self.max_array_size,
                max_map_size=self.max_map_size,
                allow_fn=not eval_mode,
                expression_only=expression_only,
                modules=frozenset(self._module_consts),
                max_functions=self.max_functions,
            )
            code, unit = generate(self, script)
            namespace = self._namespace(unit)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                code_obj = compile(code, "<rhai>", "exec")
            exec(code_obj, namespace)  # noqa: S102 - generated code, user text only as literals
        except RhaiError:
            raise
        except (RecursionError, MemoryError, SyntaxError) as e:
            raise RhaiError(
                "ErrorParsing", "Expression exceeds maximum complexity", parse_kind="ExprTooDeep"
            ) from e
        except Exception as e:
            raise RhaiError("ErrorSystem", f"internal compiler error: {e!r}") from e
        return AST(source, code, unit, namespace)

    def _namespace(self, unit: Any) -> dict[str, Any]:
        r = self._rt
        m = rt_mod
        return {
            "__builtins__": {
                "type": type,
                "dict": dict,
                "tuple": tuple,
                "int": int,
                "next": next,
                "enumerate": enumerate,
                "len": len,
                "str": str,
                "float": float,
                "list": list,
            },
            "_rt": r,
            "_K": unit.consts,
            "RhaiError": RhaiError,
            "_O": r.oc,
            "_tmo": r.op_checkpoint,
            "_so": r.stack_overflow,
            "_soc": r.stack_overflow_here,
            "_CALLPOS": unit.call_sites,
            "_INT_NAMES": unit.int_names,
            "_ovf": r.ovf,
            "_add": r.add,
            "_iadd": r.iadd,
            "_arith": m.arith,
            "_div": m.div,
            "_mod": m.mod,
            "_pow": m.pow_,
            "_lt": m.lt,
            "_le": m.le,
            "_gt": m.gt,
            "_ge": m.ge,
            "_eq": r.eq,
            "_ne": r.ne,
            "_shift": m.shift,
            "_bitop": m.bitop,
            "_neg": m.neg,
            "_plus": m.plus,
            "_not": m.not_,
            "_cond": m.cond,
            "_make_range": m.make_range,
            "_for_range": m.for_range,
            "_for_iter": m.for_iter,
            "_index": m.index_get,
            "_prop": r.prop,
            "_call": r.call,
            "_cp": r.cp,
            "_Shared": Shared,
            "_CT": (list, dict),
            "_Mut": rt_mod.Mut,
            "_FnPtr": FnPtr,
            "_type_name": type_name,
            "_interp": _interp,
            "_this": _this,
            "_unbound": _unbound,
            "_err": err,
            "_not_found": rt_mod.not_found,
            "_catchable": r.catchable,
            "_caught": r.caught_value,
            "_wrap": r.wrap,
            "_Exit": ExitScript,
            "_contains": self._contains,
            "_switch_eq": m.switch_eq,
            "_gconst": _gconst,
            "_GC": {},
            "_dget": _dget,
            "_dset": _dset,
            "_SC": _ScopeDict(),
            "_WB": None,
            "_NOVARS": _ScopeDict(),
            "_UNSET": _UNSET,
            "_write_back": _write_back,
            "_CS": CallerScope,
            "_VS": VarScope,
            "_ConstCell": ConstCell,
            "_call_method": self._call_method,
            "_rt_eval": self._eval_string,
            "_ev_find": _ev_find,
        }

    # ---- run ----
    def eval(self, script: str | AST, scope: Scope | None = None) -> Any:
        """Run a script (source or AST) and return its value (Python value mapping)."""
        ast = script if isinstance(script, AST) else self.compile(script)
        return self._run(ast, scope)

    def eval_ast(self, ast: AST, scope: Scope | None = None) -> Any:
        return self._run(ast, scope)

    def run(self, script: str | AST, scope: Scope | None = None) -> None:
        """Run a script for its effects; the value is discarded."""
        self.eval(script, scope)

    def _run(self, ast: AST, scope: Scope | None) -> Any:
        sc = scope._vars if scope is not None else _ScopeDict()
        ns = ast._ns
        r = self._rt
        saved = (r.fns, ns["_SC"], ns["_GC"], r.bang_fns, r.entry)
        if r.depth == 0:
            r.start_counting()
        if r.entry is None:
            # the memory budget is per outermost run: a host function running another script
            # on this engine shares it, and measuring walks up to the outermost run
            r.reset_budget()
            r.entry = sys._getframe()
        ns["_SC"] = ns["_WB"] = sc
        ns["_GC"] = {}
        r.fns = ast.fn_table
        r.bang_fns = ast.bang_table
        try:
            return _export(ns["_main"](None, 0, None))
        except ExitScript as e:
            return _export(e.value)
        except RhaiError as e:
            wrapped = unwind(e)
            if wrapped is e:
                raise
            raise wrapped from None
        except RecursionError:
            raise RhaiError("ErrorStackOverflow", "Stack overflow") from None
        except MemoryError:
            raise RhaiError("ErrorDataTooLarge", "Out of memory", what="Memory") from None
        except Exception as e:
            raise RhaiError("ErrorSystem", f"internal engine error: {e!r}") from e
        finally:
            r.fns, ns["_SC"], ns["_GC"], r.bang_fns, r.entry = saved

    def call_fn(self, ast: AST, name: str, *args: Any) -> Any:
        """Call a (non-private) script function of `ast` by name with Python arguments."""
        fn = ast.fn_table.get((name, len(args)))
        if fn is None or (name, len(args)) in ast.private:
            raise RhaiError(
                "ErrorFunctionNotFound",
                f"Function not found: {name} ({', '.join(type_name(a) for a in args)})",
                function=name,
            )
        r = self._rt
        saved = r.fns, r.entry
        r.fns = ast.fn_table
        if r.depth == 0:
            r.start_counting()
        if r.entry is None:
            r.reset_budget()
            r.entry = sys._getframe()
        try:
            return _export(fn(None, 1, None, *[cp(a) for a in args]))
        except ExitScript as e:
            return _export(e.value)
        except RhaiError:
            raise
        except RecursionError:
            raise RhaiError("ErrorStackOverflow", "Stack overflow") from None
        except Exception as e:
            raise RhaiError("ErrorSystem", f"internal engine error: {e!r}") from e
        finally:
            r.fns, r.entry = saved

    # ---- engine-owned built-ins reached at run time ----
    def _eval_string(
        self,
        src: Any,
        env: CallerScope,
        depth: int,
        p: Any,
        gc: dict | None,
        top_level: bool,
        block_vars: dict | None = None,
    ) -> Any:
        """`eval(src)`: run `src` in the caller's variables; new variables stay visible."""
        if type(src) is not str:
            raise rt_mod.mismatch("string", src, p)
        # `eval` is a call level, so `let s = "eval(s)"; eval(s)` stops at max_call_levels
        depth += 1
        if self.max_call_levels and depth > self.max_call_levels:
            self._rt.stack_overflow(p)
        r = self._rt
        dyn = env.dyn
        statics = env.statics()
        sc = _ScopeDict(dyn)
        sc.consts = set(getattr(dyn, "consts", ()))
        for k, cell in statics.items():
            sc[k] = cell.value
            if type(cell) is ConstCell:
                sc.consts.add(k)
            else:
                sc.consts.discard(k)
        saved_fns = r.fns
        r.depth += 1
        try:
            ast = self._compile(src, eval_mode=True)
            ns = ast._ns
            ns["_SC"] = sc
            new_vars = ns["_WB"] = _ScopeDict()
            ns["_GC"] = gc if gc is not None else {}
            value = ns["_main"](None, depth, p)
        except RhaiError as e:
            raise _wrap_eval(e, p) from None
        finally:
            r.depth -= 1
            r.fns = saved_fns
        for k, v in sc.items():
            cell = statics.get(k)
            if cell is not None:
                if type(cell) is not ConstCell:
                    cell.value = v
            elif k in dyn:
                dyn[k] = v
        if top_level:
            # a top-level `let` inside eval stays visible in the caller's scope
            for k, v in new_vars.items():
                cell = statics.get(k)
                if cell is None:
                    dyn[k] = v
                elif type(cell) is not ConstCell:
                    cell.value = v
        elif block_vars is not None:
            # inside a block, it stays visible until the block ends
            block_vars.update(new_vars)
        return value

    def _contains(self, container: Any, item: Any, p: Any) -> bool:
        t = type(container)
        if t is Shared:
            return self._contains(container.value, item, p)
        if t is list:
            return any(rt_mod.equals(x, item) for x in container)
        if t is dict:
            if type(item) in (str, Char):
                return str(item) in container
            raise rt_mod.not_found("contains", (container, item), p)
        if t is str:
            if type(item) in (str, Char):
                return str(item) in container
            raise rt_mod.not_found("contains", (container, item), p)
        if t is rt_mod.Range:
            if type(item) is int:
                return (
                    container.start
                    <= item
                    < (container.end + 1 if container.inclusive else container.end)
                )
            return False
        return bool(self._rt.call("contains", p, container, item))

    def _call_method(self, target: Any, args: tuple, p: Any) -> Any:
        r = self._rt
        target = target.value if type(target) is Shared else target
        if type(target) is FnPtr:
            return r.call_ptr(target, args, None, p)
        if type(target) is str:
            return r.call_ptr(FnPtr(target), args, None, p)
        if args and type(args[0]) is FnPtr:
            return r.call_ptr(args[0], args[1:], [target], p)
        raise rt_mod.mismatch("Fn", target, p)

    def _builtin_call(self, name: str, args: tuple, p: Any) -> Any:
        """Engine built-ins reached through a function pointer (`Fn("print")`)."""
        if name == "print" and len(args) == 1:
            self._rt.print_(args[0])
            return None
        if name == "debug" and len(args) == 1:
            self._rt.debug(args[0])
            return None
        if name == "type_of" and len(args) == 1:
            return type_name(args[0])
        return NotImplemented


# ---- helpers used by generated code ----


def _interp(v: Any) -> str:
    if type(v) is bytearray:
        return v.decode("utf-8", errors="replace")
    return to_string(v)


def _this(holder: list | None, p: Any) -> Any:
    if holder is None:
        _unbound(p)
    return holder[0]  # type: ignore[index]


def _unbound(p: Any) -> None:
    raise err("ErrorUnboundThis", "'this' is not bound", p)


def _gconst(gc: dict, name: str, p: Any) -> Any:
    try:
        return gc[name]
    except KeyError:
        raise err(
            "ErrorVariableNotFound", f"Variable not found: global::{name}", p, variable=name
        ) from None


def _dget(d: dict, name: str, p: Any) -> Any:
    try:
        return d[name]
    except KeyError:
        raise err(
            "ErrorVariableNotFound", f"Variable not found: {name}", p, variable=name
        ) from None


def _dset(d: Any, name: str, value: Any, p: Any) -> None:
    if name not in d:
        raise err("ErrorVariableNotFound", f"Variable not found: {name}", p, variable=name)
    if name in getattr(d, "consts", ()):
        raise err("ErrorAssignmentToConstant", f"Cannot modify constant {name}", p, variable=name)
    d[name] = value


def _write_back(sc: Any, pairs: tuple) -> None:
    for name, value, const in pairs:
        if value is _UNSET:
            continue
        if type(value) is Shared:
            value = value.value
        sc[name] = value
        if const:
            sc.consts.add(name)
        else:
            sc.consts.discard(name)


def _ev_find(dicts: tuple, name: str) -> dict | None:
    for d in dicts:
        if name in d:
            return d
    return None


def _wrap_eval(e: RhaiError, p: Any) -> RhaiError:
    e = unwind(e)
    line, col = p if p else (None, None)
    return RhaiError(
        "ErrorInFunctionCall",
        wrapped_message("eval", e),
        line,
        col,
        inner=e,
        function="eval",
    )


def _export(v: Any) -> Any:
    """Values handed to the host: shared cells are unwrapped."""
    if type(v) is Shared:
        return _export(v.value)
    return v


__all__ = ["AST", "Engine", "Scope", "to_debug"]
