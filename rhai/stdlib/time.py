"""Timestamps (Rhai's time_basic package): `timestamp()`, `elapsed`, and seconds arithmetic.

A timestamp is a point on the monotonic clock. `ts + secs` / `ts - secs` move it (INT whole
seconds, FLOAT to the millisecond, as Rhai's Duration conversions do), `ts1 - ts2` is the signed
difference in FLOAT seconds, and timestamps compare by time.
"""

from __future__ import annotations

import time as _clock
from typing import Any

from rhai.errors import RhaiError
from rhai.values import Mut, Timestamp

from .numbers import rust_float
from .registry import FLOAT, INT, TIMESTAMP, register

_I64_MAX_F = float(2**63 - 1)


def _arith(message: str) -> RhaiError:
    return RhaiError("ErrorArithmetic", message)


@register("timestamp")
def _timestamp(ctx: Any) -> Timestamp:
    return Timestamp()


@register(("elapsed", "get$elapsed"), TIMESTAMP)
def _elapsed(ctx: Any, ts: Timestamp) -> float:
    now = _clock.monotonic()
    if ts.instant > now:
        raise _arith("Time-stamp is later than now")
    return now - ts.instant


def _moved(ts: Timestamp, delta: float, what: str, seconds: Any) -> Timestamp:
    instant = ts.instant + delta
    if instant < 0:
        raise _arith(f"Timestamp overflow when {what} {seconds} second(s)")
    return Timestamp(instant)


def _shift(ts: Timestamp, seconds: float, sign: int) -> Timestamp:
    """Move by INT whole seconds or FLOAT seconds truncated to milliseconds, as Rhai does."""
    if type(seconds) is int:
        what = "adding" if sign > 0 else "subtracting"
        return _moved(ts, float(sign * seconds), what, seconds)
    if seconds < 0:
        seconds, sign = -seconds, -sign
    what = "adding" if sign > 0 else "subtracting"
    if seconds > _I64_MAX_F:
        verb = "add" if sign > 0 else "subtract"
        raise _arith(f"Integer overflow for timestamp {verb}: {rust_float(seconds)}")
    millis = int(seconds * 1000.0) if seconds == seconds else 0
    return _moved(ts, sign * millis / 1000.0, what, rust_float(seconds))


@register("+", TIMESTAMP, (INT, FLOAT))
def _add(ctx: Any, ts: Timestamp, seconds: float) -> Timestamp:
    return _shift(ts, seconds, 1)


@register("-", TIMESTAMP, (INT, FLOAT))
def _sub(ctx: Any, ts: Timestamp, seconds: float) -> Timestamp:
    return _shift(ts, seconds, -1)


@register("+=", TIMESTAMP, (INT, FLOAT), mutates=True)
def _add_assign(ctx: Any, ts: Timestamp, seconds: float) -> Mut:
    return Mut(_shift(ts, seconds, 1), None)


@register("-=", TIMESTAMP, (INT, FLOAT), mutates=True)
def _sub_assign(ctx: Any, ts: Timestamp, seconds: float) -> Mut:
    return Mut(_shift(ts, seconds, -1), None)


@register("-", TIMESTAMP, TIMESTAMP)
def _diff(ctx: Any, a: Timestamp, b: Timestamp) -> float:
    return a.instant - b.instant


@register("==", TIMESTAMP, TIMESTAMP)
def _eq(ctx: Any, a: Timestamp, b: Timestamp) -> bool:
    return a.instant == b.instant


@register("!=", TIMESTAMP, TIMESTAMP)
def _ne(ctx: Any, a: Timestamp, b: Timestamp) -> bool:
    return a.instant != b.instant


@register("<", TIMESTAMP, TIMESTAMP)
def _lt(ctx: Any, a: Timestamp, b: Timestamp) -> bool:
    return a.instant < b.instant


@register("<=", TIMESTAMP, TIMESTAMP)
def _le(ctx: Any, a: Timestamp, b: Timestamp) -> bool:
    return a.instant <= b.instant


@register(">", TIMESTAMP, TIMESTAMP)
def _gt(ctx: Any, a: Timestamp, b: Timestamp) -> bool:
    return a.instant > b.instant


@register(">=", TIMESTAMP, TIMESTAMP)
def _ge(ctx: Any, a: Timestamp, b: Timestamp) -> bool:
    return a.instant >= b.instant


@register("sleep", (INT, FLOAT))
def _sleep(ctx: Any, seconds: float) -> None:
    if seconds > 0:
        _clock.sleep(min(float(seconds), 1e9))
