"""Literals: integers in every radix, floats, chars, strings, unit, arrays, maps, comments."""

import pytest

from rhai import Char, Engine, RhaiError
from rhai.values import INT_MAX, INT_MIN

from .conftest import assert_error, assert_value, case, check_position

INTEGERS = [
    case("42", 42),
    case("0", 0),
    case("-17", -17),
    case("+5", 5),
    case("1_000_000", 1_000_000),
    case("1_2_3", 123),
    case("9223372036854775807", INT_MAX),
    case("-9223372036854775808", INT_MIN, id="int-min-literal"),
    case("0xff", 255),
    case("0Xf", 15),
    case("0xDEAD_beef", 0xDEADBEEF),
    case("0xffffffffffffffff", -1, id="hex-u64-reinterpreted"),
    case("0x8000000000000000", INT_MIN, id="hex-sign-bit"),
    case("0x7fffffffffffffff", INT_MAX),
    case("0o77", 63),
    case("0O17", 15),
    case("0o1234", 668),
    case("0b1010", 10),
    case("0B1111", 15),
    case("0b0011_1100_1010_0101", 15525),
    case("0b" + "1" * 64, -1, id="binary-64-ones"),
    case("let x = 0xf; x", 15),
    case("42.type_of()", "i64"),
    case("type_of(0x10)", "i64"),
    case("-0", 0),
    case("- 5", -5, id="minus-space-literal"),
    case("-(-5)", 5, id="double-negation"),
]


@pytest.mark.parametrize(("src", "expected"), INTEGERS)
def test_integer_literals(src, expected):
    assert_value(src, expected)


FLOATS = [
    case("1.5", 1.5),
    case("123.456", 123.456),
    case("1.", 1.0, id="trailing-dot"),
    case("-42.", -42.0, id="negative-trailing-dot"),
    case("1e10", 1e10),
    case("1e3", 1000.0),
    case("1.5e-3", 0.0015),
    case("1.23E+2", 123.0),
    case("2.5e2", 250.0),
    case("1_000.5", 1000.5),
    case("-0.5", -0.5),
    case("0.0", 0.0),
    case("9223372036854775808", 9223372036854775808.0, id="decimal-overflow-becomes-float"),
    case("99999999999999999999", 1e20, id="huge-decimal-becomes-float"),
    case("type_of(1.0)", "f64"),
    case("type_of(9223372036854775808)", "f64", id="type-of-decimal-overflow"),
    case("1.0 + 0", 1.0),
]


@pytest.mark.parametrize(("src", "expected"), FLOATS)
def test_float_literals(src, expected):
    assert_value(src, expected)


CHARS = [
    case("'a'", Char("a")),
    case("'Z'", Char("Z")),
    case("' '", Char(" ")),
    case("'\\n'", Char("\n"), id="escape-newline"),
    case("'\\t'", Char("\t"), id="escape-tab"),
    case("'\\r'", Char("\r"), id="escape-cr"),
    case("'\\\\'", Char("\\"), id="escape-backslash"),
    case("'\\''", Char("'"), id="escape-quote"),
    case("'\"'", Char('"'), id="double-quote-char"),
    case("'\\x41'", Char("A"), id="escape-hex"),
    case("'\\u0041'", Char("A"), id="escape-u4"),
    case("'\\u00e9'", Char("é"), id="escape-u4-accent"),
    case("'\\U0001F600'", Char("\U0001f600"), id="escape-u8-emoji"),
    case("'é'", Char("é"), id="utf8-char"),
    case("'朝'", Char("朝"), id="cjk-char"),
    case("type_of('x')", "char"),
    case("'a' == 'a'", True),
    case("'a' < 'b'", True),
]


@pytest.mark.parametrize(("src", "expected"), CHARS)
def test_char_literals(src, expected):
    assert_value(src, expected)


