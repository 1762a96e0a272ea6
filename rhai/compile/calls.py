"""Calls: script functions (direct Python calls), `f!()` in the caller's scope, engine
built-ins (`print`, `Fn`, `call`, `eval`, `take`, ...), natives, and method calls with their
inline `push` and `len`.
"""

from __future__ import annotations

from ..ast import Node
from .int_types import static_int
from .pycode import SIMPLE

# Names handled by the engine itself rather than the standard library.
#: Names handled by the engine itself rather than the standard library.
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


class CallGen:
    """Function and method calls.

    Mixed into `FnGen` (rhai/compiler.py), whose emission helpers and state it uses."""

    def depth(self) -> str:
        return "D + 1"

    def call(self, n: Node) -> tuple[str, str | None]:
        name = n.name
        nargs = len(n.args)
        p = repr(n.pos)
        if getattr(n, "module_const", False):
            return f"_rt.module_const({name!r}, {p})", None
        key = (name, nargs)
        script = self.unit.fn_names.get(key)
        if script is not None and n.bang:
            return self.bang_call(n, key), None
        if name == "call" and n.bang and nargs >= 1:
            return self.bang_call(n, None), None
        entry = self.unit.int_entries.get(key)
        if entry is not None and all(static_int(a, self.ints, self.unit.int_fns) for a in n.args):
            args = self.exprs_in_order(n.args)
            rtype = "int" if key in self.unit.int_fns else None
            # no position argument: errors find it from the call site (`Unit.call_site`)
            site = self.unit.call_site(n.pos)
            return f"{site}{entry}({self.depth()}{''.join(', ' + a for a in args)})", rtype
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
                if not SIMPLE.match(arg):
                    arg = self.tmp()
                    self.emit(f"{arg} = {vals[1]}")
                vals[1] = arg
                self.emit(f"if type({t}) is list:")
                reads = n.args[0].kind in ("var", "index", "prop", "this")
                item = n.args[0]
                scalar = static_int(item, self.ints, self.unit.int_fns) or (
                    item.kind == "const" and type(item.value) in (int, float, bool, str)
                )
                if not scalar:
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
