"""Binary operators: inline INT fast paths with one- or two-sided overflow checks, or none
when value ranges prove the result fits in i64; everything else goes to runtime helpers.
"""

from __future__ import annotations

from ..ast import Node
from ..errors import RhaiError
from .int_ranges import bounded, int_literal
from .int_types import INT_CLOSED
from .pycode import LITERAL, SIMPLE, fits_i64

_ARITH = {"+", "-", "*"}
_CMP = {"<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}


class OperatorGen:
    """Binary operators.

    Mixed into `FnGen` (rhai/compiler.py), whose emission helpers and state it uses."""

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
        if SIMPLE.match(code):
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
                if SIMPLE.match(other):
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
        if need_guard and self.helpers_only:
            return f"_iadd({a}, {b}, {p})" if op == "+" and in_place else self.slow(op, a, b, p)
        a1, a2, ca = self.bind(a, None if need_guard and not SIMPLE.match(a) else ta)
        b1, b2, cb = self.bind(b, None if need_guard and not SIMPLE.match(b) else tb)
        if ca and not SIMPLE.match(a):
            a1 = a2
        if cb and not SIMPLE.match(b):
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
            if cb is None and b1 != b2 and LITERAL.match(a2):
                # the right operand is known from the result and the left one (the error
                # path recovers it), so it needs no temporary on the fast path
                b1 = f"({b})"
                b2 = {"+": f"_r - {a2}", "-": f"{a2} - _r", "*": f"_r // {a2}"}[op]
            expr = f"(_r := {a1} {op} {b1})"
            if (op == "+" and lit_b is not None and lit_b >= 0) or (
                op == "+" and lit_a is not None and lit_a >= 0
            ):
                test = fits_i64(expr, "_r", low=False)
            elif op == "-" and lit_b is not None and lit_b >= 0:
                test = fits_i64(expr, "_r", high=False)
            else:
                test = fits_i64(expr, "_r")
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


def _result_type(op: str, ta: str | None, tb: str | None) -> str | None:
    """The static type of `a op b` from its operands' types, when known."""
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
