"""`Engine.compile_expression` / `eval_expression`: one expression, never a statement."""

import pytest

from rhai import Engine, RhaiError, Scope

from .conftest import same


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("1 + 2 * x", 21),
        ('if x > 5 { "big" } else { "small" }', "big"),
        ('switch x { 10 => "ten", _ => "other" }', "ten"),
        ("[1, 2, 3].map(|v| { let y = v * 2; y })", [2, 4, 6]),
        ("#{a: 1}.a + x", 11),
        ("x ?? 0", 10),
    ],
)
def test_expressions_evaluate(src: str, expected: object) -> None:
    value = Engine().eval_expression(src, Scope().push("x", 10))
    assert same(value, expected)


@pytest.mark.parametrize(
    ("src", "line", "column", "parse_kind"),
    [
        ("x = 1", 1, 3, "BadInput"),
        ("x += 1", 1, 3, "BadInput"),
        ("let y = 1", 1, 1, "BadInput"),
        ("const y = 1", 1, 1, "BadInput"),
        ("1; 2", 1, 2, "BadInput"),
        ("{ 1 }", 1, 1, "BadInput"),
        ("while true {}", 1, 1, "BadInput"),
        ("for i in 0..3 {}", 1, 1, "BadInput"),
        ("loop { break; }", 1, 1, "BadInput"),
        ("1 +\n  { 2 }", 2, 3, "BadInput"),
        ("if x > 5 { let y = 1; y } else { 2 }", 1, 12, "BadInput"),
        ("switch x { 10 => { 1 }, _ => 2 }", 1, 18, "BadInput"),
        ("fn f() { 1 }", 1, 1, "WrongFnDefinition"),
        ("", 1, 1, "UnexpectedEOF"),
    ],
)
def test_statements_are_parse_errors(src: str, line: int, column: int, parse_kind: str) -> None:
    engine = Engine()
    for attempt in (engine.compile_expression, engine.eval_expression):
        with pytest.raises(RhaiError) as info:
            attempt(src)
        err = info.value
        assert (err.kind, err.parse_kind) == ("ErrorParsing", parse_kind), repr(err)
        assert (err.line, err.column) == (line, column), repr(err)


def test_a_compiled_expression_runs_many_times() -> None:
    engine = Engine()
    ast = engine.compile_expression("limit * 2")
    assert [engine.eval(ast, Scope().push("limit", n)) for n in (1, 2)] == [2, 4]


def test_scripts_still_take_statements() -> None:
    assert Engine().eval("let y = 1; { y + 1 }") == 2
