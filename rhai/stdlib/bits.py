"""Bit fields on INT (Rhai's bit_field package): single bits, bit ranges and `bits()`.

Bit numbers count from the least significant bit; negative numbers count from the most
significant one. Results are i64 bit patterns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rhai.errors import RhaiError
from rhai.values import HostIterator, Mut, Range

from .positions import iter_window
from .registry import BOOL, INT, RANGE, register

INT_BITS = 64
_WRAP = 1 << 64
_SIGN = 1 << 63


def wrap_i64(x: int) -> int:
    """The i64 with the same low 64 bits."""
    x &= _WRAP - 1
    return x - _WRAP if x & _SIGN else x


def bit_index(bit: int) -> int:
    """Rhai's calc_index over 64 bits, raising ErrorBitFieldBounds."""
    index = bit + INT_BITS if bit < 0 else bit
    if 0 <= index < INT_BITS:
        return index
    raise _bounds_error(bit)


def _bounds_error(bit: int) -> RhaiError:
    return RhaiError(
        "ErrorBitFieldBounds",
        f"Bit-field index {bit} out of bounds: only {INT_BITS} bits in bit-field",
        index=bit,
        length=INT_BITS,
    )


def _field(r: Range) -> tuple[int, int]:
    """(start, count) of a bit range; an inclusive range must end inside the 64 bits."""
    start, count = iter_window(r)
    end = start + count - 1
    if r.inclusive and end >= INT_BITS:
        raise _bounds_error(end)
    return start, count


def _span(start: int, count: int) -> tuple[int, int]:
    bit = bit_index(start)
    return bit, min(count, INT_BITS - bit)


@register("get_bit", INT, INT)
def _get_bit(ctx: Any, value: int, bit: int) -> bool:
    return (value >> bit_index(bit)) & 1 == 1


@register("set_bit", INT, INT, BOOL, mutates=True)
def _set_bit(ctx: Any, value: int, bit: int, on: bool) -> Mut:
    mask = 1 << bit_index(bit)
    return Mut(wrap_i64(value | mask if on else value & ~mask), None)


def get_bits(value: int, start: int, count: int) -> int:
    if count <= 0:
        return 0
    bit, count = _span(start, count)
    if bit == 0 and count == INT_BITS:
        return value
    return (value >> bit) & ((1 << count) - 1)


def set_bits(value: int, start: int, count: int, new: int) -> int:
    if count <= 0:
        return value
    bit, count = _span(start, count)
    if bit == 0 and count == INT_BITS:
        return new
    mask = (1 << count) - 1
    return wrap_i64((value & ~(mask << bit)) | ((new & mask) << bit))


@register("get_bits", INT, INT, INT)
def _get_bits(ctx: Any, value: int, start: int, count: int) -> int:
    return get_bits(value, start, count)


@register("get_bits", INT, RANGE)
def _get_bits_range(ctx: Any, value: int, r: Range) -> int:
    return get_bits(value, *_field(r))


@register("set_bits", INT, INT, INT, INT, mutates=True)
def _set_bits(ctx: Any, value: int, start: int, count: int, new: int) -> Mut:
    return Mut(set_bits(value, start, count, new), None)


@register("set_bits", INT, RANGE, INT, mutates=True)
def _set_bits_range(ctx: Any, value: int, r: Range, new: int) -> Mut:
    return Mut(set_bits(value, *_field(r), new), None)


class BitRange(HostIterator):
    """What `x.bits(...)` returns: each bit as a bool, lowest first."""

    type_name = "BitRange"

    __slots__ = ("count", "start", "value")

    def __init__(self, value: int, start: int, count: int) -> None:
        self.value = value
        self.start = bit_index(start)
        self.count = max(0, min(count, INT_BITS - self.start))

    def __iter__(self) -> Iterator[bool]:
        v = self.value
        return ((v >> b) & 1 == 1 for b in range(self.start, self.start + self.count))


@register(("bits", "get$bits"), INT)
def _bits(ctx: Any, value: int) -> BitRange:
    return BitRange(value, 0, INT_BITS)


@register("bits", INT, INT)
def _bits_from(ctx: Any, value: int, start: int) -> BitRange:
    return BitRange(value, start, INT_BITS)


@register("bits", INT, INT, INT)
def _bits_from_len(ctx: Any, value: int, start: int, count: int) -> BitRange:
    return BitRange(value, start, count)


@register("bits", INT, RANGE)
def _bits_range(ctx: Any, value: int, r: Range) -> BitRange:
    return BitRange(value, *iter_window(r))
