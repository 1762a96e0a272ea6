"""How Rhai turns script positions into slices: negative counts from the end, then clamping.

`offset_len` is Rhai's `calc_offset_len` (windows for extract/drain/splice/...), `index_in` its
`calc_index` (single positions that may be invalid), `range_window` the `(start, count)` of a
range argument, and `iter_window` the variant iter_basic uses (an inclusive range that ends before
it starts is empty).
"""

from __future__ import annotations

from rhai.values import Range


def offset_len(length: int, start: int, count: int) -> tuple[int, int]:
    """Rhai's calc_offset_len: a clamped (start, count) window into `length` items."""
    if start < 0:
        start = length - min(-start, length)
    elif start >= length:
        return length, 0
    if count <= 0:
        return start, 0
    return start, min(count, length - start)


def index_in(length: int, index: int) -> int | None:
    """Rhai's calc_index: the position for `index` (negative from the end) or None."""
    if index < 0:
        index += length
        return index if index >= 0 else None
    return index if index < length else None


def range_window(r: Range) -> tuple[int, int]:
    """`max(start, 0)` and a count of `max(end, start) - start` (+1 when inclusive)."""
    start = max(r.start, 0)
    end = max(r.end, start)
    return start, end - start + (1 if r.inclusive else 0)


def iter_window(r: Range) -> tuple[int, int]:
    start = max(r.start, 0)
    if r.inclusive:
        return start, max(r.end, start - 1) - start + 1
    return start, max(r.end, start) - start
