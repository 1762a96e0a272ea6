"""Conventions of the generated Python code that every part of the code generator relies on.

Generated expressions are strings; these patterns tell which of them may be repeated or moved
without changing what the program does, so a generator knows when it needs a temporary.
"""

from __future__ import annotations

import re

#: A name, a number or a plain string: cheap and free of effects, so it may appear twice.
SIMPLE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|'[^'\\]*')$")
#: A literal or a temporary (`_t3`): evaluating it earlier or later gives the same value.
LITERAL = re.compile(
    r"^(?:-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|\(-?\d+(?:\.\d+)?\)|None|True|False|'[^'\\]*'|_t\d+)$"
)
#: The i64 bounds as they are written in overflow checks.
INT_MIN_CODE = "-9223372036854775808"
INT_MAX_CODE = "9223372036854775807"
#: The widest bounds of a CPython int held in one 30-bit digit. CPython 3.11 specialises a
#: comparison of two such ints (COMPARE_OP_INT_JUMP); a comparison with an i64 bound never is,
#: so overflow checks test these bounds first and the i64 ones only for larger results.
SMALL_MAX_CODE = "1073741823"
SMALL_MIN_CODE = "-1073741823"


def fits_i64(bound: str, name: str, *, low: bool = True, high: bool = True) -> str:
    """A test that `bound` (an expression that also binds `name`, e.g. `(_r := a + b)`) is in
    i64, checking only the sides that can fail (`low`, `high`); cheap for small results."""
    if low and high:
        return (
            f"{SMALL_MIN_CODE} <= {bound} <= {SMALL_MAX_CODE} "
            f"or {INT_MIN_CODE} <= {name} <= {INT_MAX_CODE}"
        )
    if high:
        return f"{bound} <= {SMALL_MAX_CODE} or {name} <= {INT_MAX_CODE}"
    return f"{bound} >= {SMALL_MIN_CODE} or {name} >= {INT_MIN_CODE}"


#: With a memory budget, inline fast paths add the bytes they allocate to the function's local
#: `_m` and hand them to the runtime (`_rt.mem_flush`) once they pass this many; a local is far
#: cheaper in a hot loop than the runtime's counter.
MEM_CHUNK = 1 << 20
