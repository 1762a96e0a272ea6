"""Ranges and stepped iteration (Rhai's iter_basic package): `range(...)` and range properties.

`range(a, b)` is the plain range `a..b`; `range(a, b, step)` (INT or FLOAT) and
`range(a..b, step)` give a `StepRange` iterator. A step that does not move the value is an
error; a step pointing away from the end gives no iterations; an INT step that would overflow
ends the iteration.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rhai.errors import RhaiError
from rhai.values import INT_MAX, INT_MIN, HostIterator, Range

from .registry import FLOAT, INT, RANGE, register


def _zero_step() -> RhaiError:
    inner = RhaiError("ErrorArithmetic", "step value cannot be zero")
    return RhaiError(
        "ErrorInFunctionCall",
        f"{inner.message}\nin call to function 'range'",
        inner=inner,
        function="range",
        source="",
    )


class StepRange(HostIterator):
    """`range(from, to, step)`: from, from+step, ... while short of `to`."""

    __slots__ = ("direction", "end", "is_int", "start", "step")

    def __init__(self, start: Any, end: Any, step: Any) -> None:
        self.is_int = type(step) is int
        nxt = start + step
        if self.is_int and not INT_MIN <= nxt <= INT_MAX:
            self.direction = 0
        elif nxt == start:
            raise _zero_step()
        elif start < end and nxt > start:
            self.direction = 1
        elif start > end and nxt < start:
            self.direction = -1
        else:
            self.direction = 0
        self.start, self.end, self.step = start, end, step

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return "StepRange<i64>" if self.is_int else "StepRange<f64>"

    def __iter__(self) -> Iterator[Any]:
        if self.direction == 0:
            return iter(())
        if self.is_int:
            steps = range(self.start, self.end, self.step)
            if steps and not INT_MIN <= steps[-1] + self.step <= INT_MAX:
                steps = steps[:-1]  # Rhai stops when the next step would overflow
            return iter(steps)
        return self._floats()

    def _floats(self) -> Iterator[float]:
        x, end, step = self.start, self.end, self.step
        if self.direction > 0:
            while True:
                yield x
                x += step
                if x >= end:
                    return
        while True:
            yield x
            x += step
            if x <= end:
                return


@register("range", INT, INT)
def _range(ctx: Any, start: int, end: int) -> Range:
    return Range(start, end)


@register("range", INT, INT, INT)
def _range_step(ctx: Any, start: int, end: int, step: int) -> StepRange:
    return StepRange(start, end, step)


@register("range", FLOAT, FLOAT, FLOAT)
def _range_float(ctx: Any, start: float, end: float, step: float) -> StepRange:
    return StepRange(start, end, step)


@register("range", RANGE, INT)
def _range_of_range(ctx: Any, r: Range, step: int) -> StepRange:
    if r.inclusive:  # Rhai only has `range(from..to, step)` for exclusive ranges
        raise RhaiError(
            "ErrorFunctionNotFound", "Function not found: range (range=, i64)", function="range"
        )
    return StepRange(r.start, r.end, step)


@register(("start", "get$start"), RANGE)
def _start(ctx: Any, r: Range) -> int:
    return r.start


@register(("end", "get$end"), RANGE)
def _end(ctx: Any, r: Range) -> int:
    return r.end


@register(("is_inclusive", "get$is_inclusive"), RANGE)
def _is_inclusive(ctx: Any, r: Range) -> bool:
    return r.inclusive


@register(("is_exclusive", "get$is_exclusive"), RANGE)
def _is_exclusive(ctx: Any, r: Range) -> bool:
    return not r.inclusive


@register(("is_empty", "get$is_empty"), RANGE)
def _is_empty(ctx: Any, r: Range) -> bool:
    return r.start > r.end if r.inclusive else r.start >= r.end


@register("contains", RANGE, INT)
def _contains(ctx: Any, r: Range, x: int) -> bool:
    return r.start <= x <= r.end if r.inclusive else r.start <= x < r.end
