"""`switch` expressions: literal cases, alternatives, guards, ranges, defaults, errors."""

import pytest

from rhai import Char

from .conftest import assert_error, assert_value, case

SWITCH = [
    case("switch 2 { 1 => (), 2 => 'a', 42 => true }", Char("a")),
    case("switch 3 { 1 => (), 2 => 'a', 42 => true }", None, id="no-match-no-default"),
    case("switch 3 { 1 => (), 2 => 'a', _ => 123 }", 123, id="default"),
    case("let x = 42; switch x { 1 => 1, 42 => { x / 2 }, _ => 9 }", 21, id="block-case"),
    case("let x = 42; switch x { 1 | 2 | 42 => 7, _ => 0 }", 7, id="alternatives"),
    case("let x = 2; switch x { 1 | 2 if x > 5 => 7, _ => 0 }", 0, id="alternatives-share-guard"),
    case("let x = 42; switch 2 { 2 if x < 40 => 'a', _ => 123 }", 123, id="guard-fails"),
    case("let x = 42; switch 2 { 2 if x > 40 => 'a', _ => 123 }", Char("a"), id="guard-passes"),
    case(
        "let x = 42; switch x { 42 if x < 40 => 1, 42 if x > 40 => 7, _ => 9 }",
        7,
        id="first-passing-guard-wins",
    ),
    case("switch 42 { 42 => 123, 42 => 999 }", 123, id="duplicate-first-wins"),
    case('switch "hello" { "hi" => 1, "hello" => 2, _ => 3 }', 2, id="string-cases"),
    case("switch 'x' { 'x' => 1, _ => 2 }", 1, id="char-cases"),
    case("switch true { false => 0, true => 1 }", 1, id="bool-cases"),
    case("switch () { () => 1, _ => 2 }", 1, id="unit-case"),
    case("let y = [1, 2, 3]; switch y { 42 => 1, [1, 2, 3] => 3, _ => 9 }", 3, id="array-case"),
    case(
        "let y = #{a: 1, b: true}; switch y { #{b: true, a: 1} => 3, _ => 9 }",
        3,
        id="map-case",
    ),
    case("switch 1.5 { 1.5 => 'f', _ => 'n' }", Char("f"), id="float-case"),
    case("switch 1 { 1.0 => 'f', _ => 'n' }", Char("n"), id="int-does-not-match-float-case"),
    case('switch "1" { 1 => "int", _ => "other" }', "other", id="no-cross-type-match"),
    case("let x = 42; switch x { 10..20 => 1, 20..=42 => 2, 25..45 => 3 }", 2, id="range-case"),
    case("switch 15 { 15 => 2, 10..20 => 1 }", 2, id="exact-before-range"),
    case("switch 5 { 'a' => true, 0..10 => 123, 2..12 => 'z', _ => 'x' }", 123, id="first-range"),
    case("switch 5 { 4 | 5 | 6 => 42, 0..10 => 123, _ => 'x' }", 42),
    case("switch 100 { 0..10 => 1, _ => 2 }", 2, id="range-miss-default"),
    case("switch 10 { 0..10 => 1, _ => 2 }", 2, id="exclusive-end"),
    case("switch 10 { 0..=10 => 1, _ => 2 }", 1, id="inclusive-end"),
    case("switch 5 { 0..10 if false => 1, 2..12 => 'z', _ => 'x' }", Char("z"), id="range-guard"),
    case("let x = 1..42; switch x { 1 => (), 1..42 => true }", True, id="range-value"),
    case("let r = switch 1 { 1 => 10, _ => 20 } + 5; r", 15, id="switch-is-expression"),
    case("switch 1 { 1 => { let a = 2; a * 3 } _ => 0 }", 6, id="comma-optional-after-block"),
    case('let x = 3; switch x % 2 { 0 => "even", 1 => "odd" }', "odd"),
    case("switch 2 { 1 => 10, 2 => { 20 }, 3 => 30, }", 20, id="trailing-comma"),
    case("let v = 0; switch 1 { 1 => { v = 5; } _ => () } v", 5, id="statement-case"),
]


MORE_SWITCH = [
    case("let x = 42; switch x { 1 | 2 | 5..50 | 'x' | true => 123, 'z' => 'a' }", 123,
         id="range-among-alternatives"),
    case("let x = 7; switch x { 1 | 2 | 5..50 | 'x' | true => 123, 'z' => 'a' }", 123),
    case("let x = 'x'; switch x { 1 | 2 | 5..50 | 'x' | true => 123, 'z' => 'a' }", 123),
    case("let x = 'z'; switch x { 1 | 2 | 5..50 | 'x' | true => 123, 'z' => 'a' }", Char("a")),
    case('let d = ["Baz", "hello", true]; switch d { ["Foo"] => 1, ["Baz", "hello", false] => 4, '
         '["Baz", "hello", true] => 5, _ => 9 }', 5, id="enum-like-arrays"),
    case("let x = 42; switch x / 2 { 21 if x > 40 => 1, 0 if x < 100 => 2, 1 => 3, _ => 9 }", 1),
    case("let x = 42; switch x / 2 { 21 if x < 40 => 1, 0 if x < 100 => 2, 1 => 3, _ => 9 }", 9),
    case("let x = 42; switch x { 10..20 => (), 20..=42 if x < 40 => 'a', 25..45 => 'z' }",
         Char("z"), id="guarded-range-falls-through"),
    case("switch 5 { 'a' => true, 0..10 if 1 + 2 == 1 + 2 + 1 => 1, 2..12 => 'z', _ => 'x' }",
         Char("z")),
    case("switch 42 { 42 => 'x', 10..20 => (), 20..=42 => 'a' }", Char("x"),
         id="exact-case-beats-range"),
    case('switch "5" { 0..10 => 1, _ => 2 }', 2, id="string-never-in-range"),
]  # fmt: skip


@pytest.mark.parametrize(("src", "expected"), MORE_SWITCH)
def test_more_switch(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(("src", "expected"), SWITCH)
def test_switch(src, expected):
    assert_value(src, expected)


SWITCH_ERRORS = [
    pytest.param("switch x { _ => 123, 1 => 42 }", "WrongSwitchDefaultCase", id="default-not-last"),
    pytest.param(
        "switch x { 1 => 123, _ if true => 42 }", "WrongSwitchCaseCondition", id="guarded-default"
    ),
    pytest.param(
        "switch x { 10..20 => (), 42 => 'x' }", "WrongSwitchIntegerCase", id="int-after-range"
    ),
    pytest.param(
        "switch x { 10..20 => (), 42.0 => 'x' }", "WrongSwitchIntegerCase", id="float-after-range"
    ),
]


@pytest.mark.parametrize(("src", "parse_kind"), SWITCH_ERRORS)
def test_switch_parse_errors(src, parse_kind):
    assert_error(src, "ErrorParsing", parse_kind=parse_kind, compile_only=True)


def test_switch_case_must_be_literal():
    assert_error("let a = 1; switch 1 { a => 1 }", "ErrorParsing", compile_only=True)


def test_switch_guard_must_be_bool():
    assert_error("switch 1 { 1 if 5 => 1 }", "ErrorMismatchDataType", line=1)
