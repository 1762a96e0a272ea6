"""INT and FLOAT functions: sign and parity tests, min/max, conversions, rounding, maths, parsing.

Follows Rhai's math_basic, arithmetic and logic packages: checked INT maths raise
ErrorArithmetic, FLOAT maths follow IEEE (NaN/inf instead of exceptions), and rounding is Rust's
(half away from zero).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from rhai.errors import RhaiError
from rhai.values import INT_MAX, INT_MIN, Char

from .registry import CHAR, FLOAT, INT, STR, register
from .strings import WHITESPACE

_INF = math.inf
_NAN = math.nan
_TWO_63 = 2.0**63


def arithmetic(message: str) -> RhaiError:
    return RhaiError("ErrorArithmetic", message)


def rust_float(x: float) -> str:
    """Rust's `Display` for f64, used in Rhai's error messages: never an exponent."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = format(Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


# ---- sign, parity, absolute value ----


@register("abs", INT)
def _abs_int(ctx: Any, x: int) -> int:
    if x == INT_MIN:
        raise arithmetic(f"Negation overflow: -{x}")
    return -x if x < 0 else x


@register("abs", FLOAT)
def _abs_float(ctx: Any, x: float) -> float:
    return abs(x)


@register("sign", INT)
def _sign_int(ctx: Any, x: int) -> int:
    return (x > 0) - (x < 0)


@register("sign", FLOAT)
def _sign_float(ctx: Any, x: float) -> int:
    if x != x:
        raise arithmetic("Sign of NaN is undefined")
    return (x > 0) - (x < 0)


@register(("is_zero", "get$is_zero"), (INT, FLOAT))
def _is_zero(ctx: Any, x: float) -> bool:
    return x == 0


@register(("is_odd", "get$is_odd"), INT)
def _is_odd(ctx: Any, x: int) -> bool:
    return x % 2 != 0


@register(("is_even", "get$is_even"), INT)
def _is_even(ctx: Any, x: int) -> bool:
    return x % 2 == 0


# ---- min / max (INT, FLOAT, mixed; strings and chars) ----


@register("max", INT, INT)
def _max_int(ctx: Any, x: int, y: int) -> int:
    return x if x >= y else y


@register("min", INT, INT)
def _min_int(ctx: Any, x: int, y: int) -> int:
    return x if x <= y else y


@register("max", (INT, FLOAT), (INT, FLOAT))
def _max_float(ctx: Any, x: float, y: float) -> float:
    x, y = float(x), float(y)
    return x if x >= y else y


@register("min", (INT, FLOAT), (INT, FLOAT))
def _min_float(ctx: Any, x: float, y: float) -> float:
    x, y = float(x), float(y)
    return x if x <= y else y


@register("max", STR, STR)
@register("max", CHAR, CHAR)
def _max_text(ctx: Any, x: str, y: str) -> str:
    return x if x >= y else y


@register("min", STR, STR)
@register("min", CHAR, CHAR)
def _min_text(ctx: Any, x: str, y: str) -> str:
    return x if x <= y else y


# ---- conversions ----


@register("to_int", INT)
def _int_to_int(ctx: Any, x: int) -> int:
    return x


@register("to_int", CHAR)
def _char_to_int(ctx: Any, c: str) -> int:
    return ord(c)


@register("to_int", FLOAT)
def _float_to_int(ctx: Any, x: float) -> int:
    if x > _TWO_63 or x < -_TWO_63:  # Rust compares against `INT::MAX as f64`, i.e. 2**63
        raise arithmetic(f"Integer overflow: to_int({rust_float(x)})")
    if x != x:
        return 0
    return min(int(x), INT_MAX)


@register("to_float", (INT, FLOAT))
def _to_float(ctx: Any, x: float) -> float:
    return float(x)


def _radix_text(x: int, code: str) -> str:
    return format(x & 0xFFFF_FFFF_FFFF_FFFF, code)


@register("to_hex", INT)
def _to_hex(ctx: Any, x: int) -> str:
    return _radix_text(x, "x")


@register("to_octal", INT)
def _to_octal(ctx: Any, x: int) -> str:
    return _radix_text(x, "o")


@register("to_binary", INT)
def _to_binary(ctx: Any, x: int) -> str:
    return _radix_text(x, "b")


# ---- rounding (FLOAT only; also properties) ----


def _floor(ctx: Any, x: float) -> float:
    return float(math.floor(x)) if math.isfinite(x) else x


def _ceiling(ctx: Any, x: float) -> float:
    return float(math.ceil(x)) if math.isfinite(x) else x


def _round(ctx: Any, x: float) -> float:
    if not math.isfinite(x):
        return x
    a = abs(x)
    r = math.floor(a)
    if a - r >= 0.5:
        r += 1
    return math.copysign(float(r), x)


def _int(ctx: Any, x: float) -> float:
    return float(math.trunc(x)) if math.isfinite(x) else x


def _fraction(ctx: Any, x: float) -> float:
    return x - math.trunc(x) if math.isfinite(x) else _NAN


def _is_nan(ctx: Any, x: float) -> bool:
    return x != x


def _is_finite(ctx: Any, x: float) -> bool:
    return math.isfinite(x)


