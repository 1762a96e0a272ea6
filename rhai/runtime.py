"""Run-time support for compiled scripts: operators, indexing, calls, errors, limits.

Generated code inlines the common INT fast paths and calls these helpers for everything else.
Helpers that need no engine state are plain functions; those that do (limits, natives, host
functions, output) are methods of `Runtime`, one per Engine. Positions arrive as `(line, col)`
tuples baked into the generated code as constants.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from itertools import islice
from typing import Any

from . import stdlib as _stdlib
from .errors import SYSTEM_KINDS, RhaiError, wrapped_message
from .stdlib.context import NO_THIS as _NO_THIS
from .values import (
    INT_MAX,
    INT_MIN,
    SLOT_BYTES,
    WORK,
    Char,
    FnPtr,
    HostIterator,
    Mut,
    Range,
    Shared,
    deep_copy,
    equals,
    float_le,
    float_lt,
    held_bytes,
    iter_of,
    to_debug,
    to_string,
    type_name,
)

_lookup = _stdlib.lookup
_DEEP = (list, dict, FnPtr, Shared)
_CT = (list, dict)
_SIZED = (list, dict, bytearray, str)
#: `mem_left` when there is no memory budget: never runs out.
_NO_BUDGET = 1 << 62
#: After a measurement, how much may be allocated before the next one: at least this much...
_MIN_ALLOWANCE = 64 * 1024
#: ...and at least this fraction of what is live, so measuring costs a bounded share of the
#: work of allocating (as a garbage collector sizes its heap), at the price of overshooting
#: the budget by up to that fraction before the error.
_LIVE_FRACTION = 4

_CONTAINERS = (list, dict, bytearray, Range)
_IDENT = re.compile(r"^_*[A-Za-z][A-Za-z0-9_]*$")
_NUM = (int, float)
_TEXT = (str, Char)


class ExitScript(Exception):
    """`exit(v)` unwinds to the engine, which returns `v`."""

    def __init__(self, value: Any) -> None:
        super().__init__("exit")
        self.value = value


def err(kind: str, message: str, p: tuple[int, int] | None, **details: Any) -> RhaiError:
    line, col = p if p else (None, None)
    return RhaiError(kind, message, line, col, **details)


def cp(v: Any) -> Any:
    """Copy a value read from a variable before storing it elsewhere (Rhai copies on assign)."""
    if type(v) in _CONTAINERS:
        return deep_copy(v)
    if type(v) is Shared:
        return cp(v.value)
    return v


def not_found(name: str, args: tuple | list, p: Any) -> RhaiError:
    sig = f"{name} ({', '.join(type_name(a) for a in args)})"
    return err("ErrorFunctionNotFound", f"Function not found: {sig}", p, function=sig)


def mismatch(expected: str, actual: Any, p: Any) -> RhaiError:
    actual_name = type_name(actual)
    return err(
        "ErrorMismatchDataType",
        f"Data type incorrect: {actual_name} (expecting {expected})",
        p,
        expected=expected,
        actual=actual_name,
    )


def cond(v: Any, p: Any) -> bool:
    """An `if`/`while` condition or a logic operand: must be a bool."""
    if v is True or v is False:
        return v
    if type(v) is Shared:
        return cond(v.value, p)
    raise mismatch("bool", v, p)


# ---- arithmetic ----

_OP_NAMES = {
    "+": "Addition",
    "-": "Subtraction",
    "*": "Multiplication",
    "/": "Division",
    "%": "Modulo",
    "**": "Exponential",
}


def overflow(op: str, a: Any, b: Any, p: Any) -> RhaiError:
    return err("ErrorArithmetic", f"{_OP_NAMES.get(op, op)} overflow: {a} {op} {b}", p)


def _checked(r: int, op: str, a: Any, b: Any, p: Any) -> int:
    if INT_MIN <= r <= INT_MAX:
        return r
    raise overflow(op, a, b, p)


def _unshare(v: Any) -> Any:
    while type(v) is Shared:
        v = v.value
    return v


def arith(op: str, a: Any, b: Any, p: Any) -> Any:
    """Generic `+ - * / % **` for every type pair Rhai defines them on."""
    ta, tb = type(a), type(b)
    if ta is Shared or tb is Shared:
        return arith(op, _unshare(a), _unshare(b), p)
    if ta is int and tb is int:
        return int_op(op, a, b, p)
    if (ta is float or ta is int) and (tb is float or tb is int):
        return float_op(op, float(a), float(b), p)
    if op == "+":
        if ta is str or tb is str:
            if ta is str and tb is str:
                return a + b
            return to_string(a) + to_string(b)
        if ta is Char and tb is Char:
            return str(a) + str(b)
        if ta is list and tb is list:
            return deep_copy(a) + deep_copy(b)
        if ta is dict and tb is dict:
            out = deep_copy(a)
            out.update(deep_copy(b))
            return out
        if ta is bytearray and tb is bytearray:
            return a + b
        if ta is Char and tb is type(None):
            return str(a)
    if op == "-" and ta is str and tb in _TEXT:
        return a.replace(str(b), "")
    return native_op(op, (a, b), p)


def native_op(op: str, args: tuple, p: Any) -> Any:
    """Operators on types the engine does not handle itself (e.g. timestamps) come from stdlib."""
    nat = _lookup(op, args)
    if nat is None:
        raise not_found(op, args, p)
    try:
        return nat.fn(None, *args)
    except RhaiError as e:
        raise (e.at(*p) if p else e) from None


def int_op(op: str, a: int, b: int, p: Any) -> int:
    if op == "+":
        return _checked(a + b, op, a, b, p)
    if op == "-":
        return _checked(a - b, op, a, b, p)
    if op == "*":
        return _checked(a * b, op, a, b, p)
    if op == "/":
        if b == 0:
            raise err("ErrorArithmetic", f"Division by zero: {a} / {b}", p)
        q = abs(a) // abs(b)
        return _checked(q if (a < 0) == (b < 0) else -q, op, a, b, p)
    if op == "%":
        if b == 0:
            raise err("ErrorArithmetic", f"Modulo division by zero: {a} % {b}", p)
        if a == INT_MIN and b == -1:
            raise err("ErrorArithmetic", f"Modulo overflow: {a} % {b}", p)
        r = abs(a) % abs(b)
        return -r if a < 0 else r
    if op == "**":
        if b < 0:
            raise err("ErrorArithmetic", f"Integer raised to a negative index: {a} ** {b}", p)
        if b > 64 and a not in (0, 1, -1):
            raise overflow(op, a, b, p)
        return _checked(a**b, op, a, b, p)
    raise not_found(op, (a, b), p)


def float_op(op: str, a: float, b: float, p: Any) -> float:
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                if a == 0 or a != a:
                    return math.nan
                return math.copysign(math.inf, a) * math.copysign(1.0, b)
            return a / b
        if op == "%":
            if b == 0:
                return math.nan
            return math.fmod(a, b)
        if op == "**":
            try:
                r = a**b
            except ZeroDivisionError:
                return math.inf
            if type(r) is complex:
                return math.nan
            return r
    except OverflowError:
        return math.inf
    raise not_found(op, (a, b), p)


def pow_(a: Any, b: Any, p: Any) -> Any:
    return arith("**", a, b, p)


def div(a: Any, b: Any, p: Any) -> Any:
    return arith("/", a, b, p)


def mod(a: Any, b: Any, p: Any) -> Any:
    return arith("%", a, b, p)


def neg(a: Any, p: Any) -> Any:
    t = type(a)
    if t is int:
        if a == INT_MIN:
            raise err("ErrorArithmetic", f"Negation overflow: -{a}", p)
        return -a
    if t is float:
        return -a
    if t is Shared:
        return neg(a.value, p)
    raise not_found("-", (a,), p)


def plus(a: Any, p: Any) -> Any:
    if type(a) in _NUM:
        return a
    raise not_found("+", (a,), p)


def not_(a: Any, p: Any) -> bool:
    if a is True or a is False:
        return not a
    if type(a) is Shared:
        return not_(a.value, p)
    raise not_found("!", (a,), p)


def shift(op: str, a: Any, b: Any, p: Any) -> int:
    a, b = _unshare(a), _unshare(b)
    if type(a) is not int or type(b) is not int:
        raise not_found(op, (a, b), p)
    if b < 0:
        op, b = (">>" if op == "<<" else "<<"), -b
    if op == "<<":
        if b >= 64:
            return 0
        r = (a << b) & 0xFFFFFFFFFFFFFFFF
        return r - (1 << 64) if r > INT_MAX else r
    if b >= 64:
        return -1 if a < 0 else 0
    return a >> b


def bitop(op: str, a: Any, b: Any, p: Any) -> Any:
    a, b = _unshare(a), _unshare(b)
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return a & b if op == "&" else a | b if op == "|" else a ^ b
    if ta is bool and tb is bool:
        return a & b if op == "&" else a | b if op == "|" else a ^ b
    raise not_found(op, (a, b), p)


# ---- comparison ----


def eq(a: Any, b: Any) -> bool:
    return equals(a, b)


def ne(a: Any, b: Any) -> bool:
    return not equals(a, b)


def compare(op: str, a: Any, b: Any, p: Any) -> bool:
    """`< <= > >=`: numbers across INT/FLOAT, text lexically; other mixes are false."""
    ta, tb = type(a), type(b)
    if ta is Shared or tb is Shared:
        return compare(op, _unshare(a), _unshare(b), p)
    if ta in _NUM and tb in _NUM and ta is not bool and tb is not bool:
        if ta is int and tb is int:
            return _cmp(op, a, b)
        x, y = float(a), float(b)
        if op == "<":
            return float_lt(x, y)
        if op == "<=":
            return float_le(x, y)
        if op == ">":
            return float_lt(y, x)
        return float_le(y, x)
    if ta in _TEXT and tb in _TEXT:
        return _cmp(op, str(a), str(b))
    if ta is tb:
        if ta is bool:
            return _cmp(op, a, b)
        return native_op(op, (a, b), p)
    return False


def _cmp(op: str, a: Any, b: Any) -> bool:
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def lt(a: Any, b: Any, p: Any) -> bool:
    return compare("<", a, b, p)


def le(a: Any, b: Any, p: Any) -> bool:
    return compare("<=", a, b, p)


def gt(a: Any, b: Any, p: Any) -> bool:
    return compare(">", a, b, p)


def ge(a: Any, b: Any, p: Any) -> bool:
    return compare(">=", a, b, p)


def switch_eq(subject: Any, case: Any) -> bool:
    """Switch matching: same type and equal value (Rhai hashes, it does not call `==`)."""
    subject = _unshare(subject)
    if type(subject) is not type(case):
        return False
    return equals(subject, case)


def make_range(a: Any, b: Any, inclusive: bool, p: Any) -> Range:
    a, b = _unshare(a), _unshare(b)
    if type(a) is not int or type(b) is not int:
        raise not_found("..=" if inclusive else "..", (a, b), p)
    return Range(a, b, inclusive)


def for_range(a: Any, b: Any, inclusive: bool, p: Any) -> range:
    a, b = _unshare(a), _unshare(b)
    if type(a) is not int or type(b) is not int:
        raise not_found("..=" if inclusive else "..", (a, b), p)
    return range(a, b + 1 if inclusive else b)


def for_iter(v: Any, p: Any) -> Any:
    it = iter_of(v)
    if it is None:
        raise err("ErrorFor", f"For loop expects an iterable type, not '{type_name(v)}'", p)
    return it


# ---- indexing ----


def _norm_index(i: int, n: int) -> int | None:
    if i < 0:
        i += n
        if i < 0:
            return None
    return i if i < n else None


def _bits_range(r: Range) -> tuple[int, int]:
    start = max(0, min(64, r.start))
    end = max(0, min(64, r.end + 1 if r.inclusive else r.end))
    return start, end


def index_get(obj: Any, i: Any, p: Any) -> Any:
    """`obj[i]` for arrays, strings, maps, INT bit fields, BLOBs and ranges as indices."""
    t = type(obj)
    ti = type(i)
    if ti is Shared:
        return index_get(obj, i.value, p)
    if t is list:
        if ti is int:
            j = _norm_index(i, len(obj))
            if j is None:
                raise array_bounds(len(obj), i, p)
            return obj[j]
        raise mismatch("i64", i, p)
    if t is dict:
        if ti is str or ti is Char:
            return obj.get(str(i))
        raise index_type("map", i, p)
    if t is str:
        if ti is int:
            n = len(obj)
            j = _norm_index(i, n)
            if j is None:
                raise err(
                    "ErrorStringBounds",
                    f"String index {i} out of bounds: only {n} characters in string",
                    p,
                    length=n,
                    index=i,
                )
            return Char(obj[j])
        if ti is Range:
            return _substr(obj, i)
        raise index_type("string", i, p)
    if t is int:
        if ti is int:
            bit = i + 64 if i < 0 else i
            if not 0 <= bit < 64:
                raise err(
                    "ErrorBitFieldBounds",
                    f"Bit-field index {i} out of bounds: only 64 bits in integer",
                    p,
                    length=64,
                    index=i,
                )
            return bool((obj >> bit) & 1)
        if ti is Range:
            end_ = i.end + 1 if i.inclusive else i.end
            if i.start < 0 or i.start > 64 or end_ > 64:
                raise err(
                    "ErrorBitFieldBounds",
                    f"Bit-field index {i!r} out of bounds: only 64 bits in integer",
                    p,
                    length=64,
                    index=i.start,
                )
            start, end = _bits_range(i)
            if end <= start:
                return 0
            return ((obj & 0xFFFFFFFFFFFFFFFF) >> start) & ((1 << (end - start)) - 1)
        raise index_type("i64", i, p)
    if t is bytearray:
        if ti is int:
            j = _norm_index(i, len(obj))
            if j is None:
                raise array_bounds(len(obj), i, p)
            return obj[j]
        raise index_type("blob", i, p)
    if t is Shared:
        return index_get(obj.value, i, p)
    if obj is None:
        raise err("ErrorIndexingType", "Indexing a unit value ()", p, type="()")
    raise err(
        "ErrorIndexingType",
        f"Indexing not supported for {type_name(obj)}",
        p,
        type=type_name(obj),
    )


def _substr(s: str, r: Range) -> str:
    n = len(s)
    start, end = r.start, r.end
    if start < 0:
        start = max(0, start + n)
    if end < 0:
        end = max(-1, end + n)
    if r.inclusive:
        # Rhai's quirk: an inclusive slice takes end - start + 1 chars only when the end is
        # after the start, so `s[a..=a]` is "" unless it spans the whole string from 0
        if start == 0 and end >= n - 1:
            return s
        if end <= start:
            return ""
        end += 1
    start = min(start, n)
    end = min(end, n)
    return s[start:end] if end > start else ""


def array_bounds(n: int, i: int, p: Any) -> RhaiError:
    return err(
        "ErrorArrayBounds",
        f"Array index {i} out of bounds: only {n} elements in array"
        if n
        else f"Array index {i} out of bounds: array is empty",
        p,
        length=n,
        index=i,
    )


def index_type(what: str, i: Any, p: Any) -> RhaiError:
    return err(
        "ErrorIndexingType",
        f"Indexer not found: {what}[{type_name(i)}]",
        p,
        type=what,
    )


def site_position(frame: Any, lasti: int) -> Any:
    """The Rhai position of the marked call (`compiler.Unit.call_site`) that `frame` makes
    at instruction offset `lasti`, by the position CPython records for it; None when the
    call is not marked (a generic entry handing its arguments to its INT entry)."""
    sites = frame.f_globals.get("_CALLPOS")
    if sites:
        at = next(islice(frame.f_code.co_positions(), lasti // 2, None), None)
        if at is not None:
            return sites.get((at[0], at[2]))
    return None


def caller_position(frame: Any) -> Any:
    """The Rhai position of the call `frame` is making: a marked call site, otherwise the
    frame's own `P` (a generic entry passing its caller's position on to its INT entry)."""
    pos = site_position(frame, frame.f_lasti)
    return pos if pos is not None else frame.f_locals.get("P")


def unwind(e: RhaiError) -> RhaiError:
    """`e` wrapped once for each INT entry it left on its way to the handler it is in,
    innermost first, as each entry would have wrapped it with its own handler (INT entries
    have none, to keep calls cheap). The traceback lists the frames from the handler's down:
    an INT entry's caller frame shows the call's position. An INT entry reached from its
    generic entry (an unmarked call) is that entry's call level, wrapped by its handler."""
    if e.kind in SYSTEM_KINDS or e.kind == "ErrorParsing":
        return e
    tbs = []
    tb = e.__traceback__
    while tb is not None:
        tbs.append(tb)
        tb = tb.tb_next
    for i in range(len(tbs) - 1, 0, -1):
        frame = tbs[i].tb_frame
        name = frame.f_globals.get("_INT_NAMES", _NO_NAMES).get(frame.f_code.co_name)
        if name is None:
            continue
        caller = tbs[i - 1]
        pos = site_position(caller.tb_frame, caller.tb_lasti)
        if pos is not None:
            e = RhaiError(
                "ErrorInFunctionCall",
                wrapped_message(name, e),
                pos[0],
                pos[1],
                inner=e,
                function=name,
            )
    return e


