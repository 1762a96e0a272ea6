"""Arrays: indexing, copy semantics, mutation in place, the functional library, errors."""

import pytest

from .conftest import assert_error, assert_value, case

INDEXING = [
    case("[1, 2, 3][0]", 1),
    case("[1, 2, 3][2]", 3),
    case("[1, 2, 3][-1]", 3, id="negative-index"),
    case("[1, 2, 3][-3]", 1),
    case("let a = [1, 2, 3]; a[1]", 2),
    case("let a = [1, 2, 3]; a[1] = 20; a", [1, 20, 3]),
    case("let a = [1, 2, 3]; a[-1] = 30; a", [1, 2, 30]),
    case("let a = [[1, 2], [3, 4]]; a[1][0]", 3),
    case("let a = [[1, 2], [3, 4]]; a[1][0] = 9; a", [[1, 2], [9, 4]]),
    case("let a = [#{x: 1}]; a[0].x = 5; a[0].x", 5),
    case("let a = [1, 2]; let i = 1; a[i]", 2),
    case("let a = [1, 2]; a[0 + 1]", 2),
    case('let a = [0, 0]; a[1] = "s"; a', [0, "s"], id="elements-any-type"),
    case("[[1, 2, 3]][0][-1]", 3),
]


@pytest.mark.parametrize(("src", "expected"), INDEXING)
def test_array_indexing(src, expected):
    assert_value(src, expected)


@pytest.mark.parametrize(
    ("src", "column"),
    [
        pytest.param("[1, 2, 3][3]", None, id="past-end"),
        pytest.param("[1, 2, 3][-4]", None, id="before-start"),
        pytest.param("[][0]", None, id="empty"),
        pytest.param("let a = [1]; a[1] = 2;", None, id="assign-past-end"),
        pytest.param("let a = [[1]]; a[0][5]", None, id="nested"),
    ],
)
def test_array_index_out_of_bounds(src, column):
    assert_error(src, "ErrorArrayBounds", line=1, column=column)


def test_array_bounds_message():
    err = assert_error("let a = [1, 2, 3];\na[5]", "ErrorArrayBounds", line=2)
    assert "5" in err.message and "3" in err.message


@pytest.mark.parametrize(
    "src",
    [
        pytest.param('[1, 2]["a"]', id="string-literal-index"),
        pytest.param("[1, 2][1.0]", id="float-literal-index"),
        pytest.param("[1, 2][()]", id="unit-literal-index"),
        pytest.param("[1, 2][true]", id="bool-literal-index"),
    ],
)
def test_bad_literal_index_is_parse_error(src):
    assert_error(src, "ErrorParsing", parse_kind="MalformedIndexExpr", compile_only=True)


def test_runtime_non_int_index():
    err = assert_error('let a = [1]; let i = "x"; a[i]', "ErrorMismatchDataType", line=1)
    assert err.kind == "ErrorMismatchDataType"


def test_indexing_a_non_container():
    assert_error("let x = true; x[0]", "ErrorIndexingType", line=1)


COPY_SEMANTICS = [
    case("let a = [1, 2]; let b = a; b.push(3); a", [1, 2], id="assign-copies"),
    case("let a = [1]; let b = [a, a]; a.push(2); b", [[1], [1]], id="nested-copies"),
    case("let a = [[1]]; let b = a[0]; b.push(2); a", [[1]], id="element-read-copies"),
    case("fn f(x) { x.push(9); x } let a = [1]; f(a); a", [1], id="script-fn-arg-copied"),
    case("fn f(x) { x.push(9); x } let a = [1]; f(a)", [1, 9]),
    case("let a = [1]; push(a, 2); a", [1, 2], id="native-first-arg-by-ref"),
    case("let a = [1]; a.push(2); a", [1, 2]),
    case("const A = [1]; let b = A; b.push(2); A", [1], id="const-copy"),
]


@pytest.mark.parametrize(("src", "expected"), COPY_SEMANTICS)
def test_array_copy_semantics(src, expected):
    assert_value(src, expected)


def test_const_array_element_assignment():
    err = assert_error("const x = [1, 2, 3]; x[2] = 42;", "ErrorAssignmentToConstant", line=1)
    assert "x" in err.message


