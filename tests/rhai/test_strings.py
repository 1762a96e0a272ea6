"""Strings and chars: indexing, slicing, value semantics, the common string library, display."""

import pytest

from rhai import Char

from .conftest import assert_error, assert_value, case

INDEXING = [
    case('"hello"[0]', Char("h")),
    case('"hello"[1]', Char("e")),
    case('"hello"[-1]', Char("o"), id="negative-index"),
    case('"hello"[-5]', Char("h")),
    case('"héllo"[1]', Char("é"), id="index-counts-chars"),
    case('"hello"[1..3]', "el"),
    case('"hello"[1..=3]', "ell"),
    case('"hello"[..2]', "he"),
    case('"hello"[2..]', "llo"),
    case('"hello"[..]', "hello"),
    case('"hello"[3..100]', "lo", id="slice-end-clamped"),
    case('"hello"[4..2]', "", id="slice-empty-when-reversed"),
    case("let s = \"hello\"; s[0] = 'j'; s", "jello"),
    case("let s = \"hello\"; s[-1] = '!'; s", "hell!"),
    case("let s = \"abc\"; let t = s; t[0] = 'X'; s", "abc", id="string-copy-on-assign"),
    case("let s = \"abc\"; let t = s; t[0] = 'X'; t", "Xbc"),
    case('let s = "abc"; s += "d"; s.len()', 4),
]


SLICES = [
    case('let s = "hello"; s[1..-1]', "ell", id="negative-end"),
    case('let s = "hello"; s[1..=-1]', "ello", id="negative-inclusive-end"),
    case('let s = "hello"; s[1..-4]', "", id="negative-end-before-start"),
    case('let s = "hello"; s[2..-18]', "", id="negative-end-overflow"),
    case('let s = "hello"; s[0..18]', "hello", id="end-overflow"),
    case('let s = "hello"; s[..=2]', "hel"),
    case('let s = "hello"; s[..=]', "hello", id="open-inclusive-range"),
    case('let s = "hello"; s[1..2] = "i"; s', "hillo", id="assign-slice-same-length"),
    case('let s = "hello"; s[1..3] = "EEE"; s', "hEEElo", id="assign-slice-longer"),
    case('let s = "hello"; s[0..4] = ""; s', "o", id="assign-slice-empty"),
    case('let s = "hello"; s[..] = "x"; s', "x", id="assign-whole"),
    case('let s = "hello"; s[3..] = "p!"; s', "help!"),
    case('let s = "héllo"; s[1..=1] = "e"; s', "hello", id="assign-slice-multibyte"),
    case("let s = \"hello\"; let t = s[1..]; t[0] = 'E'; [s, t]", ["hello", "Ello"]),
    case('let s = "hello"; s.pop(3)', "llo", id="pop-n"),
    case('let s = "hello"; s.pop(3); s', "he"),
    case('let s = "hello"; s.pop(10)', "hello"),
    case('let s = "hello"; s.pop(-1)', ""),
    case('"\u2764\u2764 hi".sub_string(-2, 2)', "hi"),
    case('"\u2764\u2764 hi".sub_string(1, 3)', "\u2764 h"),
    case('"abc".sub_string(99)', ""),
    case('"abc".sub_string(1, -1)', ""),
    case('"abc".sub_string(1, 999)', "bc"),
    case("\"a\u2764b\u2764\".index_of('\u2764', 2)", 3),
    case("\"a\u2764b\u2764\".index_of('\u2764', -1)", 3),
    case("\"abc\".index_of('a', 99)", -1),
    case('let s = "a-b-c"; s.split_rev("-")', ["c", "b", "a"]),
    case('const S = "a,b,c"; S.split(",").len', 3, id="split-on-constant"),
]


@pytest.mark.parametrize(("src", "expected"), SLICES)
def test_string_slices_and_positions(src, expected):
    assert_value(src, expected)


CONTINUATION = [
    pytest.param('let s = "ab\\\n' + " " * 9 + 'cd"; s', "abcd", id="indent-up-to-quote-dropped"),
    pytest.param('let s = "ab\\\n' + " " * 11 + 'cd"; s', "ab  cd", id="extra-indent-kept"),
    pytest.param('let s = "ab\\\n' + " " * 3 + 'cd"; s', "abcd", id="short-indent-dropped"),
    pytest.param('"ab\\\ncd"', "abcd", id="no-indent"),
]


