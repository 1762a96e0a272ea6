"""INT inference: which variables only ever hold INTs, which script functions return INTs.

Code generation compiles an operation whose operands are known INTs to plain Python arithmetic
with an overflow check and no type tests (rhai/compile/operators.py), and a function whose
parameters are used arithmetically gets a copy of its body specialised for INT arguments. The
facts come from the resolver's annotations (rhai/compile/resolve.py): a variable is an INT when
its initialiser and every assignment to it are INT expressions, a fixed point over all of them.
"""

from __future__ import annotations

from typing import Any

from ..ast import Node
from ..parser import Script
from .resolve import Decl

#: Binary operators whose result is an INT (or an error) when both operands are INTs.
INT_CLOSED = frozenset(["+", "-", "*", "/", "%", "**", "<<", ">>", "&", "|", "^"])


def static_int(node: Node | None, ints: set[Decl], int_fns: frozenset | set = frozenset()) -> bool:
    """Whether `node` certainly evaluates to an INT (or fails), given INT variables `ints`
    and script functions `int_fns` that return INTs for INT arguments."""
    if node is None:
        return False
    k = node.kind
    if k == "const":
        return type(node.value) is int
    if k == "var":
        return node.decl in ints
    if k == "unary":
        return node.op in "-+" and static_int(node.operand, ints, int_fns)
    if k == "binary":
        return (
            node.op in INT_CLOSED
            and static_int(node.left, ints, int_fns)
            and static_int(node.right, ints, int_fns)
        )
    if k == "call":
        return (node.name, len(node.args)) in int_fns and all(
            static_int(a, ints, int_fns) for a in node.args
        )
    if k == "if":
        return (
            node.other is not None
            and static_int(node.then, ints, int_fns)
            and static_int(node.other, ints, int_fns)
        )
    if k == "block":
        return (
            bool(node.stmts)
            and node.stmts[-1].kind == "expr"
            and static_int(node.stmts[-1].expr, ints, int_fns)
        )
    return False


def _has_return(node: Any) -> bool:
    """Whether a `return` (or `exit`/`eval`) appears outside nested closures. (A loop over
    an explicit stack: this runs for every function at every compile, and `eval` compiles.)"""
    stack = [node]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is Node:
            kind = v.kind
            if kind == "return" or (kind == "call" and v.name in ("exit", "eval")):
                return True
            if kind != "closure":
                stack.extend(
                    x for k, x in v.__dict__.items() if k != "decl" and type(x) in _CONTAINERS
                )
        elif t is list or t is tuple:
            stack.extend(x for x in v if type(x) in _CONTAINERS)
    return False


_CONTAINERS = frozenset((Node, list, tuple))


def int_functions(script: Script, fn_frames: dict) -> set[tuple[str, int]]:
    """Script functions that return an INT whenever all their arguments are INTs."""
    cands: dict[tuple[str, int], set[Decl]] = {}
    for key, fn in script.functions.items():
        decls, frame = fn_frames[key]
        if not decls or frame.has_eval or _has_return(fn.body):
            continue
        spec = [d for d in decls if not d.captured and not d.mutated and d.arith_use]
        fast = infer_ints(frame.decls, set(spec))
        if all(d in fast for d in decls):
            cands[key] = fast
    int_fns = set(cands)
    changed = True
    while changed:
        changed = False
        for key in list(int_fns):
            if not static_int(script.functions[key].body, cands[key], int_fns):
                int_fns.discard(key)
                changed = True
    return int_fns


def _static_str(node: Node | None) -> bool:
    """Whether `node` certainly evaluates to a string: a literal, an interpolated string or
    an `if` choosing between two string literals."""
    if node is None:
        return False
    if node.kind == "istr":
        return True
    if node.kind == "const":
        return type(node.value) is str
    if node.kind == "if":
        branches = [node.then, node.other]
        return all(
            b is not None
            and b.kind == "block"
            and len(b.stmts) == 1
            and b.stmts[0].kind == "expr"
            and _static_str(b.stmts[0].expr)
            for b in branches
        )
    return False


def infer_strs(decls: list[Decl]) -> set[Decl]:
    """Variables that only ever hold strings: declared with one and only `=`/`+=` strings
    (string + string is a string), never captured, exposed or bound to `this`."""
    return {
        d
        for d in decls
        if d.kind == "let"
        and not d.captured
        and not d.mutated
        and d.writes
        and all(op in ("=", "+=") and _static_str(v) for op, v in d.writes)
    }


def infer_ints(decls: list[Decl], assume: set[Decl] = frozenset()) -> set[Decl]:  # type: ignore[assignment]
    """Variables that only ever hold INTs: fixed point over their initialisers and assignments."""
    ints = {
        d
        for d in decls
        if not d.captured
        and not d.mutated
        and (d.kind == "for_range" or (d.kind == "let" and d.writes) or d in assume)
    }
    changed = True
    while changed:
        changed = False
        for d in list(ints):
            if d.kind == "for_range":
                ok = not d.writes or all(
                    op[:-1] in INT_CLOSED | {""} and static_int(v, ints) for op, v in d.writes
                )
            else:
                ok = all(
                    (op == "=" or op[:-1] in INT_CLOSED) and static_int(v, ints)
                    for op, v in d.writes
                )
            if not ok:
                ints.discard(d)
                changed = True
    return ints
