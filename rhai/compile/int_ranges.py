"""INT value ranges: arithmetic that provably fits in i64 needs no overflow check.

Ranges are known for loop variables of constant-bound `for` loops, for INT variables tested by
an `if` (inside each branch) and for operations on such values; code generation keeps them in
`FnGen.bounds`, keyed by the generated code of the value.
"""

from __future__ import annotations

import re

from ..ast import Node
from ..values import INT_MAX, INT_MIN
from .resolve import Decl

#: A known range: the smallest and the largest value.
Bounds = tuple[int, int]


def int_literal(code: str) -> int | None:
    """The value of generated code that is an INT literal (`5`, `(-5)`), else None."""
    text = code.strip("()")
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return None


def bounded(op: str, a: str, ba: Bounds, b: str, bb: Bounds) -> tuple[str, Bounds] | None:
    """Plain Python code for an INT operation whose result provably fits in i64."""
    if op in ("+", "-", "*"):
        if op == "+":
            rng = (ba[0] + bb[0], ba[1] + bb[1])
        elif op == "-":
            rng = (ba[0] - bb[1], ba[1] - bb[0])
        else:
            prods = [x * y for x in ba for y in bb]
            rng = (min(prods), max(prods))
        if rng[0] >= INT_MIN and rng[1] <= INT_MAX:
            return f"({a} {op} {b})", rng
        return None
    if op in ("%", "/") and ba[0] >= 0 and bb[0] > 0:
        if op == "%":
            return f"({a} % {b})", (0, min(ba[1], bb[1] - 1))
        return f"({a} // {b})", (ba[0] // bb[1], ba[1] // bb[0])
    return None


def narrowed(
    cond: Node, truth: bool, ints: set[Decl], bounds: dict[str, Bounds]
) -> tuple[str, Bounds] | None:
    """`n < 2` on a never-assigned INT variable bounds `n` inside each branch: the variable's
    generated name and its range there, or None."""
    if cond.kind != "binary" or cond.op not in ("<", "<=", ">", ">="):
        return None
    var, lit = cond.left, cond.right
    if not (var.kind == "var" and lit.kind == "const" and type(lit.value) is int):
        return None
    d = var.decl
    if d is None or d not in ints:
        return None
    # only for variables never assigned after their declaration
    if d.kind == "let":
        if len(d.writes) != 1:
            return None
    elif d.kind not in ("param", "for_range") or d.writes:
        return None
    lo, hi = bounds.get(d.pyname, (INT_MIN, INT_MAX))
    v = lit.value
    op = cond.op if truth else {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}[cond.op]
    if op == "<":
        hi = min(hi, v - 1)
    elif op == "<=":
        hi = min(hi, v)
    elif op == ">":
        lo = max(lo, v + 1)
    else:
        lo = max(lo, v)
    return (d.pyname, (lo, hi)) if lo <= hi else None


def loop_bounds(e: Node, ints: set[Decl]) -> Bounds | None:
    """`for i in 0..10`: the loop variable's range, when the bounds are INT literals and the
    body never assigns the variable."""
    it = e.iterable
    var = e.var_decl
    if (
        it.kind == "range"
        and it.left.kind == "const"
        and it.right.kind == "const"
        and type(it.left.value) is int
        and type(it.right.value) is int
        and var in ints
        and not var.writes
    ):
        hi = it.right.value if it.inclusive else it.right.value - 1
        if hi >= it.left.value:
            return (it.left.value, hi)
    return None