_NO_NAMES: dict[str, str] = {}


class Runtime:
    """Engine-bound helpers: limits, natives and host functions, output, function pointers."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.fns: dict[tuple[str, int], Callable[..., Any]] = {}
        self.bang_fns: dict[tuple[str, int], Callable[..., Any]] = {}
        # operations left before the next checkpoint, shared by all generated code (see
        # `start_counting`); `chunk` is what it was set to, `ops_done` the count before
        self.oc: list[int] = [0]
        self.chunk = 0
        # with a progress hook: the hook of this run, and the operations counted up to the
        # checkpoint the counter last reached (see `start_counting`)
        self.progress: Callable[[int], Any] | None = None
        self.ops_done = 0
        self.depth = 0
        # memory budget: bytes the script may still allocate before its live values are
        # measured again (see `collect`), and the engine frame where measuring stops
        self.mem_left = _NO_BUDGET
        self.entry: Any = None

    # ---- limits ----
    def start_counting(self) -> None:
        """Count the operations of a new outermost run from zero.

        Generated code charges the operations of a straight run of code at once, counting
        down the shared cell `_O[0]` (the operations left before the next checkpoint) and
        calling `_tmo(p, left)` when it would go below zero: `_O[0] = _oc if (_oc := _O[0] -
        12) >= 0 else _tmo(p, _oc)`. The checkpoint is the limit, or with a progress hook
        the next multiple of `progress_every` (whichever comes first), so a hook costs
        nothing per operation beyond the check every script already pays.
        """
        engine = self.engine
        self.ops_done = 0
        self.progress = engine.on_progress
        limit = engine.max_operations
        if self.progress is not None:
            every = engine.progress_every
            if not limit:
                raise ValueError(
                    "a progress hook rides on the operation counter: set max_operations (any "
                    "positive limit, however large)"
                )
            if type(every) is not int or every < 1:
                raise ValueError(f"progress_every must be a positive whole number, not {every!r}")
        self._arm()

    def _arm(self) -> None:
        """Set the cell to the operations left until the next checkpoint after `ops_done`:
        the limit (passed when the count goes above it), or the next progress point."""
        engine = self.engine
        left = engine.max_operations - self.ops_done
        if self.progress is not None:
            every = engine.progress_every
            to_hook = every - self.ops_done % every - 1  # fires when the count reaches it
            left = min(left, to_hook)
        self.chunk = left
        self.oc[0] = left

    def operations(self) -> int:
        """Operations counted so far in the current (or last) run."""
        return self.ops_done + self.chunk - self.oc[0]

    def op_checkpoint(self, p: Any, left: int | None = None) -> int:
        """The operation check fired (`_tmo`): past the limit, or time to call the hook.
        Generated code passes the cell's new value (`left`) and stores what this returns."""
        if left is not None:
            self.oc[0] = left
        self.ops_done += self.chunk - self.oc[0]
        if self.ops_done > self.engine.max_operations:
            self.chunk = self.oc[0] = 0  # stays past the limit: every later check fires
            self.ops_done = self.engine.max_operations + 1
            self.too_many_ops(p)
        hook = self.progress
        self._arm()
        if hook is None:
            return self.oc[0]
        try:
            token = hook(self.ops_done)
        except RhaiError as e:
            if e.kind == "ErrorTerminated" and e.line is not None:
                raise
            raise err("ErrorTerminated", e.message, p, token=e.value) from e
        except Exception as e:
            raise err("ErrorTerminated", f"Script terminated: {e}", p, token=str(e)) from e
        if token is not None:
            raise err("ErrorTerminated", f"Script terminated: {to_string(token)}", p, token=token)
        return self.oc[0]

    def too_many_ops(self, p: Any) -> None:
        raise err("ErrorTooManyOperations", "Too many operations", p)

    def stack_overflow(self, p: Any) -> None:
        raise err("ErrorStackOverflow", "Stack overflow", p)

    def stack_overflow_here(self) -> None:
        """`stack_overflow` for a function called without a position (an INT entry): the
        error is at the call, found from the caller's frame."""
        raise err("ErrorStackOverflow", "Stack overflow", caller_position(sys._getframe(2)))

    def too_many_vars(self, p: Any) -> None:
        raise err("ErrorTooManyVariables", "Too many variables defined", p)

    # ---- memory and operation accounting ----
    def reset_budget(self) -> None:
        """A new script run starts with the whole memory budget."""
        self.mem_left = self.engine.max_memory or _NO_BUDGET
        WORK.n = WORK.copied = 0

    def spend(self, n: int, p: Any) -> None:
        """Count `n` operations of work done inside one operation (deep copy, compare, ...)."""
        if self.engine.max_operations and n > 0:
            oc = self.oc
            oc[0] -= n
            if oc[0] < 0 and p is not None:
                self.op_checkpoint(p)

    def settle(self, p: Any, allocated: int = 0) -> None:
        """Charge the deep work done since the last call as operations, and `allocated` bytes
        plus what deep copies created against the memory budget. Without a position (`p`)
        nothing is raised: the next positioned check reports the limit."""
        w = WORK
        n = w.n
        copied = w.copied
        if n or copied:
            w.n = w.copied = 0
            self.spend(n + copied, p)
            allocated += SLOT_BYTES * copied
        if allocated:
            self.mem_left -= allocated
            if self.mem_left < 0 and p is not None:
                self.collect(p)

    def collect(self, p: Any) -> None:
        """Measure what the script holds and raise ErrorDataTooLarge above `max_memory`.

        What a script holds is reachable from the frames of the running script (generated
        code, and natives or engine helpers working for it) up to the engine's entry frame,
        and from the script's scope. Allocations between measurements are counted cheaply
        and conservatively by the generated code and the runtime; when they exceed the
        allowance set by the last measurement, this measures again.
        """
        cap = self.engine.max_memory
        if not cap:
            self.mem_left = _NO_BUDGET
            return
        roots: list[Any] = []
        snapshots: list[dict] = []
        namespaces: set[int] = set()
        frame = sys._getframe(1)
        entry = self.entry
        while frame is not None and frame is not entry:
            snapshot = frame.f_locals
            snapshots.append(snapshot)
            roots.extend(snapshot.values())
            g = frame.f_globals
            if "_SC" in g and "_rt" in g and id(g) not in namespaces:
                namespaces.add(id(g))
                roots.append(g["_SC"])
                roots.append(g["_GC"])
            frame = frame.f_back
        del frame
        live = held_bytes(roots)
        roots.clear()
        for snapshot in snapshots:
            # `f_locals` is a copy kept on the frame: emptied, it keeps no value alive that
            # the script has since dropped (the frames' own variables are unaffected)
            snapshot.clear()
        if live > cap:
            self.mem_left = _MIN_ALLOWANCE  # measure again soon if a `catch` goes on
            raise err(
                "ErrorDataTooLarge",
                f"Memory held by the script ({live} bytes) exceeds maximum limit "
                f"(max_memory = {cap} bytes; raise it with Engine(max_memory=...))",
                p,
                what="Memory",
                requested=live,
                limit=cap,
            )
        self.mem_left = max(cap - live, live // _LIVE_FRACTION, _MIN_ALLOWANCE)

    def mem_flush(self, counted: int, v: Any, p: Any) -> int:
        """Generated code counts bytes it allocates in a local and hands them over in chunks
        (for strings at the latest when one passes a quarter of `max_string_size`, so this
        also checks that limit); returns the new local count (0). Kept lean: string building
        calls it every megabyte."""
        if type(v) is str and len(v) > self.engine.max_string_size >> 2:
            self.check_size(v, p)
        left = self.mem_left - counted
        self.mem_left = left
        if left < 0:
            self.collect(p)
        return 0

    def mem_str(self, s: str, counted: int, p: Any, _reset: Any = None) -> str:
        """`mem_flush` for an interpolated string inside an expression; returns the string.
        (The generated code resets its local count in the last argument.)"""
        self.mem_flush(counted, s, p)
        return s

    def cp(self, v: Any, p: Any = None) -> Any:
        """`cp` for generated code: the copy counts as operations and memory."""
        t = type(v)
        if t is list or t is dict or t is bytearray or t is Range:
            v = deep_copy(v)
            self.settle(p)
            return v
        if t is Shared:
            return self.cp(v.value, p)
        return v

    def eq(self, a: Any, b: Any, p: Any = None) -> bool:
        if type(a) in _DEEP:
            r = equals(a, b)
            self.settle(p)
            return r
        return equals(a, b)

    def ne(self, a: Any, b: Any, p: Any = None) -> bool:
        return not self.eq(a, b, p)

    def check_size(self, v: Any, p: Any) -> Any:
        """Raise ErrorDataTooLarge when a produced value exceeds an engine size limit."""
        t = type(v)
        eng = self.engine
        if t is str:
            cap = eng.max_string_size
            if cap and len(v) > cap // 4 and len(v.encode("utf-8")) > cap:
                raise err(
                    "ErrorDataTooLarge",
                    "Length of string exceeds maximum limit",
                    p,
                    what="Length of string",
                )
        elif t is list or t is bytearray:
            cap = eng.max_array_size
            if cap and len(v) > cap:
                raise err(
                    "ErrorDataTooLarge",
                    "Size of array/BLOB exceeds maximum limit",
                    p,
                    what="Size of array/BLOB",
                )
        elif t is dict:
            cap = eng.max_map_size
            if cap and len(v) > cap:
                raise err(
                    "ErrorDataTooLarge",
                    "Size of object map exceeds maximum limit",
                    p,
                    what="Size of object map",
                )
        return v

    def check_deep(
        self, v: Any, p: Any, extra: tuple[int, int, int] = (0, 0, 0), outer: int = 0
    ) -> Any:
        """Rhai's recursive size check: items of nested arrays and maps count too, including
        those held by function pointers. Nesting deeper than `max_data_depth` is refused, so
        copying, comparing and printing data never nests deeper than that (a value stored
        into a container is `outer` = 1 level deeper)."""
        arrays, maps, strings, depth = data_sizes(v)
        arrays, maps, strings = arrays + extra[0], maps + extra[1], strings + extra[2]
        eng = self.engine
        if eng.max_data_depth and depth + outer > eng.max_data_depth:
            raise err(
                "ErrorDataTooLarge",
                f"Nesting depth of data exceeds maximum limit (max_data_depth = "
                f"{eng.max_data_depth})",
                p,
                what="Depth of data",
            )
        self.settle(p)
        if eng.max_array_size and arrays > eng.max_array_size:
            raise err(
                "ErrorDataTooLarge",
                "Size of array/BLOB exceeds maximum limit",
                p,
                what="Size of array/BLOB",
            )
        if eng.max_map_size and maps > eng.max_map_size:
            raise err(
                "ErrorDataTooLarge",
                "Size of object map exceeds maximum limit",
                p,
                what="Size of object map",
            )
        if eng.max_string_size and strings > eng.max_string_size:
            raise err(
                "ErrorDataTooLarge",
                "Length of string exceeds maximum limit",
                p,
                what="Length of string",
            )
        return v

    def check_store(self, obj: Any, v: Any, p: Any) -> None:
        """Storing container `v` into `obj`: the result's recursive size must fit."""
        if type(v) in _DEEP:
            self.check_deep(v, p, (len(obj), 0, 0) if type(obj) is list else (0, len(obj), 0), 1)

    # ---- operators needing limits ----
    def add(self, a: Any, b: Any, p: Any) -> Any:
        r = arith("+", a, b, p)
        t = type(r)
        if t is not int and t is not float:
            self.check_size(r, p)
            self.settle(p, len(r) if t in _SIZED else 0)
        return r

    def iadd(self, a: Any, b: Any, p: Any) -> Any:
        """`a += b`: arrays push/append and maps mix in, in place; everything else is `+`."""
        ta = type(a)
        if ta is list:
            if type(b) is list:
                a.extend(deep_copy(b))
                self.settle(p)
            else:
                if type(b) in _DEEP:
                    self.check_store(a, b, p)
                a.append(self.cp(b, p))
                self.settle(p, SLOT_BYTES)
            return self.check_size(a, p)
        if ta is dict and type(b) is dict:
            a.update(deep_copy(b))
            self.settle(p)
            return self.check_size(a, p)
        if ta is bytearray and type(b) is int:
            a.append(b & 0xFF)
            self.settle(p, 1)
            return self.check_size(a, p)
        return self.add(a, b, p)

    def ovf(self, op: str, a: Any, b: Any, p: Any) -> Any:
        return arith(op, a, b, p)

    # ---- output and builtins ----
    def print_(self, v: Any) -> None:
        self.engine.on_print(to_string(v))

    def debug(self, v: Any) -> None:
        self.engine.on_debug(to_debug(v))

    def throw(self, v: Any, p: Any) -> RhaiError:
        v = _unshare(v)
        return err("ErrorRuntime", to_string(v) or "Runtime error", p, value=v)

    # ---- calls ----
    def wrap(self, e: RhaiError, name: str, p: Any) -> RhaiError:
        """Errors leaving a script function are wrapped, except resource-limit errors."""
        if e.kind in SYSTEM_KINDS or e.kind == "ErrorParsing":
            return e
        e = unwind(e)
        line, col = p if p else (None, None)
        return RhaiError(
            "ErrorInFunctionCall",
            wrapped_message(name, e),
            line,
            col,
            inner=e,
            function=name,
        )

    def native(self, name: str, p: Any, args: tuple) -> Any:
        """Call a host or standard-library function; returns a `Mut` for in-place changes."""
        n = len(args)
        host_fns = self.engine._host_fns
        if host_fns:
            host = host_fns.get((name, n))
            if host is not None:
                return self.call_host(name, host, args, p)
        script = self.fns.get((name, n))
        if script is not None:
            return invoke(script, None, self.depth + 1, p, [cp(a) for a in args])
        nat = _lookup(name, args)
        if nat is not None:
            before = -1
            if nat.mutates and type(args[0]) in _SIZED:
                before = len(args[0])
                if n > 1 and type(args[0]) in _CT:
                    # values stored into a container (push, insert, pad, set, ...) must fit
                    # its recursive size and depth limits
                    for a in args[1:]:
                        if type(a) in _DEEP:
                            self.check_store(args[0], a, p)
            try:
                fn = nat.fn
                if n == 1:
                    r = fn(self, args[0])
                elif n == 2:
                    r = fn(self, args[0], args[1])
                else:
                    r = fn(self, *args)
            except RhaiError as e:
                raise (e.at(*p) if p else e) from None
            except RecursionError:
                raise
            except Exception as e:  # a native must not leak Python errors
                raise err("ErrorRuntime", f"{name}: {e}", p) from None
            grown = 0
            if nat.mutates:
                self.check_size(args[0], p)
                if before >= 0:
                    t0 = type(args[0])
                    grown = (len(args[0]) - before) * (1 if t0 is bytearray else SLOT_BYTES)
            if r is not None:
                rt = type(r)
                if rt is str or rt is list or rt is dict:
                    self.check_size(r, p)
                    grown += len(r) if rt is str else SLOT_BYTES * len(r)
                elif rt is bytearray:
                    grown += len(r)
                elif rt is Mut and type(r.this) is str:
                    grown += len(r.this)
            if grown > 0 or WORK.n or WORK.copied:
                self.settle(p, max(grown, 0))
            return r
        if n == 1 and name.startswith("get$"):
            v = args[0]
            if type(v) is FnPtr:
                if name == "get$name":
                    return v.name
                if name == "get$is_anonymous":
                    return v.is_anonymous
        raise not_found(name, args, p)

    def call(self, name: str, p: Any, *args: Any) -> Any:
        r = self.native(name, p, args)
        if type(r) is Mut:
            return r.result
        return r

    def module_const(self, name: str, p: Any) -> Any:
        """`module::NAME`: a constant of a module registered with `Engine.register_module`."""
        module, _, member = name.partition("::")
        consts = self.engine._module_consts.get(module, {})
        if member not in consts:
            raise err("ErrorVariableNotFound", f"Variable not found: {name}", p, variable=name)
        return cp(consts[member])

    def call_raw(self, name: str, p: Any, *args: Any) -> Any:
        return self.native(name, p, args)

    def call_host(self, name: str, fn: Callable[..., Any], args: tuple, p: Any) -> Any:
        try:
            r = fn(*args)
        except RhaiError as e:
            raise (e.at(*p) if p else e) from None
        except RecursionError:
            raise
        except Exception as e:
            raise err(
                "ErrorRuntime", f"Error in host function '{name}': {e}", p, value=str(e)
            ) from None
        r = from_host(r)
        if type(r) in (str, list, dict):
            self.check_size(r, p)
            if type(r) is not str:
                self.check_deep(r, p)
            self.settle(p, len(r) if type(r) is str else SLOT_BYTES * len(r))
        return r

    def method(self, name: str, p: Any, obj: Any, *args: Any) -> Any:
        """`obj.name(args)` when no script function applies; may return a `Mut`."""
        if type(obj) is dict:
            f = obj.get(name)
            if type(f) is FnPtr:
                return self.call_ptr(f, args, [obj], p)
        if type(obj) is Shared:
            obj = obj.value
        return self.native(name, p, (obj, *args))

    def push(self, obj: Any, v: Any, p: Any) -> Any:
        """`x.push(v)` on an array (the common case) without native dispatch."""
        if type(obj) is list:
            if type(v) in _DEEP:
                self.check_store(obj, v, p)
            obj.append(self.cp(v, p))
            cap = self.engine.max_array_size
            if cap and len(obj) > cap:
                self.check_size(obj, p)
            self.settle(p, SLOT_BYTES)
            return None
        return self.method("push", p, obj, v)

    def len_(self, obj: Any, p: Any) -> Any:
        t = type(obj)
        if t is list or t is str or t is dict:
            return len(obj)
        return self.method("len", p, obj)

    def method_value(self, name: str, p: Any, obj: Any, *args: Any) -> Any:
        r = self.method(name, p, obj, *args)
        return r.result if type(r) is Mut else r

    def prop(self, obj: Any, name: str, p: Any) -> Any:
        t = type(obj)
        if t is dict:
            return obj.get(name)
        if t is Shared:
            return self.prop(obj.value, name, p)
        try:
            r = self.native("get$" + name, p, (obj,))
        except RhaiError as e:
            if e.kind == "ErrorFunctionNotFound":
                raise err(
                    "ErrorDotExpr",
                    f"Unknown property '{name}' - a getter is not registered for type "
                    f"'{type_name(obj)}'",
                    p,
                    property=name,
                ) from None
            raise
        return r.result if type(r) is Mut else r

    def set_prop(self, obj: Any, name: str, v: Any, p: Any) -> Any:
        """Store a property; returns the (possibly new) object."""
        if type(obj) is dict:
            if type(v) in _DEEP:
                self.check_store(obj, v, p)
            obj[name] = v
            self.settle(p, SLOT_BYTES)
            return self.check_size(obj, p)
        try:
            r = self.native("set$" + name, p, (obj, v))
        except RhaiError as e:
            if e.kind == "ErrorFunctionNotFound":
                raise err(
                    "ErrorDotExpr",
                    f"Unknown property '{name}' - a getter is not registered for type "
                    f"'{type_name(obj)}'",
                    p,
                    property=name,
                ) from None
            raise
        return r.this if type(r) is Mut else obj

    def index_set(self, obj: Any, i: Any, v: Any, p: Any) -> Any:
        """`obj[i] = v`; returns the (possibly new, for strings and INTs) object."""
        t = type(obj)
        ti = type(i)
        if t is list:
            if ti is not int:
                raise index_type("array", i, p)
            j = _norm_index(i, len(obj))
            if j is None:
                raise array_bounds(len(obj), i, p)
            if type(v) in _DEEP:
                self.check_store(obj, v, p)
            obj[j] = v
            return obj
        if t is dict:
            if ti is not str and ti is not Char:
                raise index_type("map", i, p)
            if type(v) in _DEEP:
                self.check_store(obj, v, p)
            obj[str(i)] = v
            self.settle(p, SLOT_BYTES)
            return self.check_size(obj, p)
        if t is str:
            if ti is int:
                n = len(obj)
                j = _norm_index(i, n)
                if j is None:
                    raise err(
                        "ErrorStringBounds",
                        f"String index {i} out of bounds: only {n} characters in string",
                        p,
                        length=n,
                        index=i,
                    )
                if type(v) is not Char:
                    raise mismatch("char", v, p)
                return obj[:j] + v + obj[j + 1 :]
            if ti is Range:
                n = len(obj)
                start, end = i.start, i.end + 1 if i.inclusive else i.end
                start = max(0, min(n, start + n if start < 0 else start))
                end = max(start, min(n, end + n if end < 0 else end))
                return self.check_size(obj[:start] + to_string(v) + obj[end:], p)
            raise index_type("string", i, p)
        if t is int:
            if ti is int:
                bit = i + 64 if i < 0 else i
                if not 0 <= bit < 64:
                    raise err(
                        "ErrorBitFieldBounds",
                        f"Bit-field index {i} out of bounds: only 64 bits in integer",
                        p,
                        length=64,
                        index=i,
                    )
                if type(v) is not bool:
                    raise mismatch("bool", v, p)
                u = obj & 0xFFFFFFFFFFFFFFFF
                u = u | (1 << bit) if v else u & ~(1 << bit)
                return u - (1 << 64) if u > INT_MAX else u
            if ti is Range:
                if type(v) is not int:
                    raise mismatch("i64", v, p)
                start, end = _bits_range(i)
                if end <= start:
                    return obj
                mask = ((1 << (end - start)) - 1) << start
                u = (obj & 0xFFFFFFFFFFFFFFFF & ~mask) | ((v << start) & mask)
                return u - (1 << 64) if u > INT_MAX else u
            raise index_type("i64", i, p)
        if t is bytearray:
            if ti is not int:
                raise index_type("blob", i, p)
            j = _norm_index(i, len(obj))
            if j is None:
                raise array_bounds(len(obj), i, p)
            if type(v) is not int:
                raise mismatch("i64", v, p)
            obj[j] = v & 0xFF
            return obj
        raise index_get(obj, i, p)  # raises the proper indexing error

    def get_path(self, obj: Any, kinds: str, keys: tuple, p: Any) -> Any:
        for k, key in zip(kinds, keys, strict=True):
            obj = self.prop(obj, key, p) if k == "p" else index_get(obj, key, p)
        return obj

    def set_path(self, obj: Any, kinds: str, keys: tuple, v: Any, p: Any) -> Any:
        """Store `v` at the end of an index/property chain; returns the new root value."""
        if type(obj) is Shared:
            obj.value = self.set_path(obj.value, kinds, keys, v, p)
            return obj
        k = kinds[0]
        if len(kinds) == 1:
            if k == "p":
                return self.set_prop(obj, keys[0], v, p)
            return self.index_set(obj, keys[0], v, p)
        child = self.prop(obj, keys[0], p) if k == "p" else index_get(obj, keys[0], p)
        new_child = self.set_path(child, kinds[1:], keys[1:], v, p)
        if new_child is child:
            return obj
        if k == "p":
            return self.set_prop(obj, keys[0], new_child, p)
        return self.index_set(obj, keys[0], new_child, p)

    # ---- function pointers ----
    def call_ptr(self, f: Any, args: tuple | list, this: list | None, p: Any) -> Any:
        """Call a function pointer or closure with its curried arguments first."""
        f = _unshare(f)
        if type(f) is not FnPtr:
            if type(f) is str:
                f = FnPtr(f)
            else:
                raise mismatch("Fn", f, p)
        full = (*f.curry, *args)
        if f.fn is not None:
            if getattr(f.fn, "arity", len(full)) != len(full):
                raise not_found(f.name, full, p)
            return invoke(f.fn, this, self.depth + 1, p, full)
        script = self.fns.get((f.name, len(full)))
        if script is not None:
            return invoke(script, this, self.depth + 1, p, [cp(a) for a in full])
        builtin = self.engine._builtin_call(f.name, full if this is None else (this[0], *full), p)
        if builtin is not NotImplemented:
            return builtin
        if this is not None:
            r = self.native(f.name, p, (this[0], *full))
            if type(r) is Mut:
                this[0] = r.this
                return r.result
            return r
        r = self.native(f.name, p, full)
        return r.result if type(r) is Mut else r

    def call_bang(self, f: Any, env: dict, args: tuple, p: Any) -> Any:
        """`call!(f, args)`: a script function run in the caller's scope (`env`)."""
        f = _unshare(f)
        if type(f) is FnPtr and f.fn is None:
            full = (*f.curry, *args)
            fn = self.bang_fns.get((f.name, len(full)))
            if fn is not None:
                return fn(None, self.depth + 1, p, env, *full)
        return self.call_ptr(f, args, None, p)

    def call_method_m(self, p: Any, cell: Any, target: Any, *args: Any) -> Any:
        """`x.call(f, args)` binds `this = x` (and `f.call(args)` just calls); `Mut` on change."""
        target = _unshare(target)
        if type(target) is FnPtr:
            return self.call_ptr(target, args, None, p)
        if args and type(args[0]) is FnPtr:
            f = args[0]
            if (
                cell is not None
                and f.fn is not None
                and any(c.cell_contents is cell for c in (f.fn.__closure__ or ()))
            ):
                raise err(
                    "ErrorDataRace",
                    "Data race detected when accessing variable: this",
                    p,
                    variable="this",
                )
            holder = [target]
            r = self.call_ptr(f, args[1:], holder, p)
            if holder[0] is not target:
                return Mut(holder[0], r)
            return r
        if type(target) is str:
            return self.call_ptr(FnPtr(target), args, None, p)
        raise mismatch("Fn", target, p)

    def call_fn(self, fnptr: Any, args: list, this: Any = _NO_THIS) -> Any:
        """For natives (`ctx.call_fn`): call a pointer, optionally binding `this`."""
        if type(fnptr) is FnPtr:
            fn = fnptr.fn
            if fn is not None and not fnptr.curry and fn.arity == len(args):
                # closure fast path: no currying, `this` only when the closure uses it
                if this is _NO_THIS or not fn.uses_this:
                    return invoke(fn, None, self.depth + 1, None, args)
                return invoke(fn, [this], self.depth + 1, None, args)
        holder = None if this is _NO_THIS or this is None else [this]
        return self.call_ptr(fnptr, tuple(args), holder, None)

    def call_fn_this(self, fnptr: Any, args: list, this: Any) -> tuple[Any, Any]:
        """Call with `this` bound by reference: (result, value of `this` afterwards)."""
        holder = [this]
        r = self.call_ptr(fnptr, tuple(args), holder, None)
        return r, holder[0]

    def caller(self, fnptr: Any) -> Callable[..., Any]:
        """A pre-bound `call(args, this=NO_THIS)` for natives calling one pointer many times."""
        f = _unshare(fnptr)
        depth = self.depth + 1
        if type(f) is FnPtr and f.fn is not None and not f.curry:
            fn = f.fn
            arity = fn.arity
            if not fn.uses_this:
                if arity == 1:

                    def call_closure1(args: list, this: Any = _NO_THIS) -> Any:
                        if len(args) == 1:
                            return fn(None, depth, None, args[0])
                        raise not_found(f.name, args, None)

                    return call_closure1

                def call_closure(args: list, this: Any = _NO_THIS) -> Any:
                    if len(args) != arity:
                        raise not_found(f.name, args, None)
                    return invoke(fn, None, depth, None, args)

                return call_closure

            def call_closure_this(args: list, this: Any = _NO_THIS) -> Any:
                if len(args) != arity:
                    raise not_found(f.name, args, None)
                return invoke(fn, None if this is _NO_THIS else [this], depth, None, args)

            return call_closure_this
        call_fn = self.call_fn
        return lambda args, this=_NO_THIS: call_fn(f, args, this)

    def unary_entry(self, fnptr: Any) -> tuple[Callable[..., Any], int] | None:
        """For natives: `(compiled, depth)` of a one-parameter closure that does not use
        `this` and has nothing curried (the common `|x| ...` given to `map`/`filter`), which
        the native calls as `compiled(None, depth, None, item)`; else None. The call stays a
        Python-to-Python call, which does not grow the C stack, so deep callback recursion
        meets the recursion limit (functools.partial would go through C)."""
        f = _unshare(fnptr)
        if type(f) is FnPtr and f.fn is not None and not f.curry:
            fn = f.fn
            if fn.arity == 1 and not fn.uses_this:
                return fn, self.depth + 1
        return None

    def fn_arity(self, fnptr: Any) -> int | None:
        f = _unshare(fnptr)
        if type(f) is not FnPtr:
            return None
        if f.fn is not None:
            n = getattr(f.fn, "arity", None)
            return None if n is None else n - len(f.curry)
        arities = [n for (name, n) in self.fns if name == f.name]
        if len(arities) == 1:
            return arities[0] - len(f.curry)
        return None

    def curry(self, f: Any, args: tuple, p: Any) -> FnPtr:
        f = _unshare(f)
        if type(f) is not FnPtr:
            raise mismatch("Fn", f, p)
        # curried values are held by the pointer: they count against the size, depth and
        # memory limits like items of an array
        out = f.curried([self.cp(a, p) for a in args])
        self.check_deep(out, p)
        self.settle(p, SLOT_BYTES * len(out.curry))
        return out

    def make_fn(self, name: Any, p: Any) -> FnPtr:
        name = _unshare(name)
        if type(name) is not str:
            raise mismatch("string", name, p)
        if not _IDENT.match(name):
            raise err("ErrorFunctionNotFound", f"Function not found: {name}", p, function=name)
        return FnPtr(name)

    def is_def_fn(self, name: Any, arity: Any) -> bool:
        return (name, arity) in self.fns

    def is_def_method(self, type_: Any, name: Any, arity: Any, typed: dict) -> bool:
        """`is_def_fn(type, name, arity)`: a method callable on values of `type`."""
        if (name, arity) not in self.fns:
            return False
        this_type = typed.get((name, arity))
        aliases = {"int": "i64", "float": "f64", "INT": "i64", "FLOAT": "f64"}
        return this_type is None or aliases.get(type_, type_) == this_type

    # ---- try/catch ----
    @staticmethod
    def catchable(e: RhaiError) -> bool:
        root = e.root()
        return root.kind not in SYSTEM_KINDS and root.kind != "ErrorParsing"

    @staticmethod
    def caught_value(e: RhaiError) -> Any:
        """What `catch (x)` binds: the thrown value, or a map describing the error."""
        e = unwind(e)
        root = e.root()
        if root.kind == "ErrorRuntime" and root.details.get("value_set", True):
            return root.value
        line = root.line if root.line is not None else e.line
        col = root.column if root.line is not None else e.column
        out: dict[str, Any] = {
            "message": root.message,
            "error": root.kind,
            "line": line if line is not None else 0,
            "position": col if col is not None else 0,
        }
        for k, v in root.details.items():
            if type(v) in (int, str, bool, float):
                out[k] = v
        return out


def invoke(fn: Callable[..., Any], this: Any, depth: int, p: Any, args: Any) -> Any:
    """Call a compiled function without `*args`: an unpacking call goes through C, and deep
    recursion through C frames can exhaust a small thread stack before Python's limit."""
    n = len(args)
    if n == 1:
        return fn(this, depth, p, args[0])
    if n == 0:
        return fn(this, depth, p)
    if n == 2:
        return fn(this, depth, p, args[0], args[1])
    if n == 3:
        return fn(this, depth, p, args[0], args[1], args[2])
    return fn(this, depth, p, *args)


def data_sizes(v: Any) -> tuple[int, int, int, int]:
    """(array items, map entries, string chars, nesting depth) counted through nested
    containers and the values curried into function pointers (each pointer once: they may
    share values; a pointer knows its own depth)."""
    arrays = maps = strings = depth = above = 0
    seen: set[int] = set()
    level = [v]
    while level:
        below = []
        push = below.append
        for x in level:
            t = type(x)
            if t is list:
                arrays += len(x)
                depth = above + 1
                items: Any = x
            elif t is dict:
                maps += len(x)
                depth = above + 1
                items = x.values()
            elif t is FnPtr or t is Shared:
                if id(x) in seen:
                    continue
                seen.add(id(x))
                if t is FnPtr:
                    depth = max(depth, above + x.depth)
                    items = x.curry
                else:
                    items = (x.value,)
            elif t is str:
                strings += len(x)
                continue
            else:
                continue
            for y in items:
                ty = type(y)
                if ty is list or ty is dict or ty is FnPtr or ty is Shared:
                    push(y)
                elif ty is str:
                    strings += len(y)
        above += 1
        level = below
    if arrays or maps:
        WORK.n += arrays + maps
    return arrays, maps, strings, depth


def from_host(v: Any) -> Any:
    """Host function results: tuples become arrays; everything else passes as-is."""
    if type(v) is tuple:
        return [from_host(x) for x in v]
    return v


__all__ = [
    "INT_MAX",
    "INT_MIN",
    "ExitScript",
    "HostIterator",
    "Runtime",
]
