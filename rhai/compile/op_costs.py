"""How many operations a piece of script costs, counted the way Rhai counts them.

Rhai (src/eval: `track_operation`) counts one operation per statement evaluated, one per
expression node evaluated (constants and variables included), one more per function call
(native or script), one per assignment target and, through those, one per element of an
array or map literal. The generated code charges these counts in bulk, where a run of code
starts: a script function (or closure) on entry charges its body, a loop each iteration its
condition and body, the main script its top-level statements. A loop, function or closure
inside that code charges its own body itself. Branches are charged as the costlier one
(`if`, `switch`), and an early `return`/`break` does not refund the rest, so the count can
be above Rhai's for a branchy body and never below it for straight code.
"""

from __future__ import annotations

from ..ast import Node

_LOOPS = ("while", "loop", "do", "for")


def block_cost(block: Node | None) -> int:
    """The statements of a block (a `{}` body), without nested loops' and closures' bodies."""
    if block is None:
        return 0
    if block.kind != "block":
        return expr_cost(block)
    return sum(stmt_cost(s) for s in block.stmts)


def stmt_cost(s: Node) -> int:
    k = s.kind
    if k == "expr":
        return 1 + expr_cost(s.expr)
    if k == "let":
        return 1 + expr_cost(s.value)
    if k == "assign":
        target = s.target
        path = 0 if target.kind in ("var", "this") else expr_cost(target) - 1
        return 2 + path + expr_cost(s.value)
    if k in ("return", "throw", "break"):
        return 1 + expr_cost(s.value)
    return 1


def expr_cost(n: Node | None) -> int:
    """One expression evaluated once (see the module docstring for what is left out)."""
    if n is None:
        return 0
    k = n.kind
    if k in ("binary", "and", "or", "coalesce", "range"):
        return 2 + expr_cost(n.left) + expr_cost(n.right)
    if k == "unary":
        return 2 + expr_cost(n.operand)
    if k == "array":
        return 1 + sum(expr_cost(i) for i in n.items)
    if k == "map":
        return 1 + sum(expr_cost(v) for _, v in n.items)
    if k == "istr":
        return 1 + sum(1 if isinstance(p, str) else block_cost(p) for p in n.parts)
    if k == "index":
        return 1 + expr_cost(n.target) + expr_cost(n.index)
    if k == "prop":
        return 1 + expr_cost(n.target)
    if k == "call":
        return 2 + sum(expr_cost(a) for a in n.args)
    if k == "method":
        return 2 + expr_cost(n.target) + sum(expr_cost(a) for a in n.args)
    if k == "block":
        return 1 + block_cost(n)
    if k == "if":
        other = n.other
        other_cost = (
            0 if other is None else (expr_cost(other) if other.kind == "if" else block_cost(other))
        )
        return 1 + expr_cost(n.cond) + max(block_cost(n.then), other_cost)
    if k == "switch":
        bodies = [block_cost(body) + expr_cost(guard) for _, guard, body in n.cases]
        if n.default is not None:
            bodies.append(block_cost(n.default))
        return 1 + expr_cost(n.subject) + max(bodies, default=0)
    if k == "for":
        return 1 + expr_cost(n.iterable)
    if k in _LOOPS:
        return 1
    if k == "try":
        return 1 + block_cost(n.body)
    return 1


def iteration_cost(loop: Node) -> int:
    """One iteration of a loop: its condition (`while`, `do`) and its body."""
    cond = expr_cost(loop.cond) if loop.kind in ("while", "do") else 0
    return 1 + cond + block_cost(loop.body)