@pytest.mark.parametrize(("src", "expected"), CONTINUATION)
def test_line_continuation(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(("src", "expected"), INDEXING)
def test_string_indexing(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(
    "src",
    [
        pytest.param('"hello"[5]', id="past-end"),
        pytest.param('"hello"[-6]', id="before-start"),
        pytest.param('""[0]', id="empty"),
        pytest.param("let s = \"ab\"; s[2] = 'c';", id="assign-past-end"),
    ],
)
def test_string_index_out_of_bounds(src):
    assert_error(src, "ErrorStringBounds", line=1)


LIBRARY = [
    case('"hello".len()', 5),
    case('"hello".len', 5, id="len-property"),
    case('len("héllo")', 5, id="len-counts-chars"),
    case('"héllo".bytes', 6, id="bytes-property"),
    case('"".is_empty()', True),
    case('"a".is_empty', False),
    case('"hello".contains("ell")', True),
    case("\"hello\".contains('z')", False),
    case('"hello".starts_with("he")', True),
    case('"hello".ends_with("lo")', True),
    case('"hello".index_of("l")', 2),
    case("\"hello\".index_of('l')", 2),
    case('"hello".index_of("z")', -1),
    case('"hello".index_of("l", 3)', 3),
    case('"hello".sub_string(1, 3)', "ell"),
    case('"hello".sub_string(2)', "llo"),
    case('"hello".sub_string(1..3)', "el"),
    case('"hello".sub_string(-3, 2)', "ll"),
    case('"Hello".to_upper()', "HELLO"),
    case('"Hello".to_lower()', "hello"),
    case('let s = "Hi"; s.make_upper(); s', "HI"),
    case('let s = "  pad  "; s.trim(); s', "pad"),
    case("let s = \"abc\"; s.pad(5, '-'); s", "abc--"),
    case('let s = "abcdef"; s.truncate(3); s', "abc"),
    case('let s = "abc"; s.clear(); s', ""),
    case('let s = "hello"; s.replace("l", "L"); s', "heLLo"),
    case('let s = "hello"; s.remove("l"); s', "heo"),
    case('let s = "hello"; s.crop(1, 3); s', "ell"),
    case('let s = "abc"; s.pop()', Char("c")),
    case('let s = "abc"; s.pop(); s', "ab"),
    case('let s = "ab"; s.append("cd"); s', "abcd"),
    case('"a,b,c".split(",")', ["a", "b", "c"]),
    case('"a b  c".split()', ["a", "b", "c"]),
    case('"a,b,c".split(",", 2)', ["a", "b,c"]),
    case('"hello".split(2)', ["he", "llo"]),
    case('"abc".to_chars()', [Char("a"), Char("b"), Char("c")]),
    case('let n = 0; for c in "abc".chars() { n += 1; } n', 3),
    case('"x".to_string()', "x"),
    case("'x'.to_string()", "x"),
    case("42.to_string()", "42"),
    case('"abc" == "abc".to_string()', True),
    case('"hello world".contains(" ")', True),
    case('"ab".len() + "cd".len', 4),
]


@pytest.mark.parametrize(("src", "expected"), LIBRARY)
def test_string_library(src, expected):
    assert_value(src, expected)


DISPLAY = [
    case("`${1}`", "1"),
    case("`${-1}`", "-1"),
    case("`${1.0}`", "1.0", id="float-with-zero-fraction"),
    case("`${1.5}`", "1.5"),
    case("`${0.0}`", "0.0"),
    case("`${100.0}`", "100.0"),
    case("`${1e13}`", "10000000000000.0", id="float-at-natural-limit"),
    case("`${1e14}`", "1e14", id="float-exponent-large"),
    case("`${1.5e-14}`", "1.5e-14", id="float-exponent-small"),
    case("`${123456789012345.0}`", "1.23456789012345e14"),
    case("`${0.1 + 0.2}`", "0.30000000000000004"),
    case("`${true}`", "true"),
    case("`${()}`", "", id="unit-displays-empty"),
    case("`${'c'}`", "c"),
    case('`${"s"}`', "s"),
    case("`${[1, \"a\", 'c', (), 1.0, true]}`", "[1, \"a\", 'c', (), 1.0, true]", id="array"),
    case('`${#{b: 2, a: "x"}}`', '#{"a": "x", "b": 2}', id="map-sorted"),
    case("`${[]}`", "[]"),
    case("`${#{}}`", "#{}"),
    case('fn f() {} `${Fn("f")}`', "Fn(f)"),
    case("`${1..3}`", "1..3"),
    case("`${1..=3}`", "1..=3"),
    case("to_string(42)", "42"),
    case("to_string(())", ""),
    case("[()].to_string()", "[()]"),
    case('["a\\"b"].to_string()', '["a\\"b"]', id="debug-escapes-quote"),
    case("1.0.to_string()", "1.0"),
]


@pytest.mark.parametrize(("src", "expected"), DISPLAY)
def test_display(src, expected):
    assert_value(src, expected)


CHARS = [
    case("let c = 'a'; c.to_upper()", Char("A")),
    case("let s = \"\"; s += 'x'; s += 'y'; s", "xy"),
    case("'7'.to_string()", "7"),
    case('let c = "xyz"[2]; type_of(c)', "char"),
    case("type_of('a' + 'b')", "string"),
    case("let c = 'é'; c.to_string().len()", 1),
    case("'\\u2764'", Char("\u2764")),
    case("let y = \"hello\"; y[2] = '$'; y", "he$lo"),
    case('type_of([true, 2, "hello"])', "array"),
    case('type_of(#{a: true, "": 2, "z": "hello"})', "map"),
    case('"hello".type_of()', "string"),
]


@pytest.mark.parametrize(("src", "expected"), CHARS)
def test_chars(src, expected):
    assert_value(src, expected)


def test_string_bad_method():
    err = assert_error('"abc".no_such_method()', "ErrorFunctionNotFound", line=1)
    assert "no_such_method" in err.message


def test_string_wrong_argument_type():
    err = assert_error('"abc".sub_string("x")', "ErrorFunctionNotFound", line=1)
    assert "sub_string (string, string)" in err.message


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        pytest.param('let a = ["ab"]; a[0].make_upper(); a', ["AB"], id="method-on-element"),
        pytest.param('let m = #{s: "ab"}; m.s.make_upper(); m.s', "AB", id="method-on-property"),
        pytest.param('let m = #{s: "ab"}; m.s += "c"; m', {"s": "abc"}, id="append-to-property"),
        pytest.param('let a = [["x"]]; a[0][0] += "y"; a', [["xy"]], id="append-to-nested"),
        pytest.param('let s = "foo"; s[0].to_upper()', Char("F"), id="char-of-string-method"),
    ],
)
def test_string_mutation_through_chains(src, expected):
    assert_value(src, expected)


def test_strings_are_immutable_values_inside_arrays():
    assert_value('let a = ["ab"]; let s = a[0]; s += "c"; a', ["ab"])
