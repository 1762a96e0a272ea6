"""Object maps: property and index access, missing keys, sorted keys, merging, library."""

import pytest

from rhai import Char

from .conftest import assert_error, assert_value, case

ACCESS = [
    case("let m = #{a: 1, b: 2}; m.a", 1),
    case('let m = #{a: 1, b: 2}; m["b"]', 2),
    case('let m = #{"x y": 3}; m["x y"]', 3),
    case("let m = #{a: 1}; m.z", None, id="missing-property-is-unit"),
    case('let m = #{a: 1}; m["z"]', None, id="missing-index-is-unit"),
    case("let m = #{a: 1}; m.a = 5; m", {"a": 5}),
    case("let m = #{a: 1}; m.b = 2; m", {"a": 1, "b": 2}, id="assign-adds-key"),
    case('let m = #{}; m["k"] = "v"; m', {"k": "v"}),
    case("let m = #{a: #{b: 1}}; m.a.b", 1),
    case("let m = #{a: #{b: 1}}; m.a.b = 2; m", {"a": {"b": 2}}),
    case("let m = #{a: [1, 2]}; m.a[1]", 2),
    case("let m = #{a: [1, 2]}; m.a[1] = 5; m.a", [1, 5]),
    case("let m = #{a: [1]}; m.a.push(2); m.a", [1, 2], id="method-on-property-mutates"),
    case("let m = #{n: 1}; m.n += 1; m.n", 2),
    case('let k = "a"; let m = #{a: 7}; m[k]', 7),
    case("#{a: 1}.a", 1, id="property-on-literal"),
    case("let m = #{len: 5}; m.len", 5, id="len-is-a-key-on-maps"),
    case("let m = #{a: 1}; m.len", None, id="len-property-on-map-is-lookup"),
    case("let m = #{a: 1}; m.len()", 1, id="len-method-on-map"),
    case("let m = #{a: 1}; m.a.type_of()", "i64"),
    case("let m = #{a: 1}; let n = m; n.a = 2; m.a", 1, id="assign-copies"),
    case("fn f(m) { m.a = 9; m } let m = #{a: 1}; f(m); m.a", 1, id="fn-arg-copied"),
]


@pytest.mark.parametrize(("src", "expected"), ACCESS)
def test_map_access(src, expected):
    assert_value(src, expected)


LIBRARY = [
    case("#{b: 1, a: 2, c: 3}.keys()", ["a", "b", "c"], id="keys-sorted"),
    case("#{b: 1, a: 2, c: 3}.values()", [2, 1, 3], id="values-in-key-order"),
    case("#{a: 1, b: 2}.len()", 2),
    case("#{}.is_empty()", True),
    case('#{a: 1}.contains("a")', True),
    case('#{a: 1}.contains("b")', False),
    case('let m = #{a: 1, b: 2}; m.remove("a")', 1),
    case('let m = #{a: 1, b: 2}; m.remove("a"); m', {"b": 2}),
    case('let m = #{a: 1}; m.remove("zz")', None),
    case('#{a: 1}.get("a")', 1),
    case('#{a: 1}.get("b")', None),
    case('let m = #{}; m.set("k", 3); m', {"k": 3}),
    case("let m = #{a: 1}; m.mixin(#{b: 2, a: 3}); m", {"a": 3, "b": 2}),
    case("let m = #{a: 1}; m.fill_with(#{a: 9, b: 2}); m", {"a": 1, "b": 2}),
    case("let m = #{a: 1}; m.clear(); m", {}),
    case("let m = #{a: 1, b: 2}; m.retain(|k, v| v > 1); m", {"b": 2}),
    case('let m = #{a: 1, b: 2}; m.filter(|k, v| k == "a")', {"a": 1}),
    case("let m = #{a: 1, b: 2}; m.drain(|k, v| v == 1)", {"a": 1}),
    case("let m = #{a: 1, b: 2}; m.drain(|k, v| v == 1); m", {"b": 2}),
    case("#{a: 1} + #{b: 2}", {"a": 1, "b": 2}),
    case("let m = #{a: 1}; m += #{a: 2, c: 3}; m", {"a": 2, "c": 3}),
    case('"a" in #{a: ()}', True),
    case('let t = ""; for k in #{b: 1, a: 2}.keys() { t += k; } t', "ab"),
    case("let t = 0; for v in #{b: 1, a: 2}.values() { t = t * 10 + v; } t", 21),
    case("#{a: 1}.to_string()", '#{"a": 1}'),
    case("type_of(#{a: 1}.keys()[0])", "string"),
]