def _is_infinite(ctx: Any, x: float) -> bool:
    return math.isinf(x)


for _name, _fn in (
    ("floor", _floor),
    ("ceiling", _ceiling),
    ("round", _round),
    ("int", _int),
    ("fraction", _fraction),
    ("is_nan", _is_nan),
    ("is_finite", _is_finite),
    ("is_infinite", _is_infinite),
):
    register((_name, "get$" + _name), FLOAT)(_fn)


# ---- transcendental functions (IEEE results instead of Python exceptions) ----


def _ieee(fn: Any, overflow_signed: bool = False) -> Any:
    def native(ctx: Any, x: float) -> float:
        try:
            return fn(x)
        except ValueError:
            return _NAN
        except OverflowError:
            return math.copysign(_INF, x) if overflow_signed else _INF

    return native


def _sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0 else _NAN


def _ln(x: float) -> float:
    if x == 0:
        return -_INF
    return math.log(x) if x > 0 else _NAN


def _log10(x: float) -> float:
    if x == 0:
        return -_INF
    return math.log10(x) if x > 0 else _NAN


def _atanh(x: float) -> float:
    if x in (1.0, -1.0):
        return math.copysign(_INF, x)
    return math.atanh(x)


def _trig(fn: Any) -> Any:
    def wrapped(x: float) -> float:
        return fn(x) if math.isfinite(x) else _NAN

    return wrapped


for _name, _fn, _signed in (
    ("sqrt", _sqrt, False),
    ("exp", math.exp, False),
    ("ln", _ln, False),
    ("log", _log10, False),
    ("sin", _trig(math.sin), False),
    ("cos", _trig(math.cos), False),
    ("tan", _trig(math.tan), False),
    ("sinh", math.sinh, True),
    ("cosh", math.cosh, False),
    ("tanh", math.tanh, False),
    ("asin", math.asin, False),
    ("acos", math.acos, False),
    ("atan", math.atan, False),
    ("asinh", math.asinh, False),
    ("acosh", math.acosh, False),
    ("atanh", _atanh, True),
    ("to_degrees", math.degrees, True),
    ("to_radians", math.radians, False),
):
    register(_name, FLOAT)(_ieee(_fn, _signed))


@register("log", FLOAT, FLOAT)
def _log_base(ctx: Any, x: float, base: float) -> float:
    ln_x = _ln(x)
    ln_b = _ln(base)
    try:
        return ln_x / ln_b
    except ZeroDivisionError:
        if ln_x != ln_x:
            return _NAN
        return _NAN if ln_x == 0 else math.copysign(_INF, ln_x)


@register("atan", FLOAT, FLOAT)
def _atan2(ctx: Any, y: float, x: float) -> float:
    return math.atan2(y, x)


@register("hypot", FLOAT, FLOAT)
def _hypot(ctx: Any, x: float, y: float) -> float:
    return math.hypot(x, y)


@register("PI")
def _pi(ctx: Any) -> float:
    return math.pi


@register("E")
def _e(ctx: Any) -> float:
    return math.e


# ---- parsing ----

_DIGITS = {c: i for i, c in enumerate("0123456789abcdefghijklmnopqrstuvwxyz")}


def _parse_int_text(text: str, radix: int) -> int:
    """Rust's `i64::from_str_radix` (optional sign, no underscores), raising ValueError(msg)."""
    if not text:
        raise ValueError("cannot parse integer from empty string")
    negative = text[0] == "-"
    digits = text[1:] if text[0] in "+-" else text
    if not digits:
        raise ValueError("invalid digit found in string")
    value = 0
    for c in digits:
        d = _DIGITS.get(c.lower(), 99) if c.isascii() else 99
        if d >= radix:
            raise ValueError("invalid digit found in string")
        value = value * radix + d
    if negative:
        value = -value
        if value < INT_MIN:
            raise ValueError("number too small to fit in target type")
    elif value > INT_MAX:
        raise ValueError("number too large to fit in target type")
    return value


@register("parse_int", STR, INT)
def _parse_int_radix(ctx: Any, s: str, radix: int) -> int:
    if not 2 <= radix <= 36:
        raise arithmetic(f"Invalid radix: '{radix}'")
    try:
        return _parse_int_text(s.strip(WHITESPACE), radix)
    except ValueError as err:
        raise arithmetic(f"Error parsing integer number '{s}': {err}") from None


@register("parse_int", STR)
def _parse_int(ctx: Any, s: str) -> int:
    return _parse_int_radix(ctx, s, 10)


_FLOAT_RE = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
    re.IGNORECASE | re.ASCII,
)


@register("parse_float", STR)
def _parse_float(ctx: Any, s: str) -> float:
    text = s.strip(WHITESPACE)
    if not text:
        raise arithmetic(
            f"Error parsing floating-point number '{s}': cannot parse float from empty string"
        )
    if _FLOAT_RE.fullmatch(text) is None:
        raise arithmetic(f"Error parsing floating-point number '{s}': invalid float literal")
    return float(text)


def char_of(code: int) -> Char | None:
    """The char with this code point, or None when it is not a Unicode scalar value."""
    if 0 <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
        return Char(chr(code))
    return None
