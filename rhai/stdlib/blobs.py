"""BLOB functions (Rhai's blob_basic package): byte buffers as Python bytearrays.

Bytes read out are INT 0..255 (0 when out of range, as in Rhai); INT values written in keep only
their low 8 bits.
"""

from __future__ import annotations

import struct
from typing import Any

from .context import check_array_size, too_large
from .positions import index_in, offset_len, range_window
from .registry import BLOB, CHAR, FLOAT, INT, RANGE, STR, register
from .strings import utf8_len

INT_MAX = 2**63 - 1


def _make(ctx: Any, n: int, value: int) -> bytearray:
    if n <= 0:
        return bytearray()
    check_array_size(ctx, n, "Size of BLOB")
    try:
        return bytearray([value & 0xFF]) * n
    except (MemoryError, OverflowError):
        raise too_large("Size of BLOB") from None


@register("blob")
def _blob(ctx: Any) -> bytearray:
    return bytearray()


@register("blob", INT)
def _blob_n(ctx: Any, n: int) -> bytearray:
    return _make(ctx, n, 0)


@register("blob", INT, INT)
def _blob_n_value(ctx: Any, n: int, value: int) -> bytearray:
    return _make(ctx, n, value)


@register(("len", "get$len"), BLOB)
def _len(ctx: Any, b: bytearray) -> int:
    return len(b)


@register(("is_empty", "get$is_empty"), BLOB)
def _is_empty(ctx: Any, b: bytearray) -> bool:
    return not b


@register("get", BLOB, INT)
def _get(ctx: Any, b: bytearray, index: int) -> int:
    if not b:
        return 0
    i, _ = offset_len(len(b), index, 0)
    return b[i] if i < len(b) else 0


@register("set", BLOB, INT, INT, mutates=True)
def _set(ctx: Any, b: bytearray, index: int, value: int) -> None:
    if b:
        i, _ = offset_len(len(b), index, 0)
        if i < len(b):
            b[i] = value & 0xFF


@register(("push", "append"), BLOB, INT, mutates=True)
def _push(ctx: Any, b: bytearray, value: int) -> None:
    b.append(value & 0xFF)


@register("append", BLOB, BLOB, mutates=True)
def _append(ctx: Any, b: bytearray, other: bytearray) -> None:
    b.extend(other)


@register("append", BLOB, (STR, CHAR), mutates=True)
def _append_text(ctx: Any, b: bytearray, text: str) -> None:
    b.extend(text.encode("utf-8", "surrogatepass"))


@register("insert", BLOB, INT, INT, mutates=True)
def _insert(ctx: Any, b: bytearray, index: int, value: int) -> None:
    n = len(b)
    value &= 0xFF
    if index < 0:
        b.insert(max(n + index, 0), value)
    elif index >= n:
        b.append(value)
    else:
        b.insert(index, value)


@register("pad", BLOB, INT, INT, mutates=True)
def _pad(ctx: Any, b: bytearray, length: int, value: int) -> None:
    if length <= len(b):
        return
    check_array_size(ctx, length, "Size of BLOB")
    try:
        b.extend(bytearray([value & 0xFF]) * (length - len(b)))
    except (MemoryError, OverflowError):
        raise too_large("Size of BLOB") from None


@register("pop", BLOB, mutates=True)
def _pop(ctx: Any, b: bytearray) -> int:
    return b.pop() if b else 0


@register("shift", BLOB, mutates=True)
def _shift(ctx: Any, b: bytearray) -> int:
    return b.pop(0) if b else 0


@register("remove", BLOB, INT, mutates=True)
def _remove(ctx: Any, b: bytearray, index: int) -> int:
    i = index_in(len(b), index)
    return 0 if i is None else b.pop(i)


@register("clear", BLOB, mutates=True)
def _clear(ctx: Any, b: bytearray) -> None:
    b.clear()


@register("truncate", BLOB, INT, mutates=True)
def _truncate(ctx: Any, b: bytearray, length: int) -> None:
    del b[max(length, 0) :]


@register("chop", BLOB, INT, mutates=True)
def _chop(ctx: Any, b: bytearray, length: int) -> None:
    if length <= 0:
        b.clear()
    elif length < len(b):
        del b[: len(b) - length]


