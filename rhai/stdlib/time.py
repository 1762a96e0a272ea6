"""Timestamps (Rhai's time_basic package): `timestamp()`, `elapsed`, and seconds arithmetic.

A timestamp is a point on the monotonic clock. `ts + secs` / `ts - secs` move it (INT whole
seconds, FLOAT to the millisecond, as Rhai's Duration conversions do), `ts1 - ts2` is the signed
difference in FLOAT seconds, and timestamps compare by time.
"""

from __future__ import annotations

import time as _clock
from typing import Any

from rhai.errors import RhaiError
from rhai.values import Timestamp

from .registry import FLOAT, INT, TIMESTAMP, register

_U64_MAX = 2**64 - 1


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


def _seconds(seconds: float) -> float:
    """Rhai turns INT seconds into whole seconds and FLOAT seconds into whole milliseconds."""
    if type(seconds) is int:
        return float(seconds)
    return int(seconds * 1000.0) / 1000.0


def _shift(ts: Timestamp, seconds: float, sign: int) -> Timestamp:
    if seconds < 0:
        return _shift(ts, -seconds, -sign)
    if seconds > _U64_MAX:
        verb = "add" if sign > 0 else "subtract"
        raise _arith(f"Integer overflow for timestamp {verb}: {seconds}")
    instant = ts.instant + sign * _seconds(seconds)
    if instant < 0:
        raise _arith(f"Timestamp overflow when subtracting {seconds} second(s)")
    return Timestamp(instant)


@register("+", TIMESTAMP, (INT, FLOAT))
def _add(ctx: Any, ts: Timestamp, seconds: float) -> Timestamp:
    return _shift(ts, seconds, 1)


@register("-", TIMESTAMP, (INT, FLOAT))
def _sub(ctx: Any, ts: Timestamp, seconds: float) -> Timestamp:
    return _shift(ts, seconds, -1)


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