MUTATION = [
    case("let a = [1, 2]; a.push(3); a", [1, 2, 3]),
    case("let a = [1, 2]; a.pop()", 2),
    case("let a = [1, 2]; a.pop(); a", [1]),
    case("let a = []; a.pop()", None, id="pop-empty-unit"),
    case("let a = [1, 2]; a.shift()", 1),
    case("let a = [1, 2]; a.shift(); a", [2]),
    case("let a = [1, 3]; a.insert(1, 2); a", [1, 2, 3]),
    case("let a = [1]; a.insert(5, 2); a", [1, 2], id="insert-past-end-appends"),
    case("let a = [1, 2, 3]; a.remove(1)", 2),
    case("let a = [1, 2, 3]; a.remove(1); a", [1, 3]),
    case("let a = [1, 2, 3]; a.remove(10)", None, id="remove-out-of-range-unit"),
    case("let a = [1, 2, 3]; a.reverse(); a", [3, 2, 1]),
    case("let a = [1, 2, 3]; a.clear(); a", []),
    case("let a = [1, 2, 3]; a.truncate(1); a", [1]),
    case("let a = [1, 2, 3]; a.chop(1); a", [3], id="chop-keeps-tail"),
    case("let a = [1]; a.pad(3, 0); a", [1, 0, 0]),
    case("let a = [1, 2]; a.append([3, 4]); a", [1, 2, 3, 4]),
    case("let a = [1, 2, 3, 4]; a.extract(1, 2)", [2, 3]),
    case("let a = [1, 2, 3, 4]; a.extract(1..3)", [2, 3]),
    case("let a = [1, 2, 3, 4]; a.extract(2)", [3, 4]),
    case("let a = [1, 2, 3]; let b = a.split(1); [a, b]", [[1], [2, 3]]),
    case("let a = [1, 2, 3, 4]; a.drain(|x| x % 2 == 0)", [2, 4]),
    case("let a = [1, 2, 3, 4]; a.drain(|x| x % 2 == 0); a", [1, 3]),
    case("let a = [1, 2, 3, 4]; a.retain(|x| x > 2); a", [3, 4]),
    case("let a = [1, 2, 3]; a.splice(1, 1, [7, 8]); a", [1, 7, 8, 3]),
    case("let a = [1, 1, 2, 2, 1]; a.dedup(); a", [1, 2, 1]),
    case("let a = [3, 1, 2]; a.sort(); a", [1, 2, 3]),
    case('let a = ["b", "a", "c"]; a.sort(); a', ["a", "b", "c"]),
    case("let a = [3, 1, 2]; a.sort(|x, y| y - x); a", [3, 2, 1], id="sort-with-comparer"),
    case("let a = [3, 1, 2]; a.sort_desc(); a", [3, 2, 1]),
    case("let a = [1]; a += 2; a += [3]; a", [1, 2, 3]),
]


@pytest.mark.parametrize(("src", "expected"), MUTATION)
def test_array_mutation(src, expected):
    assert_value(src, expected)


QUERIES = [
    case("[1, 2, 3].len()", 3),
    case("[1, 2, 3].len", 3, id="len-property"),
    case("len([])", 0),
    case("[].is_empty()", True),
    case("[1].is_empty", False),
    case("[1, 2, 3].contains(2)", True),
    case('[1, "2"].contains(2)', False),
    case("[1, 2, 3].index_of(3)", 2),
    case("[1, 2, 3].index_of(9)", -1),
    case("[1, 2, 3].index_of(|x| x > 1)", 1),
    case("[1, 2, 3].get(1)", 2),
    case("[1, 2, 3].get(5)", None, id="get-out-of-range-unit"),
    case("[1, 2, 3].get(-1)", 3),
    case("[1, 2, 3].find(|x| x > 1)", 2),
    case("[1, 2, 3].find(|x| x > 5)", None),
    case("[1, 2, 3].some(|x| x > 2)", True),
    case("[1, 2, 3].all(|x| x > 1)", False),
    case("[].all(|x| false)", True),
    case("[1, 2, 3].find_map(|x| if x > 1 { x * 10 })", 20),
]


