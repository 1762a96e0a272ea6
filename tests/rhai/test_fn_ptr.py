"""Function pointers: `Fn("name")`, bare names, call/curry in both styles, properties."""

import pytest

from rhai import FnPtr

from .conftest import assert_error, assert_value, case

FN_PTR = [
    case('fn foo(x) { x + 1 } let f = Fn("foo"); f.call(1)', 2),
    case('fn foo(x) { x + 1 } call(Fn("foo"), 41)', 42),
    case("fn foo(x) { x + 1 } let f = foo; f.call(39)", 40, id="bare-name-is-pointer"),
    case("fn foo(x) { x + 1 } let f = foo; let g = 42; g = foo; call(f, 39) + call(g, 1)", 42),
    case('let f = Fn("later"); fn later() { 5 } f.call()', 5, id="resolved-at-call"),
    case('fn foo(a, b) { a * b } let f = Fn("foo").curry(6); f.call(7)', 42),
    case('fn foo(a, b) { a * b } call(curry(Fn("foo"), 6), 7)', 42),
    case('Fn("foo").name', "foo"),
    case('Fn("foo").is_anonymous', False),
    case('type_of(Fn("foo"))', "Fn"),
    case(
        'fn foo(x) { this += x; } let f = Fn("foo"); let x = 40; x.call(f, 2); x',
        42,
        id="call-with-this",
    ),
    case('let f = Fn("abs"); f.call(-3)', 3, id="pointer-to-native"),
    case('let f = Fn("abs"); call(f, -5)', 5),
    case('let f = Fn("len"); f.call([1, 2])', 2),
    case('let m = #{f: Fn("abs")}; m.f.call(-2)', 2),
    case('fn sq(x) { x * x } [1, 2, 3].map(Fn("sq"))', [1, 4, 9]),
    case('fn pick(f, a) { f.call(a) } fn neg(x) { -x } pick(Fn("neg"), 4)', -4),
]


@pytest.mark.parametrize(("src", "expected"), FN_PTR)
def test_fn_ptr(src, expected):
    assert_value(src, expected)


def test_fn_ptr_value_is_returned_to_host():
    assert_value('Fn("abc")', FnPtr("abc"))


def test_curried_fn_ptr_value_is_returned_to_host():
    assert_value('Fn("abc").curry(1)', FnPtr("abc", (1,)))


def test_calling_missing_function_through_pointer():
    err = assert_error('let f = Fn("nope");\nf.call(1)', "ErrorFunctionNotFound", line=2)
    assert "nope" in err.message


def test_unbound_this_through_pointer():
    src = 'fn foo(x) { this += x; }\nlet f = Fn("foo");\ncall(f, 2);'
    err = assert_error(src, "ErrorInFunctionCall", line=3)
    assert err.root().kind == "ErrorUnboundThis"


@pytest.mark.parametrize(
    ("src", "kind"),
    [
        pytest.param('Fn("")', "ErrorFunctionNotFound", id="empty-name"),
        pytest.param('Fn("not valid")', "ErrorFunctionNotFound", id="space-in-name"),
        pytest.param("Fn(42)", "ErrorMismatchDataType", id="not-a-string"),
    ],
)
def test_bad_fn_ptr_construction(src, kind):
    assert_error(src, kind, line=1)