@register("reverse", BLOB, mutates=True)
def _reverse(ctx: Any, b: bytearray) -> None:
    b.reverse()


@register("contains", BLOB, INT)
def _contains(ctx: Any, b: bytearray, value: int) -> bool:
    return (value & 0xFF) in b


def _extract(b: bytearray, start: int, count: int) -> bytearray:
    if not b or count <= 0:
        return bytearray()
    start, count = offset_len(len(b), start, count)
    return b[start : start + count]


@register("extract", BLOB, INT, INT)
def _extract_len(ctx: Any, b: bytearray, start: int, count: int) -> bytearray:
    return _extract(b, start, count)


@register("extract", BLOB, INT)
def _extract_tail(ctx: Any, b: bytearray, start: int) -> bytearray:
    return _extract(b, start, INT_MAX)


@register("extract", BLOB, RANGE)
def _extract_range(ctx: Any, b: bytearray, r: Any) -> bytearray:
    return _extract(b, *range_window(r))


@register("split", BLOB, INT, mutates=True)
def _split(ctx: Any, b: bytearray, index: int) -> bytearray:
    if not b:
        return bytearray()
    start, _ = offset_len(len(b), index, INT_MAX)
    tail = b[start:]
    del b[start:]
    return tail


def _drain(b: bytearray, start: int, count: int) -> bytearray:
    if not b or count <= 0:
        return bytearray()
    start, count = offset_len(len(b), start, count)
    out = b[start : start + count]
    del b[start : start + count]
    return out


def _retain(b: bytearray, start: int, count: int) -> bytearray:
    if not b or count <= 0:
        return bytearray()
    start, count = offset_len(len(b), start, count)
    if count == 0:
        out = b[:]
        b.clear()
        return out
    out = b[:start] + b[start + count :]
    b[:] = b[start : start + count]
    return out


@register("drain", BLOB, INT, INT, mutates=True)
def _drain_len(ctx: Any, b: bytearray, start: int, count: int) -> bytearray:
    return _drain(b, start, count)


@register("drain", BLOB, RANGE, mutates=True)
def _drain_range(ctx: Any, b: bytearray, r: Any) -> bytearray:
    return _drain(b, *range_window(r))


@register("retain", BLOB, INT, INT, mutates=True)
def _retain_len(ctx: Any, b: bytearray, start: int, count: int) -> bytearray:
    return _retain(b, start, count)


@register("retain", BLOB, RANGE, mutates=True)
def _retain_range(ctx: Any, b: bytearray, r: Any) -> bytearray:
    return _retain(b, *range_window(r))


def _splice(b: bytearray, start: int, count: int, replace: bytearray) -> None:
    if not b:
        b[:] = replace
        return
    start, count = offset_len(len(b), start, count)
    if count == 0:
        b.extend(replace)  # Rhai appends when nothing is replaced
    else:
        b[start : start + count] = replace


@register("splice", BLOB, INT, INT, BLOB, mutates=True)
def _splice_len(ctx: Any, b: bytearray, start: int, count: int, replace: bytearray) -> None:
    _splice(b, start, count, replace)


@register("splice", BLOB, RANGE, BLOB, mutates=True)
def _splice_range(ctx: Any, b: bytearray, r: Any, replace: bytearray) -> None:
    _splice(b, *range_window(r), replace)


@register("to_array", BLOB)
def _to_array(ctx: Any, b: bytearray) -> list:
    return list(b)


@register("as_string", BLOB)
def _as_string(ctx: Any, b: bytearray) -> str:
    return b.decode("utf-8", "replace")


def _parse_int(b: bytearray, start: int, count: int, order: str) -> int:
    if not b or count <= 0:
        return 0
    start, count = offset_len(len(b), start, count)
    if count == 0:
        return 0
    chunk = bytes(b[start : start + min(count, 8)]).ljust(8, b"\0")
    return int.from_bytes(chunk, order, signed=True)  # type: ignore[arg-type]


@register("parse_le_int", BLOB, INT, INT)
def _parse_le_int(ctx: Any, b: bytearray, start: int, count: int) -> int:
    return _parse_int(b, start, count, "little")


@register("parse_be_int", BLOB, INT, INT)
def _parse_be_int(ctx: Any, b: bytearray, start: int, count: int) -> int:
    return _parse_int(b, start, count, "big")