@pytest.mark.parametrize(("src", "expected"), QUERIES)
def test_array_queries(src, expected):
    assert_value(src, expected)


FUNCTIONAL = [
    case("[1, 2, 3].map(|x| x * 2)", [2, 4, 6]),
    case("[1, 2, 3].map(|x, i| x + i)", [1, 3, 5], id="map-with-index"),
    case("[1, 2, 3, 4].filter(|x| x % 2 == 0)", [2, 4]),
    case("[5, 6, 7].filter(|x, i| i > 0)", [6, 7]),
    case("[1, 2, 3].reduce(|sum, x| sum + x, 0)", 6),
    case("[1, 2, 3].reduce(|sum, x| sum + x, 10)", 16),
    case('["a", "b"].reduce(|s, x| s + x, "")', "ab"),
    case("[1, 2, 3].reduce_rev(|s, x| s * 10 + x, 0)", 321),
    case("[1, 2].zip([3, 4], |a, b| a + b)", [4, 6]),
    case("fn double(x) { x * 2 } [1, 2].map(double)", [2, 4], id="map-named-fn"),
    case('fn double(x) { x * 2 } [1, 2].map(Fn("double"))', [2, 4], id="map-fn-ptr"),
    case("[1, 2, 3].map(|x| this)", [1, 2, 3], id="this-is-item"),
    case("let k = 10; [1, 2].map(|x| x + k)", [11, 12], id="closure-captures"),
    case("[1, 2, 3].filter(|x| x > 1).map(|x| x * x)", [4, 9], id="chained"),
    case("let a = [3, 1, 2]; a.map(|x| x).sort(); a", [3, 1, 2], id="map-returns-copy"),
    case("[[2], [1]].len()", 2),
]


@pytest.mark.parametrize(("src", "expected"), FUNCTIONAL)
def test_array_functional(src, expected):
    assert_value(src, expected)


def test_map_callback_error_is_reported():
    err = assert_error("[1, 0].map(|x| 1 / x)", "ErrorInFunctionCall", line=1)
    assert err.root().kind == "ErrorArithmetic"


def test_array_in_loop_sum():
    assert_value("let t = 0; for x in [1, 2, 3, 4] { t += x; } t", 10)


def test_array_for_loop_iterates_copy():
    assert_value("let a = [1, 2]; for x in a { a.push(x); } a", [1, 2, 1, 2])


def test_array_of_mixed_display():
    assert_value('let a = [1, "x", [2]]; a.to_string()', '[1, "x", [2]]')


BLOBS = [
    case("blob(3, 0x41)", bytearray(b"AAA")),
    case("blob()", bytearray()),
    case("let b = blob(2, 1); b.len()", 2),
    case(
        "let b = blob(); b.push(255); b.push(256); b", bytearray(b"\xff\x00"), id="push-truncates"
    ),
    case("let b = blob(3, 7); b[0]", 7),
    case("let b = blob(3, 7); b[-1]", 7),
    case("let b = blob(3, 7); b[-1] = 300; b", bytearray(b"\x07\x07\x2c"), id="assign-truncates"),
    case("blob(2, 1) + blob(1, 2)", bytearray(b"\x01\x01\x02")),
    case("blob(2, 1) == blob(2, 1)", True),
    case("type_of(blob())", "blob"),
    case('"AB".to_blob()', bytearray(b"AB")),
    case('"h\u00e9".to_blob().len()', 3, id="utf8-bytes"),
    case("blob(2, 0xab).to_string()", "[abab]", id="display-hex"),
    case('`${"h\u00e9".to_blob()}`', "h\u00e9", id="interpolation-splices-utf8"),
    case("let n = 0; for x in blob(3, 5) { n += x; } n", 15, id="iterate-bytes"),
]


@pytest.mark.parametrize(("src", "expected"), BLOBS)
def test_blobs(src, expected):
    assert_value(src, expected)


def test_blob_index_out_of_bounds():
    assert_error("let b = blob(3, 0);\nb[3]", "ErrorArrayBounds", line=2)