STRINGS = [
    case('"hello"', "hello"),
    case('""', ""),
    case('"a\\tb"', "a\tb", id="escape-tab"),
    case('"a\\nb"', "a\nb", id="escape-newline"),
    case('"q\\"q"', 'q"q', id="escape-quote"),
    case('"say ""hi"""', 'say "hi"', id="doubled-quote"),
    case('"\\x41\\u00e9\\U0001F600"', "Aé\U0001f600", id="hex-unicode-escapes"),
    case('"back\\\\slash"', "back\\slash", id="escape-backslash"),
    case('"it\'s"', "it's", id="single-quote-inside"),
    case('"朝に紅顔"', "朝に紅顔", id="utf8-string"),
    case('"abc\\\ndef"', "abcdef", id="line-continuation-col1"),
    case('#"raw\\n"#', "raw\\n", id="raw-no-escapes"),
    case('#"a "quoted" b"#', 'a "quoted" b', id="raw-with-quotes"),
    case('##"x"#y"##', 'x"#y', id="raw-double-hash"),
    case('#"line1\nline2"#', "line1\nline2", id="raw-multiline"),
    case("`plain`", "plain", id="backtick"),
    case("`a\\nb`", "a\\nb", id="backtick-no-escapes"),
    case("`multi\nline`", "multi\nline", id="backtick-multiline"),
    case("`\nfirst`", "first", id="backtick-leading-newline-dropped"),
    case("`\r\nfirst`", "first", id="backtick-leading-crlf-dropped"),
    case("`a``b`", "a`b", id="backtick-doubled"),
    case("`$5`", "$5", id="backtick-lone-dollar"),
    case("`\\$5`", "\\$5", id="backtick-backslash-dollar"),
    case('type_of("s")', "string"),
    case('"abc".len', 3),
]


@pytest.mark.parametrize(("src", "expected"), STRINGS)
def test_string_literals(src, expected):
    assert_value(src, expected)


OTHERS = [
    case("()", None, id="unit"),
    case("type_of(())", "()"),
    case("true", True),
    case("false", False),
    case("type_of(true)", "bool"),
    case("[1, 2, 3]", [1, 2, 3]),
    case("[]", []),
    case("[1, 2,]", [1, 2], id="array-trailing-comma"),
    case("[1, \"a\", (), 1.5, 'c', true]", [1, "a", None, 1.5, Char("c"), True]),
    case("[[1], [2, [3]]]", [[1], [2, [3]]]),
    case("#{a: 1, b: 2}", {"a": 1, "b": 2}),
    case("#{}", {}),
    case('#{"with space": 1}', {"with space": 1}),
    case("#{a: 1,}", {"a": 1}, id="map-trailing-comma"),
    case("#{a: #{b: [1]}}", {"a": {"b": [1]}}),
    case("type_of([])", "array"),
    case("type_of(#{})", "map"),
    case("type_of(1..2)", "range"),
    case("type_of(1..=2)", "range="),
]


@pytest.mark.parametrize(("src", "expected"), OTHERS)
def test_other_literals(src, expected):
    assert_value(src, expected)


COMMENTS = [
    case("// comment\n42", 42),
    case("42 // trailing", 42),
    case("/* block */ 42", 42),
    case("/* multi\nline */ 42", 42),
    case("/* outer /* nested */ still comment */ 42", 42, id="nested-block-comment"),
    case("/// doc comment\n42", 42),
    case("/** doc block */ 42", 42),
    case("//! module doc\n42", 42),
    case("1 + /* inline */ 2", 3),
    case("let x = 1; // set\n/* add */ x + 1", 2),
]


MORE_COMMENTS = [
    case("let /* a\n  multi-line\n    comment */ x = 42; x", 42, id="comment-inside-let"),
    case("/* only a comment */", None),
    case("///////////////\nlet x = 42;\n/***************/\nx", 42, id="comment-banners"),
    case("/** doc\n ** more\n **/\nfn foo() { 7 } foo()", 7, id="doc-block-before-fn"),
    case("// a\n// b\n", None, id="comments-only"),
]


@pytest.mark.parametrize(("src", "expected"), MORE_COMMENTS)
def test_more_comments(src, expected):
    assert_value(src, expected)


def test_unterminated_comment_after_fn():
    assert_error("fn/*", "ErrorParsing", compile_only=True, positioned=False)


def test_comment_with_unusual_whitespace_never_crashes():
    src = " /**\n\u1680  */"
    try:
        Engine().eval(src)
    except RhaiError as err:
        check_position(err, src)


@pytest.mark.parametrize(("src", "expected"), COMMENTS)
def test_comments(src, expected):
    assert_value(src, expected)