@register("parse_le_int", BLOB, RANGE)
def _parse_le_int_range(ctx: Any, b: bytearray, r: Any) -> int:
    return _parse_int(b, *range_window(r), "little")


@register("parse_be_int", BLOB, RANGE)
def _parse_be_int_range(ctx: Any, b: bytearray, r: Any) -> int:
    return _parse_int(b, *range_window(r), "big")


def _parse_float(b: bytearray, start: int, count: int, order: str) -> float:
    if not b or count <= 0:
        return 0.0
    start, count = offset_len(len(b), start, count)
    if count == 0:
        return 0.0
    chunk = bytes(b[start : start + min(count, 8)]).ljust(8, b"\0")
    return struct.unpack("<d" if order == "little" else ">d", chunk)[0]


@register("parse_le_float", BLOB, INT, INT)
def _parse_le_float(ctx: Any, b: bytearray, start: int, count: int) -> float:
    return _parse_float(b, start, count, "little")


@register("parse_be_float", BLOB, INT, INT)
def _parse_be_float(ctx: Any, b: bytearray, start: int, count: int) -> float:
    return _parse_float(b, start, count, "big")


@register("parse_le_float", BLOB, RANGE)
def _parse_le_float_range(ctx: Any, b: bytearray, r: Any) -> float:
    return _parse_float(b, *range_window(r), "little")


@register("parse_be_float", BLOB, RANGE)
def _parse_be_float_range(ctx: Any, b: bytearray, r: Any) -> float:
    return _parse_float(b, *range_window(r), "big")


def _write(b: bytearray, start: int, count: int, data: bytes) -> None:
    """Copy the first bytes of `data` into the clamped window; the rest stays as it was."""
    if not b or count <= 0 or not data:
        return
    start, count = offset_len(len(b), start, count)
    n = min(count, len(data))
    b[start : start + n] = data[:n]


def _number_bytes(value: float, order: str) -> bytes:
    if type(value) is int:
        return value.to_bytes(8, order, signed=True)  # type: ignore[arg-type]
    return struct.pack("<d" if order == "little" else ">d", value)


@register("write_le", BLOB, INT, INT, (INT, FLOAT), mutates=True)
def _write_le(ctx: Any, b: bytearray, start: int, count: int, value: float) -> None:
    _write(b, start, count, _number_bytes(value, "little"))


@register("write_be", BLOB, INT, INT, (INT, FLOAT), mutates=True)
def _write_be(ctx: Any, b: bytearray, start: int, count: int, value: float) -> None:
    _write(b, start, count, _number_bytes(value, "big"))


@register("write_le", BLOB, RANGE, (INT, FLOAT), mutates=True)
def _write_le_range(ctx: Any, b: bytearray, r: Any, value: float) -> None:
    _write(b, *range_window(r), _number_bytes(value, "little"))


@register("write_be", BLOB, RANGE, (INT, FLOAT), mutates=True)
def _write_be_range(ctx: Any, b: bytearray, r: Any, value: float) -> None:
    _write(b, *range_window(r), _number_bytes(value, "big"))


def _ascii(text: str) -> bytes:
    return "".join(c for c in text if c.isascii()).encode("ascii")


@register("write_utf8", BLOB, INT, INT, STR, mutates=True)
def _write_utf8(ctx: Any, b: bytearray, start: int, count: int, text: str) -> None:
    _write(b, start, count, text.encode("utf-8", "surrogatepass"))


@register("write_utf8", BLOB, RANGE, STR, mutates=True)
def _write_utf8_range(ctx: Any, b: bytearray, r: Any, text: str) -> None:
    _write(b, *range_window(r), text.encode("utf-8", "surrogatepass"))


@register("write_ascii", BLOB, INT, INT, STR, mutates=True)
def _write_ascii(ctx: Any, b: bytearray, start: int, count: int, text: str) -> None:
    _write(b, start, min(count, utf8_len(text)), _ascii(text))


@register("write_ascii", BLOB, RANGE, STR, mutates=True)
def _write_ascii_range(ctx: Any, b: bytearray, r: Any, text: str) -> None:
    start, count = range_window(r)
    _write(b, start, min(count, utf8_len(text)), _ascii(text))
