"""Helpers for the Rhai conformance suite: exact-type value checks and positioned error checks.

Python's `True == 1`, `Char("a") == "a"` and `1 == 1.0` would let a wrong Rhai type slip
through a plain `==`, so every comparison here also compares `type()` recursively.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from rhai import Engine, FnPtr, RhaiError
from rhai.values import Range


def same(actual: Any, expected: Any) -> bool:
    """Equal value AND identical Python type, recursively through lists and dicts."""
    if type(actual) is not type(expected):
        return False
    if type(expected) is float:
        if math.isnan(expected):
            return math.isnan(actual)
        return actual == expected
    if type(expected) is list:
        return len(actual) == len(expected) and all(
            same(a, e) for a, e in zip(actual, expected, strict=True)
        )
    if type(expected) is dict:
        return actual.keys() == expected.keys() and all(
            same(actual[k], v) for k, v in expected.items()
        )
    if type(expected) is FnPtr:
        return actual.name == expected.name and same(list(actual.curry), list(expected.curry))
    if type(expected) is Range:
        return actual == expected
    return actual == expected


def run(src: str, **limits: Any) -> Any:
    """Evaluate `src` in a fresh engine built with `limits`."""
    return Engine(**limits).eval(src)


def eval_compiled(engine: Engine, ast: Any) -> Any:
    """Run an AST from `engine.compile` (the engine takes it in `eval` or `eval_ast`)."""
    runner = getattr(engine, "eval_ast", None)
    return runner(ast) if runner is not None else engine.eval(ast)


def assert_value(src: str, expected: Any, **limits: Any) -> Any:
    """`src` evaluates to `expected`, with exactly the same types."""
    try:
        value = run(src, **limits)
    except RhaiError as err:
        pytest.fail(f"{src!r} raised {err!r}, expected {expected!r}")
    assert same(value, expected), (
        f"{src!r} gave {value!r} ({type(value).__name__}), "
        f"expected {expected!r} ({type(expected).__name__})"
    )
    return value


def check_position(err: RhaiError, src: str) -> None:
    """A positioned error must point inside the script and say where in its message."""
    if err.line is None:
        return
    assert 1 <= err.line <= src.count("\n") + 2, f"line {err.line} outside {src!r}"
    assert err.column is not None and err.column >= 0
    assert str(err).startswith(f"line {err.line}, column {err.column}: "), str(err)


def assert_error(
    src: str,
    kind: str,
    line: int | None = None,
    column: int | None = None,
    *,
    parse_kind: str | None = None,
    lex_kind: str | None = None,
    root: str | None = None,
    compile_only: bool = False,
    positioned: bool = True,
    **limits: Any,
) -> RhaiError:
    """`src` fails with `kind` (and optionally parse/lex kind, the innermost kind, position).

    `root` is the kind of the innermost error under ErrorInFunctionCall wrappers.
    `compile_only` checks that `Engine.compile` alone already rejects the script.
    """
    engine = Engine(**limits)
    with pytest.raises(RhaiError) as info:
        if compile_only:
            engine.compile(src)
        else:
            engine.eval(src)
    err = info.value
    assert err.kind == kind, f"{src!r}: {err!r} is {err.kind}, expected {kind}"
    if parse_kind is not None:
        assert err.parse_kind == parse_kind, f"{src!r}: {err!r} parse_kind {err.parse_kind}"
    if lex_kind is not None:
        assert err.lex_kind == lex_kind, f"{src!r}: {err!r} lex_kind {err.lex_kind}"
    if root is not None:
        assert err.root().kind == root, f"{src!r}: innermost {err.root()!r}, expected {root}"
    if positioned:
        assert err.line is not None, f"{src!r}: {err!r} carries no position"
    check_position(err, src)
    if line is not None:
        assert err.line == line, f"{src!r}: {err!r} at line {err.line}, expected {line}"
    if column is not None:
        assert err.column == column, f"{src!r}: {err!r} at column {err.column}, expected {column}"
    return err


def assert_thrown(src: str, value: Any, **limits: Any) -> RhaiError:
    """`src` ends with an uncaught `throw` of `value` (possibly wrapped by function calls)."""
    with pytest.raises(RhaiError) as info:
        Engine(**limits).eval(src)
    err = info.value
    check_position(err, src)
    root = err.root()
    assert root.kind == "ErrorRuntime", f"{src!r}: {err!r}"
    assert same(root.value, value), f"{src!r} threw {root.value!r}, expected {value!r}"
    return err


def engine_bug(reason: str) -> pytest.MarkDecorator:
    """A case where the engine still disagrees with Rhai (reported to the engine's owner).

    Strict, so the day the engine is fixed the suite says so and the mark must go.
    """
    return pytest.mark.xfail(reason=f"engine: {reason}", strict=True)


def case(src: str, expected: Any, id: str | None = None, bug: str | None = None) -> Any:
    """A parametrize entry whose id is the script itself unless named; `bug` marks it xfail."""
    marks = [engine_bug(bug)] if bug else []
    return pytest.param(src, expected, id=id or src.replace("\n", " ")[:60], marks=marks)


@pytest.fixture
def engine() -> Engine:
    """A fresh engine with default limits."""
    return Engine()
