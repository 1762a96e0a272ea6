"""Back-tick strings with `${ ... }` interpolation of whole statement blocks."""

import pytest

from .conftest import assert_error, assert_value, case

INTERPOLATION = [
    case("`x = ${1 + 2}`", "x = 3"),
    case("let n = 42; `n is ${n}.`", "n is 42."),
    case("`${1}${2}`", "12", id="adjacent"),
    case("`a${}b`", "ab", id="empty-interpolation"),
    case("`\\${x}`", "${x}", id="escaped-interpolation"),
    case("`a\\${1}b${2}`", "a${1}b2", id="escaped-then-real"),
    case("`a${`b${1 + 1}`}c`", "ab2c", id="nested"),
    case('`${"in" + "ner"}`', "inner"),
    case("`${let x = 5; x * 2}`", "10", id="statement-block"),
    case('`${if true { "yes" } else { "no" }}`', "yes"),
    case("let a = [1, 2]; `a = ${a}`", "a = [1, 2]"),
    case("let m = #{k: 1}; `${m.k}`", "1"),
    case("`line1\n${2}`", "line1\n2", id="multiline"),
    case("let s = `${1}`; type_of(s)", "string"),
    case("`${ 1 }` + `${2}`", "12"),
    case("`$`", "$", id="lone-dollar"),
    case("`${'c'}${()}${1.5}`", "c1.5"),
    case("fn f(x) { x * 3 } `${f(2)}`", "6", id="calls-script-function"),
    case("let x = 1; `${x += 1; x}`; x", 2, id="interpolation-shares-scope"),
    case("`{}`", "{}"),
    case("`$ {1}`", "$ {1}"),
]


@pytest.mark.parametrize(("src", "expected"), INTERPOLATION)
def test_interpolation(src, expected):
    assert_value(src, expected)


def test_error_inside_interpolation_is_positioned():
    assert_error("let a = 1;\n`v=${a / 0}`", "ErrorArithmetic", line=2)


def test_unterminated_interpolation():
    assert_error("`abc ${1 + 2", "ErrorParsing", compile_only=True)


def test_undefined_variable_in_interpolation():
    err = assert_error("`${nope}`", "ErrorVariableNotFound", line=1, column=4)
    assert "nope" in err.message


@pytest.mark.parametrize(
    ("src", "kind", "line", "column"),
    [
        pytest.param(
            "let x = `line1\nline2 ${1/0}`;", "ErrorArithmetic", 2, 10, id="second-line-of-backtick"
        ),
        pytest.param(
            "let x = `\na\n  ${ nope }`;",
            "ErrorVariableNotFound",
            3,
            6,
            id="third-line-after-dropped-newline",
        ),
        pytest.param(
            'let s = "ab\\\n   cd"; let y = zz;',
            "ErrorVariableNotFound",
            2,
            17,
            id="after-line-continuation",
        ),
        pytest.param('let s = #"a\nb"#; zz', "ErrorVariableNotFound", 2, 6, id="after-raw-string"),
    ],
)
def test_positions_after_multiline_strings(src, kind, line, column):
    assert_error(src, kind, line=line, column=column)
