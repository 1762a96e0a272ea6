"""Syntax tree of a Rhai script.

One generic node type keeps the parser and the compiler short: `kind` names the construct and
the remaining attributes are its parts. Kinds and their attributes:

- literals: `const` (value), `array` (items), `map` (items: list of (key, node)), `istr` (parts:
  str or block node), `unit`
- names: `var` (name), `this`, `fnptr_name`
- operators: `unary` (op, operand), `binary` (op, left, right), `and`/`or`/`coalesce` (left,
  right), `range` (left, right, inclusive)
- access: `index` (target, index, safe), `prop` (target, name, safe)
- calls: `call` (name, args, bang), `method` (target, name, args, safe)
- closures: `closure` (params, body, captures)
- compound: `block` (stmts), `if` (cond, then, other), `switch` (subject, cases, default),
  `while` (cond, body, until), `do` (body, cond, until), `loop` (body), `for` (var, index_var,
  iterable, body), `try` (body, err_var, catch)
- statements: `let` (name, value, const), `assign` (op, target, value), `expr` (expr),
  `break` (value), `continue`, `return` (value), `throw` (value), `fn` (name, params, body,
  private, this_type)
"""

from __future__ import annotations

from typing import Any


class Node:
    """A syntax tree node; `line`/`col` are where its defining token starts (1-based)."""

    def __init__(self, kind: str, pos: tuple[int, int], **parts: Any) -> None:
        self.kind = kind
        self.line, self.col = pos
        self.__dict__.update(parts)

    @property
    def pos(self) -> tuple[int, int]:
        return (self.line, self.col)

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{k}={v!r}" for k, v in self.__dict__.items() if k not in ("kind", "line", "col")
        )
        return f"{self.kind}({inner})"


class FnDef:
    """A script function definition."""

    def __init__(
        self, name: str, params: list[str], body: Node, private: bool, pos: tuple[int, int]
    ) -> None:
        self.name = name
        self.params = params
        self.body = body
        self.private = private
        self.this_type: str | None = None
        self.line, self.col = pos