MORE_ACCESS = [
    case('let y = #{d: 1, "e": #{"": "hey"}}; y.e[""][1]', Char("e"), id="empty-key-then-char"),
    case('let a = [#{s: "hello"}]; a[0].s[2] = \'X\'; a[0].s', "heXlo", id="deep-char-assign"),
    case("let y = #{a: #{z: 7}}; (y.a).z", 7, id="parenthesised-property"),
    case("let y = #{a: #{z: 7}}; (y.a).z = 42; y.a.z", 42, id="assign-through-parens"),
    case("let y = #{`a\nb`: 1}; y[\"a\\nb\"]", 1, id="backtick-key-with-newline"),
    case('#{"c$": "x", "$d e!": 2}["$d e!"]', 2, id="symbol-keys"),
    case("let x = #{a: 1, b: 2, c: 3}; let c = x.remove(\"c\"); x.len() + c", 5),
    case("let x = #{a: 1, b: 2}; x.mixin(#{b: 42, d: 9}); x.len() + x.b", 45),
    case("let obj = #{data: 40, action: Fn(\"abc\")}; fn abc(x) { this.data += x; } "
         "obj.action(2); obj.data", 42, id="fn-ptr-property-as-method"),
    case("#{a: [#{b: 42}]}.to_json()", '{"a":[{"b":42}]}'),
    case(
        '#{a: "x\\"y", b: (), c: 1.5, d: true}.to_json()',
        '{"a":"x\\"y","b":null,"c":1.5,"d":true}',
    ),
    case('#{f: Fn("abc")}.to_json()', '{"f":"abc"}'),
    case("let m = #{}; m.x = #{}; m.x.y = 1; m", {"x": {"y": 1}}),
    case("let m = #{a: 1}; let k = m.keys(); k.push(\"z\"); m.len()", 1),
]  # fmt: skip


@pytest.mark.parametrize(("src", "expected"), MORE_ACCESS)
def test_map_more_access(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(
    "src",
    [
        pytest.param("#{a: 1}['x']", id="char-index"),
        pytest.param("#{a: 1}[1]", id="int-index"),
        pytest.param("#{a: 1}[1.5]", id="float-index"),
        pytest.param("#{a: 1}[()]", id="unit-index"),
        pytest.param("#{a: 1}[true && false]", id="bool-expr-index"),
    ],
)
def test_map_literal_index_must_be_string(src):
    assert_error(src, "ErrorParsing", parse_kind="MalformedIndexExpr", compile_only=True)


def test_map_literal_then_string_index_compiles():
    assert_value('#{a: "xyz"}["a"][1]', Char("y"))


def test_interpolated_key_is_property_expected():
    assert_error(
        "let y = #{`a${1}`: 1};", "ErrorParsing", parse_kind="PropertyExpected", compile_only=True
    )


@pytest.mark.parametrize(("src", "expected"), LIBRARY)
def test_map_library(src, expected):
    assert_value(src, expected)


def test_duplicate_key_is_parse_error():
    assert_error(
        "let m = #{a: 1, a: 2};",
        "ErrorParsing",
        line=1,
        column=17,
        parse_kind="DuplicatedProperty",
    )


def test_quoted_and_bare_duplicate_key():
    assert_error('#{a: 1, "a": 2}', "ErrorParsing", parse_kind="DuplicatedProperty")


def test_map_is_not_iterable_directly():
    assert_error("for x in #{a: 1} {}", "ErrorFor", line=1)


def test_interpolated_key_is_rejected():
    assert_error("#{`a${1}`: 1}", "ErrorParsing", compile_only=True)


def test_property_on_unit_is_an_error():
    err = assert_error("let x = (); x.a", "ErrorDotExpr", line=1)
    assert err.line == 1