BAD_LITERALS = [
    pytest.param("0xabcd.123", id="hex-with-fraction"),
    pytest.param("0o77.123", id="octal-with-fraction"),
    pytest.param("0b101.101", id="binary-with-fraction"),
    pytest.param("''", id="empty-char"),
    pytest.param("'ab'", id="two-char-char"),
    pytest.param("'\\uhello'", id="bad-unicode-escape"),
    pytest.param('"unterminated', id="unterminated-string"),
    pytest.param('"line\nbreak"', id="bare-newline-in-string"),
    pytest.param("`unterminated", id="unterminated-backtick"),
    pytest.param("0xffffffffffffffff1", id="hex-too-big"),
    pytest.param("1 /* unclosed", id="unclosed-block-comment"),
    pytest.param('"\\q"', id="unknown-escape"),
    pytest.param("#{a: 1, a: 2}", id="duplicate-map-key"),
    pytest.param("let _ = 1;", id="underscore-identifier"),
    pytest.param("let _1 = 1;", id="underscore-digit-identifier"),
    pytest.param("let 3abc = 1;", id="digit-first-identifier"),
    pytest.param("let var = 1;", id="reserved-var"),
    pytest.param("let x = 1; x++", id="reserved-increment"),
    pytest.param("let x = 1; x--", id="reserved-decrement"),
    pytest.param("let fn = 1;", id="keyword-as-name"),
]


@pytest.mark.parametrize("src", BAD_LITERALS)
def test_bad_literals_are_parse_errors(src):
    assert_error(src, "ErrorParsing", compile_only=True)


PARSE_KINDS = [
    pytest.param("#{a: 1, a: 2}", "DuplicatedProperty", None, id="duplicate-map-key"),
    pytest.param("''", "BadInput", "MalformedChar", id="empty-char"),
    pytest.param('"abc', "BadInput", "UnterminatedString", id="unterminated"),
    pytest.param("let x = 1; x++", "BadInput", None, id="increment-reserved"),
    pytest.param('"\\q"', "BadInput", "MalformedEscapeSequence", id="bad-escape"),
]


@pytest.mark.parametrize(("src", "parse_kind", "lex_kind"), PARSE_KINDS)
def test_literal_parse_error_kinds(src, parse_kind, lex_kind):
    assert_error(src, "ErrorParsing", parse_kind=parse_kind, lex_kind=lex_kind)


@pytest.mark.parametrize(
    "src",
    [
        pytest.param('"abc', id="quoted"),
        pytest.param("`abc", id="backtick"),
        pytest.param('#"abc', id="raw"),
        pytest.param('##"Test string:\n    \\"#', id="raw-needs-matching-hashes"),
    ],
)
def test_unterminated_strings_point_at_their_start(src):
    assert_error(
        src,
        "ErrorParsing",
        line=1,
        column=1,
        parse_kind="BadInput",
        lex_kind="UnterminatedString",
        compile_only=True,
    )


def test_stray_hash_after_raw_string_is_unknown_operator():
    assert_error(
        '#"Test string: \\"##',
        "ErrorParsing",
        line=1,
        column=19,
        parse_kind="UnknownOperator",
        compile_only=True,
    )


@pytest.mark.parametrize(
    ("src", "column", "lex_kind"),
    [
        pytest.param("1 @ 2", 3, "UnexpectedInput", id="at-sign"),
        pytest.param("let x = 1; x ++ 1", 14, "ImproperSymbol", id="plus-plus"),
        pytest.param("let x = 1; x -- 1", 14, "ImproperSymbol", id="minus-minus"),
    ],
)
def test_bad_symbols(src, column, lex_kind):
    assert_error(
        src,
        "ErrorParsing",
        line=1,
        column=column,
        parse_kind="BadInput",
        lex_kind=lex_kind,
        compile_only=True,
    )


def test_error_position_of_bad_char_literal():
    assert_error("let x = 1;\nlet y = '';", "ErrorParsing", line=2, column=9)


def test_error_position_of_duplicate_key():
    assert_error("#{a: 1,\n  a: 2}", "ErrorParsing", line=2, parse_kind="DuplicatedProperty")


def test_unit_with_space_is_not_unit():
    assert_error("( )", "ErrorParsing", compile_only=True)
