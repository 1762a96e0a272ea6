"""Rhai parser: tokens to a syntax tree, with Rhai's precedence, parse error kinds and limits.

Depth is counted per nesting level (sub-expression, block, each step of an operator chain) and
checked against `max_expr_depth` (tighter inside functions), so deeply nested input fails with
`ExprTooDeep` long before Python's own recursion limit could matter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .ast import FnDef, Node
from .errors import RhaiError
from .lexer import Token, tokenize
from .values import INT_MAX, INT_MIN, Range

BINARY_PRECEDENCE = {
    "||": 30,
    "|": 30,
    "^": 30,
    "&&": 60,
    "&": 60,
    "==": 90,
    "!=": 90,
    "in": 110,
    "!in": 110,
    "<": 130,
    "<=": 130,
    ">": 130,
    ">=": 130,
    "??": 135,
    "..": 140,
    "..=": 140,
    "+": 150,
    "-": 150,
    "*": 180,
    "/": 180,
    "%": 180,
    "**": 190,
    "<<": 210,
    ">>": 210,
}
ASSIGN_OPS = frozenset(["=", "+=", "-=", "*=", "/=", "%=", "**=", "<<=", ">>=", "&=", "|=", "^="])
_RANGE_END_CLOSERS = frozenset({"]", ")", "}", ",", ";", "=>"})
_TYPE_ALIASES = {"int": "i64", "float": "f64", "INT": "i64", "FLOAT": "f64"}
# names that may not be used for script functions (they are engine built-ins)
RESERVED_FN_NAMES = frozenset(
    {
        "Fn",
        "call",
        "curry",
        "is_def_fn",
        "is_def_var",
        "is_shared",
        "type_of",
        "print",
        "debug",
        "eval",
        "this",
    }
)


_FLOW_KEYWORDS = ("break", "continue", "return", "throw")


def parse_error(kind: str, message: str, pos: tuple[int, int] | None) -> RhaiError:
    line, col = pos if pos else (None, None)
    return RhaiError("ErrorParsing", message, line, col, parse_kind=kind)


class Script:
    """A parsed script: global statements and function definitions keyed by (name, arity)."""

    def __init__(
        self,
        stmts: list[Node],
        functions: dict[tuple[str, int], FnDef],
        extra_methods: dict[tuple[str, int], list[FnDef]] | None = None,
    ) -> None:
        self.stmts = stmts
        self.functions = functions
        self.extra_methods = extra_methods or {}


class Parser:
    """Recursive-descent/precedence-climbing parser over a token list."""

    def __init__(
        self,
        tokens: list[Token],
        *,
        max_expr_depth: int = 64,
        max_fn_expr_depth: int = 32,
        max_string_size: int = 0,
        max_array_size: int = 0,
        max_map_size: int = 0,
        allow_fn: bool = True,
        expression_only: bool = False,
        modules: frozenset[str] = frozenset(),
        max_functions: int = 0,
    ) -> None:
        self.toks = tokens
        # functions and closures defined so far, against `max_functions` (0: unlimited)
        self.max_functions = max_functions
        self.n_functions = 0
        # names registered with `Engine.register_module`: `name::member` is allowed for these
        self.modules = modules
        # `Engine.compile_expression`: no statements, loops or `{}` blocks; the blocks of
        # `if`/`switch` hold one expression each (Rhai's DISALLOW_STATEMENTS_IN_BLOCKS)
        self.expression_only = expression_only
        self.i = 0
        self.depth = 0
        self.global_limit = max_expr_depth
        self.fn_limit = max_fn_expr_depth
        self.limit = max_expr_depth
        self.max_string_size = max_string_size
        self.max_array_size = max_array_size
        self.max_map_size = max_map_size
        self.loop_depth = 0
        self.in_fn = False
        self.allow_fn = allow_fn
        self.functions: dict[tuple[str, int], FnDef] = {}
        # typed methods sharing (name, arity) with another function: {key: [FnDef]}
        self.extra_methods: dict[tuple[str, int], list[FnDef]] = {}

    # ---- token helpers ----
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        j = min(self.i + k, len(self.toks) - 1)
        return self.toks[j]

    def next(self) -> Token:
        t = self.toks[self.i]
        if self.i < len(self.toks) - 1:
            self.i += 1
        return t

    def at_sym(self, s: str) -> bool:
        t = self.toks[self.i]
        return t.kind == "sym" and t.value == s

    def at_kw(self, s: str) -> bool:
        t = self.toks[self.i]
        return t.kind == "kw" and t.value == s

    def eat_sym(self, s: str) -> bool:
        if self.at_sym(s):
            self.next()
            return True
        return False

    def expect_sym(self, s: str, context: str) -> Token:
        t = self.tok
        if t.kind == "sym" and t.value == s:
            return self.next()
        if t.kind == "eof":
            raise parse_error("MissingToken", f"Expecting '{s}' {context}", (t.line, t.col))
        raise parse_error("MissingToken", f"Expecting '{s}' {context}", (t.line, t.col))

    def pos(self, t: Token | None = None) -> tuple[int, int]:
        t = t or self.tok
        return (t.line, t.col)

    def enter(self, t: Token | None = None) -> None:
        self.depth += 1
        if self.limit and self.depth > self.limit:
            raise parse_error("ExprTooDeep", "Expression exceeds maximum complexity", self.pos(t))

    def leave(self) -> None:
        self.depth -= 1

    def nested(self, parse: Callable[[], Node]) -> Node:
        """`parse` one expression level deeper (where Rhai's parser calls `level_up` before
        a construct that counts its own level as well)."""
        self.enter()
        node = parse()
        self.leave()
        return node

    def unexpected(self, what: str = "") -> RhaiError:
        """The error for a token that cannot start or continue what is being parsed."""
        t = self.tok
        if t.kind == "eof":
            return parse_error("UnexpectedEOF", "Script is incomplete", self.pos(t))
        if t.kind == "reserved":
            return parse_error("Reserved", f"'{t.value}' is a reserved keyword", self.pos(t))
        shown = t.value if t.kind in ("sym", "kw", "ident") else t.kind
        suffix = f" (expecting {what})" if what else ""
        return RhaiError(
            "ErrorParsing",
            f"Unexpected '{shown}'{suffix}",
            t.line,
            t.col,
            parse_kind="BadInput",
            lex_kind="UnexpectedInput",
        )

    # ---- script ----
    def parse_script(self) -> Script:
        stmts = self.statements(top=True)
        return Script(stmts, self.functions, self.extra_methods)

    def parse_expression(self) -> Script:
        """One expression and nothing after it (`Engine.compile_expression`)."""
        node = self.expr()
        if self.tok.kind != "eof":
            raise self.unexpected()
        return Script([Node("expr", node.pos, expr=node)], {})

    def statements(self, top: bool) -> list[Node]:
        stmts: list[Node] = []
        while True:
            t = self.tok
            if t.kind == "eof":
                if not top:
                    raise parse_error("MissingToken", "Expecting '}' to end this block", self.pos())
                return stmts
            if not top and t.kind == "sym" and t.value == "}":
                return stmts
            if t.kind == "sym" and t.value == ";":
                self.next()
                continue
            stmt = self.statement(top)
            if stmt is None:
                continue
            stmts.append(stmt)
            if self.eat_sym(";"):
                continue
            t = self.tok
            if t.kind == "eof" or (t.kind == "sym" and t.value == "}"):
                continue
            if ends_with_block(stmt):
                continue
            raise parse_error(
                "MissingToken", "Expecting ';' to terminate this statement", self.pos(t)
            )

    def block(self) -> Node:
        t = self.tok
        if not self.at_sym("{"):
            raise parse_error("MissingToken", "Expecting '{' to start a block", self.pos())
        self.next()
        self.enter(t)
        if self.expression_only:
            node = self.expr()
            self.expect_sym("}", "to end this block")
            stmts = [Node("expr", node.pos, expr=node)]
        else:
            stmts = self.statements(top=False)
            self.next()
        self.leave()
        return Node("block", self.pos(t), stmts=stmts)

    def statement(self, top: bool) -> Node | None:
        # Rhai's parse_stmt goes one expression level up for whatever statement follows
        self.enter()
        try:
            return self.statement_inner(top)
        finally:
            self.leave()

    def statement_inner(self, top: bool) -> Node | None:
        t = self.tok
        if t.kind == "kw":
            v = t.value
            if v in ("let", "const"):
                return self.let_stmt()
            if v == "fn" or v == "private":
                if not top or self.in_fn or not self.allow_fn:
                    raise parse_error(
                        "WrongFnDefinition",
                        "Function definitions must be at global level",
                        self.pos(),
                    )
                self.fn_def()
                return None
            if v == "return" or v == "throw":
                self.next()
                value = None
                if not (self.at_sym(";") or self.at_sym("}") or self.tok.kind == "eof"):
                    value = self.expr()
                return Node(v, self.pos(t), value=value)
            if v == "break" or v == "continue":
                self.next()
                if self.loop_depth == 0:
                    raise parse_error("LoopBreak", f"'{v}' not inside a loop", self.pos(t))
                value = None
                if v == "break" and not (
                    self.at_sym(";") or self.at_sym("}") or self.tok.kind == "eof"
                ):
                    value = self.expr()
                return Node(v, self.pos(t), value=value)
            if v in ("if", "switch", "while", "loop", "do", "for", "try"):
                return Node("expr", self.pos(t), expr=self.primary_keyword(t))
            if v == "import" or v == "export":
                raise parse_error(
                    "WrongExport" if v == "export" else "ModuleUndefined",
                    "Modules (import/export) are not supported",
                    self.pos(t),
                )
        if t.kind == "sym" and t.value == "{":
            return Node("expr", self.pos(t), expr=self.block())
        expr = self.expr()
        op = self.tok
        if op.kind == "sym" and op.value in ASSIGN_OPS:
            self.check_lhs(expr)
            self.next()
            value = self.expr()
            return Node("assign", self.pos(op), op=op.value, target=expr, value=value)
        return Node("expr", expr.pos, expr=expr)

    def check_lhs(self, node: Node) -> None:
        target = node
        while target.kind in ("index", "prop"):
            target = target.target
        if (target.kind in ("var", "this") and target is not node) or node.kind in ("var", "this"):
            return
        if target.kind in ("var", "this"):
            return
        if node.kind in ("const", "unit", "array", "map", "istr"):
            raise parse_error("AssignmentToConstant", "Cannot assign to a constant value", node.pos)
        raise parse_error(
            "AssignmentToInvalidLHS",
            "Left-hand side of an assignment must be a variable, a property or an index",
            node.pos,
        )

    def let_stmt(self) -> Node:
        t = self.next()
        is_const = t.value == "const"
        name_tok = self.tok
        if name_tok.kind != "ident":
            if name_tok.kind == "reserved":
                raise parse_error(
                    "Reserved", f"'{name_tok.value}' is a reserved keyword", self.pos(name_tok)
                )
            raise parse_error("VariableExpected", "Expecting name of a variable", self.pos())
        self.next()
        value = None
        if self.eat_sym("="):
            value = self.expr()
        return Node("let", self.pos(t), name=name_tok.value, value=value, const=is_const)

    def fn_def(self) -> None:
        start = self.tok
        private = False
        this_type = None
        if self.at_kw("private"):
            private = True
            self.next()
            if not self.at_kw("fn"):
                raise parse_error("MissingToken", "Expecting 'fn' after 'private'", self.pos())
        self.count_function()
        self.next()
        name_tok = self.next()
        if name_tok.kind == "str" or (
            name_tok.kind in ("ident", "kw") and self.at_sym(".") and name_tok.value != "this"
        ):
            # typed method `fn int.name()` / `fn "Type".name()`: `this` must have that type
            if not self.at_sym("."):
                raise parse_error("FnMissingName", "Expecting function name", self.pos())
            this_type = _TYPE_ALIASES.get(name_tok.value, name_tok.value)
            self.next()
            name_tok = self.next()
        if name_tok.kind != "ident" or name_tok.value in RESERVED_FN_NAMES:
            if name_tok.kind == "reserved":
                raise parse_error(
                    "Reserved", f"'{name_tok.value}' is a reserved keyword", self.pos(name_tok)
                )
            raise parse_error("FnMissingName", "Expecting function name", self.pos(name_tok))
        name = name_tok.value
        if not self.at_sym("("):
            raise parse_error(
                "FnMissingParams", f"Expecting parameters for function '{name}'", self.pos()
            )
        self.next()
        params: list[str] = []
        while not self.at_sym(")"):
            p = self.tok
            if p.kind != "ident":
                if p.kind == "eof":
                    raise parse_error("UnexpectedEOF", "Script is incomplete", self.pos())
                raise parse_error(
                    "MissingToken", "Expecting ')' to close the parameters list", self.pos(p)
                )
            self.next()
            if p.value in params:
                raise parse_error(
                    "FnDuplicatedParam",
                    f"Duplicated parameter '{p.value}' for function '{name}'",
                    self.pos(p),
                )
            params.append(p.value)
            if not self.eat_sym(","):
                break
        self.expect_sym(")", "to close the parameters list")
        if not self.at_sym("{"):
            raise parse_error("FnMissingBody", f"Expecting body for function '{name}'", self.pos())
        key = (name, len(params))
        existing = self.functions.get(key)
        same_type = existing is not None and (
            existing.this_type == this_type
            or any(f.this_type == this_type for f in self.extra_methods.get(key, ()))
        )
        if same_type:
            raise parse_error(
                "FnDuplicatedDefinition",
                f"Function '{name}' with {len(params)} parameters already exists",
                self.pos(name_tok),
            )
        saved = (self.limit, self.depth, self.loop_depth, self.in_fn)
        # Rhai parses a function from level 0 and goes one level up for its definition
        self.limit, self.depth, self.loop_depth, self.in_fn = self.fn_limit, 1, 0, True
        body = self.block()
        self.limit, self.depth, self.loop_depth, self.in_fn = saved
        fn = FnDef(name, params, body, private, self.pos(start))
        fn.this_type = this_type
        if existing is None:
            self.functions[key] = fn
        elif this_type is None:
            # the untyped function is the primary; typed methods are dispatched from it
            self.functions[key] = fn
            self.extra_methods.setdefault(key, []).append(existing)
        else:
            self.extra_methods.setdefault(key, []).append(fn)

    # ---- expressions ----
    def expr(self) -> Node:
        self.enter()
        node = self.binary(0)
        self.leave()
        return node

    def binary(self, min_prec: int) -> Node:
        left = self.unary()
        steps = 0
        while True:
            t = self.tok
            op = None
            if t.kind == "sym":
                op = t.value
                if op == "!" and self.peek().is_kw("in"):
                    op = "!in"
            elif t.kind == "kw" and t.value == "in":
                op = "in"
            prec = BINARY_PRECEDENCE.get(op) if op else None
            if prec is None or prec < min_prec:
                break
            self.next()
            if op == "!in":
                self.next()
            self.enter(t)
            steps += 1
            if op in ("..", "..="):
                nt = self.tok
                if nt.kind == "eof" or (nt.kind == "sym" and nt.value in _RANGE_END_CLOSERS):
                    right = Node("const", self.pos(t), value=INT_MAX)
                else:
                    right = self.binary(prec + 1)
                left = Node("range", self.pos(t), left=left, right=right, inclusive=op == "..=")
                continue
            nt = self.tok
            if op == "??" and nt.kind == "kw" and nt.value in _FLOW_KEYWORDS:
                # Rhai takes `x ?? break 42` (and continue, return, throw): the statement is
                # the right operand, run only when `x` is ()
                flow = self.statement(top=False)
                right = Node("block", self.pos(nt), stmts=[flow])
            else:
                right = self.binary(prec if op == "**" else prec + 1)
            if op == "&&":
                left = Node("and", self.pos(t), left=left, right=right)
            elif op == "||":
                left = Node("or", self.pos(t), left=left, right=right)
            elif op == "??":
                left = Node("coalesce", self.pos(t), left=left, right=right)
            else:
                left = Node("binary", self.pos(t), op=op, left=left, right=right)
        self.depth -= steps
        return left

    def unary(self) -> Node:
        t = self.tok
        if t.kind == "sym" and t.value in ("-", "+", "!"):
            self.next()
            self.enter(t)
            if t.value == "-" and self.tok.kind == "int" and self.tok.value == -INT_MIN:
                nt = self.next()
                operand = self.postfix(Node("const", self.pos(nt), value=INT_MIN))
                self.leave()
                return operand
            operand = self.unary()
            self.leave()
            if (
                operand.kind == "const"
                and t.value == "-"
                and type(operand.value) in (int, float)
                and (type(operand.value) is float or operand.value != INT_MIN)
            ):
                return Node("const", self.pos(t), value=-operand.value)
            if operand.kind == "const" and t.value == "+" and type(operand.value) in (int, float):
                return operand
            return Node("unary", self.pos(t), op=t.value, operand=operand)
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        depth = 0
        while True:
            t = self.tok
            if t.kind != "sym":
                break
            v = t.value
            if v in (".", "?."):
                self.next()
                self.enter(t)
                depth += 1
                name_tok = self.next()
                if name_tok.kind not in ("ident", "kw") and name_tok.kind != "reserved":
                    if name_tok.kind == "int" or name_tok.kind == "float":
                        raise parse_error(
                            "PropertyExpected", "Expecting name of a property", self.pos(name_tok)
                        )
                    raise parse_error(
                        "PropertyExpected", "Expecting name of a property", self.pos(name_tok)
                    )
                if self.at_sym("!") and self.peek().is_sym("("):
                    raise parse_error(
                        "MalformedCapture",
                        "method-call style does not support running within the caller's scope",
                        self.pos(),
                    )
                if self.at_sym("("):
                    args = self.call_args()
                    node = Node(
                        "method",
                        self.pos(name_tok),
                        target=node,
                        name=name_tok.value,
                        args=args,
                        safe=v == "?.",
                    )
                else:
                    node = Node(
                        "prop", self.pos(name_tok), target=node, name=name_tok.value, safe=v == "?."
                    )
            elif v in ("[", "?["):
                self.next()
                self.enter(t)
                depth += 1
                index = self.expr()
                self.expect_sym("]", "to close the index expression")
                self.check_index(node, index)
                node = Node("index", self.pos(t), target=node, index=index, safe=v == "?[")
            else:
                break
        self.depth -= depth
        return node

    def check_index(self, target: Node, index: Node) -> None:
        if target.kind in ("array", "map") and (
            index.kind in ("and", "or")
            or (
                index.kind == "binary"
                and index.op in ("==", "!=", "<", "<=", ">", ">=", "in", "!in")
            )
        ):
            raise parse_error(
                "MalformedIndexExpr",
                "Array access expects integer index"
                if target.kind == "array"
                else "Object map access expects string index",
                index.pos,
            )
        if index.kind in ("const", "unit", "istr"):
            value = index.value if index.kind == "const" else ("" if index.kind == "istr" else None)
            vt = type(value)
            if vt is Range:
                return
            if target.kind == "array" or (target.kind == "const" and type(target.value) is str):
                if vt is not int:
                    raise parse_error(
                        "MalformedIndexExpr",
                        "Array access expects integer index",
                        index.pos,
                    )
            elif target.kind == "map" and vt is not str:
                raise parse_error(
                    "MalformedIndexExpr", "Object map access expects string index", index.pos
                )

    def call_args(self) -> list[Node]:
        self.expect_sym("(", "to start the arguments list")
        args: list[Node] = []
        while not self.at_sym(")"):
            if self.tok.kind == "eof":
                raise parse_error("UnexpectedEOF", "Script is incomplete", self.pos())
            args.append(self.nested(self.expr))
            if not self.eat_sym(",") and not self.at_sym(")"):
                raise parse_error(
                    "MissingToken", "Expecting ',' to separate the arguments", self.pos()
                )
        self.next()
        return args

    def primary(self) -> Node:
        t = self.tok
        k = t.kind
        p = self.pos(t)
        if k == "int":
            self.next()
            if t.value > INT_MAX:
                return Node("const", p, value=float(t.value))
            return Node("const", p, value=t.value)
        if k in ("float", "char"):
            self.next()
            return Node("const", p, value=t.value)
        if k == "str":
            self.next()
            self.check_literal_size(t.value, p)
            return Node("const", p, value=t.value)
        if k == "istr":
            self.next()
            return self.interpolated(t)
        if k == "ident":
            return self.identifier()
        if k == "kw":
            v = t.value
            if v in ("true", "false"):
                self.next()
                return Node("const", p, value=v == "true")
            if v == "this":
                self.next()
                return Node("this", p)
            if v in ("if", "switch") or (
                v in ("while", "loop", "do", "for", "try") and not self.expression_only
            ):
                return self.nested(lambda: self.primary_keyword(t))
            if v == "global" and self.peek().is_sym("::"):
                self.next()
                self.next()
                name = self.next()
                if name.kind != "ident":
                    raise parse_error("VariableExpected", "Expecting a variable name", p)
                return Node("var", self.pos(name), name=name.value, global_=True)
            if v == "fn":
                raise parse_error(
                    "WrongFnDefinition", "Function definitions must be at global level", p
                )
            raise self.unexpected("an expression")
        if k == "sym":
            v = t.value
            if v == "(":
                nt = self.peek()
                if nt.is_sym(")") and nt.line == t.line and nt.col == t.col + 1:
                    self.next()
                    self.next()
                    return Node("unit", p)
                self.next()
                self.enter(t)
                inner = self.expr()
                self.leave()
                self.expect_sym(")", "to close the parentheses")
                return inner
            if v == "[":
                return self.array_literal()
            if v == "#{":
                return self.map_literal()
            if v == "{" and not self.expression_only:
                return self.nested(self.block)
            if v in ("|", "||"):
                return self.closure()
            if v in ("..", "..="):
                self.next()
                nt = self.tok
                start = Node("const", p, value=0)
                if nt.kind == "eof" or (nt.kind == "sym" and nt.value in _RANGE_END_CLOSERS):
                    return Node("const", p, value=Range(0, INT_MAX, v == "..="))
                end = self.binary(BINARY_PRECEDENCE[".."] + 1)
                return Node("range", p, left=start, right=end, inclusive=v == "..=")
        if k == "eof":
            raise parse_error("UnexpectedEOF", "Script is incomplete", p)
        raise self.unexpected("an expression")

    def check_literal_size(self, text: str, p: tuple[int, int]) -> None:
        if self.max_string_size and len(text.encode("utf-8")) > self.max_string_size:
            raise parse_error(
                "LiteralTooLarge",
                f"Length of string literal exceeds the maximum limit ({self.max_string_size})",
                p,
            )

    def identifier(self) -> Node:
        t = self.next()
        p = self.pos(t)
        if self.at_sym("("):
            args = self.call_args()
            return Node("call", p, name=t.value, args=args, bang=False)
        if self.at_sym("!") and self.peek().is_sym("("):
            self.next()
            args = self.call_args()
            return Node("call", p, name=t.value, args=args, bang=True)
        if self.at_sym("::"):
            if t.value not in self.modules:
                raise parse_error("ModuleUndefined", f"Undefined module '{t.value}'", p)
            self.next()
            member = self.next()
            if member.kind != "ident":
                raise parse_error(
                    "VariableExpected", "Expecting a name after '::'", self.pos(member)
                )
            qualified = f"{t.value}::{member.value}"
            if self.at_sym("("):
                return Node("call", p, name=qualified, args=self.call_args(), bang=False)
            # a module constant: read at run time, so a container is copied like a variable
            return Node("call", p, name=qualified, args=[], bang=False, module_const=True)
        return Node("var", p, name=t.value, global_=False)

    def interpolated(self, t: Token) -> Node:
        parts: list[Any] = []
        for part in t.value:
            if isinstance(part, str):
                # Rhai's tokenizer limits each literal part of `...${}...` like a string
                self.check_literal_size(part, self.pos(t))
                if part:
                    parts.append(part)
                continue
            tokens, line, col = part
            sub = Parser(
                tokens,
                max_expr_depth=self.limit,
                max_fn_expr_depth=self.fn_limit,
                max_string_size=self.max_string_size,
                max_array_size=self.max_array_size,
                max_map_size=self.max_map_size,
                allow_fn=False,
            )
            sub.depth = self.depth
            sub.loop_depth = self.loop_depth
            sub.in_fn = self.in_fn
            sub.max_functions, sub.n_functions = self.max_functions, self.n_functions
            stmts = sub.statements(top=True)
            self.n_functions = sub.n_functions
            parts.append(Node("block", (line, col), stmts=stmts))
        return Node("istr", self.pos(t), parts=parts)

    def array_literal(self) -> Node:
        t = self.next()
        self.enter(t)
        items: list[Node] = []
        while not self.at_sym("]"):
            if self.tok.kind == "eof":
                raise parse_error(
                    "MissingToken", "Expecting ']' to end this array literal", self.pos()
                )
            items.append(self.nested(self.expr))
            if not self.eat_sym(",") and not self.at_sym("]"):
                raise parse_error(
                    "MissingToken",
                    "Expecting ',' to separate the items of this array literal",
                    self.pos(),
                )
        self.next()
        self.leave()
        if self.max_array_size and len(items) > self.max_array_size:
            raise parse_error(
                "LiteralTooLarge",
                f"Size of array literal exceeds the maximum limit ({self.max_array_size})",
                self.pos(t),
            )
        return Node("array", self.pos(t), items=items)

    def map_literal(self) -> Node:
        t = self.next()
        self.enter(t)
        items: list[tuple[str, Node]] = []
        seen: set[str] = set()
        while not self.at_sym("}"):
            kt = self.tok
            if kt.kind in ("ident", "str", "kw", "reserved"):
                key = kt.value
            elif kt.kind == "eof":
                raise parse_error(
                    "MissingToken", "Expecting '}' to end this object map literal", self.pos()
                )
            else:
                raise parse_error("PropertyExpected", "Expecting name of a property", self.pos(kt))
            self.next()
            if key in seen:
                raise parse_error(
                    "DuplicatedProperty",
                    f"Duplicated property '{key}' for object map literal",
                    self.pos(kt),
                )
            seen.add(key)
            self.expect_sym(":", f"to follow the property '{key}'")
            items.append((key, self.nested(self.expr)))
            if not self.eat_sym(",") and not self.at_sym("}"):
                raise parse_error(
                    "MissingToken",
                    "Expecting ',' to separate the items of this object map literal",
                    self.pos(),
                )
        self.next()
        self.leave()
        if self.max_map_size and len(items) > self.max_map_size:
            raise parse_error(
                "LiteralTooLarge",
                "Number of properties in object map literal exceeds the maximum limit "
                f"({self.max_map_size})",
                self.pos(t),
            )
        return Node("map", self.pos(t), items=items)

    def count_function(self) -> None:
        """One more function (or closure) at the current token, within `max_functions`."""
        if self.max_functions and self.n_functions >= self.max_functions:
            raise parse_error(
                "TooManyFunctions", "Number of functions defined exceeds maximum limit", self.pos()
            )
        self.n_functions += 1

    def closure(self) -> Node:
        self.count_function()
        t = self.next()
        params: list[str] = []
        if t.value == "|":
            while not self.at_sym("|"):
                p = self.tok
                if p.kind != "ident":
                    raise parse_error(
                        "MissingToken", "Expecting '|' to close the parameters", self.pos()
                    )
                self.next()
                if p.value in params:
                    raise parse_error(
                        "FnDuplicatedParam", f"Duplicated parameter '{p.value}'", self.pos(p)
                    )
                params.append(p.value)
                if not self.eat_sym(","):
                    break
            self.expect_sym("|", "to close the parameters list")
        saved = self.loop_depth, self.expression_only
        self.loop_depth = 0
        self.expression_only = False  # a closure's body is a function body, even in Rhai
        self.enter(t)
        if self.at_sym("{"):
            body = self.block()
        else:
            stmt = self.statement(top=False)
            body = Node("block", self.pos(t), stmts=[stmt] if stmt is not None else [])
        self.leave()
        self.loop_depth, self.expression_only = saved
        return Node("closure", self.pos(t), params=params, body=body)

    # ---- keyword expressions ----
    def primary_keyword(self, t: Token) -> Node:
        v = t.value
        p = self.pos(t)
        self.next()
        self.enter(t)
        try:
            if v == "if":
                cond = self.expr()
                then = self.block()
                other = None
                if self.at_kw("else"):
                    self.next()
                    other = self.primary_keyword(self.tok) if self.at_kw("if") else self.block()
                return Node("if", p, cond=cond, then=then, other=other)
            if v == "while":
                cond = self.expr()
                return Node("while", p, cond=cond, body=self.loop_body(), until=False)
            if v == "loop":
                return Node("loop", p, body=self.loop_body())
            if v == "do":
                body = self.loop_body()
                if self.at_kw("while"):
                    until = False
                elif self.at_kw("until"):
                    until = True
                else:
                    raise parse_error(
                        "MissingToken", "Expecting 'while' or 'until' after 'do' block", self.pos()
                    )
                self.next()
                cond = self.expr()
                return Node("do", p, body=body, cond=cond, until=until)
            if v == "for":
                return self.for_loop(p)
            if v == "try":
                body = self.block()
                if not self.at_kw("catch"):
                    raise parse_error(
                        "MissingToken", "Expecting 'catch' after 'try' block", self.pos()
                    )
                self.next()
                err_var = None
                if self.eat_sym("("):
                    vt = self.next()
                    if vt.kind != "ident":
                        raise parse_error(
                            "VariableExpected", "Expecting name of a variable", self.pos(vt)
                        )
                    err_var = vt.value
                    self.expect_sym(")", "to enclose the catch variable")
                catch = self.block()
                return Node("try", p, body=body, err_var=err_var, catch=catch)
            if v == "switch":
                return self.switch(p)
            raise self.unexpected("an expression")
        finally:
            self.leave()

    def loop_body(self) -> Node:
        self.loop_depth += 1
        body = self.block()
        self.loop_depth -= 1
        return body

    def for_loop(self, p: tuple[int, int]) -> Node:
        index_var = None
        if self.eat_sym("("):
            vt = self.next()
            self.expect_sym(",", "to separate the loop variables")
            it = self.next()
            self.expect_sym(")", "to close the loop variables")
            if vt.kind != "ident" or it.kind != "ident":
                raise parse_error("VariableExpected", "Expecting name of a variable", self.pos(vt))
            var, index_var = vt.value, it.value
        else:
            vt = self.next()
            if vt.kind != "ident":
                if vt.kind == "reserved":
                    raise parse_error(
                        "Reserved", f"'{vt.value}' is a reserved keyword", self.pos(vt)
                    )
                raise parse_error("VariableExpected", "Expecting name of a variable", self.pos(vt))
            var = vt.value
        if not self.at_kw("in"):
            raise parse_error("MissingToken", "Expecting 'in' after the loop variable", self.pos())
        self.next()
        iterable = self.expr()
        body = self.loop_body()
        return Node("for", p, var=var, index_var=index_var, iterable=iterable, body=body)

    def switch(self, p: tuple[int, int]) -> Node:
        subject = self.expr()
        self.expect_sym("{", "to start a switch block")
        cases: list[tuple[list[Any], Node | None, Node]] = []
        default: Node | None = None
        seen_range = False
        while not self.at_sym("}"):
            ct = self.tok
            if ct.kind == "eof":
                raise parse_error(
                    "MissingToken", "Expecting '}' to end the switch block", self.pos()
                )
            if default is not None:
                raise parse_error(
                    "WrongSwitchDefaultCase", "Default switch case must be the last", self.pos(ct)
                )
            if ct.kind == "sym" and ct.value == "_":
                self.next()
                if self.at_kw("if"):
                    raise parse_error(
                        "WrongSwitchCaseCondition",
                        "Default switch case cannot have a condition",
                        self.pos(),
                    )
                self.expect_sym("=>", "in this switch case")
                default = self.case_body()
            else:
                values: list[Any] = []
                while True:
                    vp = self.pos()
                    value_node = self.binary(BINARY_PRECEDENCE["|"] + 1)
                    value = self.constant_value(value_node)
                    if type(value) is Range:
                        seen_range = True
                    elif seen_range and type(value) in (int, float):
                        raise parse_error(
                            "WrongSwitchIntegerCase",
                            "Numeric switch case cannot follow a range case",
                            vp,
                        )
                    values.append(value)
                    if not self.eat_sym("|"):
                        break
                guard = None
                if self.at_kw("if"):
                    self.next()
                    guard = self.expr()
                self.expect_sym("=>", "in this switch case")
                cases.append((values, guard, self.case_body()))
            if self.eat_sym(","):
                continue
            if self.at_sym("}"):
                break
            last = cases[-1][2] if default is None else default
            if last.kind == "block":
                continue
            raise parse_error("MissingToken", "Expecting ',' to separate switch cases", self.pos())
        self.next()
        return Node("switch", p, subject=subject, cases=cases, default=default)

    def case_body(self) -> Node:
        if self.expression_only:
            return self.expr()
        if self.at_sym("{"):
            return self.block()
        t = self.tok
        if t.kind == "kw" and t.value in ("break", "continue", "return", "throw"):
            stmt = self.statement(top=False)
            return Node("block", self.pos(t), stmts=[stmt] if stmt is not None else [])
        return self.expr()

    def constant_value(self, node: Node) -> Any:
        if node.kind == "const":
            return node.value
        if node.kind == "unit":
            return None
        if node.kind == "range":
            a, b = node.left, node.right
            if (
                a.kind == "const"
                and b.kind == "const"
                and type(a.value) is int
                and type(b.value) is int
            ):
                return Range(a.value, b.value, node.inclusive)
        if node.kind == "array":
            return [self.constant_value(x) for x in node.items]
        if node.kind == "map":
            return {k: self.constant_value(v) for k, v in node.items}
        if node.kind == "var" and node.name == "_":
            return None
        raise parse_error("ExprExpected", "Expecting a constant in switch case", node.pos)


def ends_with_block(stmt: Node) -> bool:
    """Statements ending in a `}` need no `;` after them."""
    if stmt.kind == "expr":
        e = stmt.expr
        return e.kind in ("block", "if", "switch", "while", "loop", "for", "try")
    return False


def parse(
    src: str,
    *,
    max_expr_depth: int = 64,
    max_fn_expr_depth: int = 32,
    max_string_size: int = 0,
    max_array_size: int = 0,
    max_map_size: int = 0,
    allow_fn: bool = True,
    expression_only: bool = False,
    modules: frozenset[str] = frozenset(),
    max_functions: int = 0,
) -> Script:
    """Parse `src` into a Script, raising RhaiError("ErrorParsing") on any syntax problem.

    With `expression_only`, `src` must be a single expression (see `Parser.expression_only`)."""
    tokens = tokenize(src)
    parser = Parser(
        tokens,
        max_expr_depth=max_expr_depth,
        max_fn_expr_depth=max_fn_expr_depth,
        max_string_size=max_string_size,
        max_array_size=max_array_size,
        max_map_size=max_map_size,
        allow_fn=allow_fn,
        expression_only=expression_only,
        modules=modules,
        max_functions=max_functions,
    )
    return parser.parse_expression() if expression_only else parser.parse_script()
