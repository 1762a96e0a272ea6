"""Property-based fuzzing of the Rhai engine.

Whatever a script contains -- token soup, grammar-shaped nonsense, a valid script with bytes
knocked out -- compiling and running it under tight limits must end normally or with a
`RhaiError` whose position lies inside the script. Any other exception (IndexError,
RecursionError, MemoryError, ...) is a crash of the host, which a sandbox must never have.

An arithmetic oracle then checks INT `+ - * / %` against a Python model of Rust's checked i64
semantics, including the precedence and associativity the renderer relies on.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rhai import Char, Engine, RhaiError
from rhai.values import INT_MAX, INT_MIN

# The engine raises Python's recursion limit the first time an Engine is built; hypothesis warns
# that it then cannot restore the old limit. That is expected here, not a test problem.
pytestmark = pytest.mark.filterwarnings("ignore:The recursion limit will not be reset")

LIMITS = {
    "max_operations": 10_000,
    "max_call_levels": 16,
    "max_expr_depth": 32,
    "max_string_size": 1_000,
    "max_array_size": 200,
    "max_map_size": 100,
    "max_variables": 100,
}

FUZZ = settings(
    max_examples=1200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


#: Generous wall-clock bound for one script under LIMITS: a native doing unbounded work inside
#: a single "operation" (building a huge string before checking its size, say) shows up here.
SLOW_SECONDS = 5.0


def assert_well_behaved(src: str) -> None:
    """compile and eval may only fail with a RhaiError positioned inside `src`, and quickly."""
    engine = Engine(**LIMITS)
    for step in (engine.compile, engine.eval):
        started = time.perf_counter()
        try:
            step(src)
        except RhaiError as err:
            check_error(err, src)
            if step is engine.compile:
                return
        except Exception as exc:  # a crash: report it with the script that caused it
            raise AssertionError(f"{type(exc).__name__}: {exc!r} escaped for {src!r}") from exc
        finally:
            elapsed = time.perf_counter() - started
            assert elapsed < SLOW_SECONDS, f"{elapsed:.1f}s for {src!r}"


def check_error(err: RhaiError, src: str) -> None:
    assert isinstance(err.kind, str) and err.kind.startswith("Error"), repr(err)
    # The engine turns a stray Python exception into ErrorSystem; for a script that is a crash.
    assert err.root().kind != "ErrorSystem", f"internal error for {src!r}: {err!r}"
    text = str(err)
    assert isinstance(text, str) and repr(err)
    if err.line is None:
        return
    lines = src.split("\n")
    assert 1 <= err.line <= len(lines) + 1, f"line {err.line} outside {src!r}: {err!r}"
    assert err.column is not None and err.column >= 0, repr(err)
    widest = max(len(line) for line in lines)
    assert err.column <= widest + 2, f"column {err.column} outside {src!r}: {err!r}"
    assert text.startswith(f"line {err.line}, column {err.column}: "), text


# ---- token soup ----

TOKENS = [
    # keywords and built-ins
    "let", "const", "if", "else", "switch", "while", "loop", "do", "until", "for", "in",
    "break", "continue", "return", "throw", "try", "catch", "fn", "private", "this", "true",
    "false", "Fn", "call", "curry", "is_def_fn", "type_of", "print", "debug", "eval", "import",
    "export", "as", "global", "is_shared", "exit", "_",
    # identifiers
    "x", "y", "f", "a", "_x", "len", "push", "map", "s", "m",
    # literals
    "0", "1", "42", "-7", "9223372036854775807", "-9223372036854775808", "0xff", "0b101",
    "0o17", "1.5", "1e3", "2.", "'c'", "'\\n'", '"str"', '"a\\tb"', "``", "`t${1}`",
    "`${x}`", '#"raw"#', "()",
    # operators and punctuation
    "+", "-", "*", "/", "%", "**", "<<", ">>", "&", "|", "^", "!", "&&", "||", "==", "!=", "<",
    "<=", ">", ">=", "=", "+=", "-=", "*=", "/=", "%=", "**=", "<<=", ">>=", "&=", "|=", "^=",
    "..", "..=", "??", "?.", "?[", "!in", "=>", "::", "#{", "#", "(", ")", "[", "]", "{", "}",
    ",", ";", ":", ".", "|", "||", "$", "@", "\\", "'", '"', "`",
    # trivia
    "//", "/*", "*/", "\n",
]  # fmt: skip

token_soup = st.builds(
    lambda toks, sep: sep.join(toks),
    st.lists(st.sampled_from(TOKENS), max_size=40),
    st.sampled_from([" ", "", "\n", "  "]),
)


@FUZZ
@given(token_soup)
def test_token_soup_never_crashes(src):
    assert_well_behaved(src)


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_arbitrary_text_never_crashes(src):
    assert_well_behaved(src)


# ---- grammar-guided scripts ----

NAMES = ["x", "y", "z", "a", "s"]
FN_NAMES = ["f", "g"]

int_lit = st.integers(min_value=-1000, max_value=1000).map(str)
literal = st.one_of(
    int_lit,
    st.sampled_from(["1.5", "0.0", "-2.5e3", "true", "false", "()", "'c'", '"ab"', '""',
                     "`v${x}`", "9223372036854775807", "-9223372036854775808", "1000000",
                     "1000000000", "-1000000000", "4611686018427387904", "0..1000000000",
                     "blob(3, 7)"]),
)  # fmt: skip
var = st.sampled_from(NAMES)
BINOPS = ["+", "-", "*", "/", "%", "**", "<<", ">>", "&", "|", "^", "&&", "||", "==", "!=",
          "<", "<=", ">", ">=", "??", "..", "..=", "in"]  # fmt: skip
NATIVES = [
    "len", "abs", "to_string", "type_of", "push", "pop", "sort", "reverse", "keys", "contains",
    "sub_string", "pad", "split", "map", "filter", "reduce", "index_of", "to_upper", "trim",
    "get", "remove", "insert", "range", "max", "min", "parse_int", "blob", "extract", "chars",
    "bits", "truncate", "chop", "splice", "get_bits", "set_bits", "drain", "retain", "dedup",
    "zip", "to_chars", "split_rev", "crop", "to_json", "to_hex", "sqrt", "curry", "is_shared",
]  # fmt: skip


def expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        args = st.lists(inner, max_size=3).map(", ".join)
        return st.one_of(
            st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(BINOPS), inner),
            st.builds(lambda op, a: f"{op}{a}", st.sampled_from(["-", "!", "+"]), inner),
            inner.map(lambda a: f"({a})"),
            args.map(lambda a: f"[{a}]"),
            st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), inner), max_size=3).map(
                lambda kv: "#{" + ", ".join(f"{k}: {v}" for k, v in dict(kv).items()) + "}"
            ),
            st.builds(lambda f, a: f"{f}({a})", st.sampled_from(NATIVES + FN_NAMES), args),
            st.builds(lambda o, f, a: f"{o}.{f}({a})", inner, st.sampled_from(NATIVES), args),
            st.builds(lambda o, i: f"{o}[{i}]", inner, inner),
            st.builds(lambda o, p: f"{o}.{p}", inner, st.sampled_from(["a", "len", "b"])),
            st.builds(lambda c, t, e: f"if {c} {{ {t} }} else {{ {e} }}", inner, inner, inner),
            st.builds(lambda v, e: f"|{v}| {e}", var, inner),
            st.builds(
                lambda v, e: f"switch {v} {{ 1 => {e}, 2 | 3 => 0, _ => {e} }}", inner, inner
            ),
            inner.map(lambda a: f"`<${{{a}}}>`"),
            st.builds(lambda f, a: f"{f}.call({a})", inner, args),
        )

    return st.recursive(st.one_of(literal, var), extend, max_leaves=12)


expr = expressions()


def statements() -> st.SearchStrategy[str]:
    simple = st.one_of(
        st.builds(lambda v, e: f"let {v} = {e};", var, expr),
        st.builds(lambda v, e: f"const {v.upper()} = {e};", var, expr),
        st.builds(
            lambda v, op, e: f"{v} {op} {e};",
            var,
            st.sampled_from(["=", "+=", "-=", "*=", "/=", "%=", "<<=", "|="]),
            expr,
        ),
        st.builds(lambda v, i, e: f"{v}[{i}] = {e};", var, expr, expr),
        st.builds(lambda v, e: f"{v}.a = {e};", var, expr),
        expr.map(lambda e: f"{e};"),
        expr.map(lambda e: f"return {e};"),
        expr.map(lambda e: f"throw {e};"),
        st.just("break;"),
        st.just("continue;"),
    )

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        block = st.lists(inner, max_size=3).map(" ".join)
        return st.one_of(
            st.builds(lambda c, b: f"if {c} {{ {b} }}", expr, block),
            st.builds(lambda c, b, e: f"if {c} {{ {b} }} else {{ {e} }}", expr, block, block),
            st.builds(lambda c, b: f"while {c} {{ {b} }}", expr, block),
            st.builds(lambda b: f"loop {{ {b} break; }}", block),
            st.builds(lambda b, c: f"do {{ {b} }} while {c};", block, expr),
            st.builds(lambda v, e, b: f"for {v} in {e} {{ {b} }}", var, expr, block),
            st.builds(lambda b, c: f"try {{ {b} }} catch (e) {{ {c} }}", block, block),
            block.map(lambda b: f"{{ {b} }}"),
        )

    return st.recursive(simple, extend, max_leaves=8)


stmt = statements()
fn_def = st.builds(
    lambda name, params, body: f"fn {name}({', '.join(params)}) {{ {body} }}",
    st.sampled_from(FN_NAMES),
    st.lists(var, max_size=3, unique=True),
    st.lists(stmt, max_size=3).map(" ".join),
)
program = st.builds(
    lambda fns, body, sep: sep.join(fns + body),
    st.lists(fn_def, max_size=2),
    st.lists(stmt, min_size=1, max_size=6),
    st.sampled_from(["\n", " "]),
)


@settings(FUZZ, max_examples=700)
@given(program)
def test_grammar_guided_scripts_never_crash(src):
    assert_well_behaved(src)


@FUZZ
@given(expr)
def test_grammar_guided_expressions_never_crash(src):
    assert_well_behaved(src)


# ---- mutations of valid scripts ----

CORPUS = [
    "let x = 40; x + 2",
    "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }\nfib(10)",
    'let s = "";\nfor i in 0..10 { s += `${i},`; }\ns.len()',
    "let a = [3, 1, 2];\na.sort();\na.map(|x| x * 2).filter(|x| x > 2)",
    "let m = #{a: 1, b: #{c: [1, 2]}};\nm.b.c[1] = 5;\nm.keys()",
    'switch 5 { 1 => "one", 2 | 3 => "few", 4..10 => "some", _ => "many" }',
    "let f = |x, y| x * y;\nlet g = f.curry(6);\ng.call(7)",
    "try { throw #{code: 1}; } catch (e) { e.code }",
    "let n = 0;\nwhile n < 100 { n += 7; if n % 5 == 0 { break; } }\nn",
    "const K = 3; fn k() { global::K * 2 } k()",
    "let x = 0xff & 0b1010 | 1 << 4; x ?? 0",
    "let r = loop { break 5; }; do { r -= 1; } until r <= 0; r",
    "let t = `a${ `b${ 1 + 1 }` }c`; t[1..]",
    "/* c /* nested */ */ let v = [1, [2, 3], #{k: 'v'}]; v[1][-1]",
    'eval("let q = 2;"); q * 21',
]
MUTATION_CHARS = [*"(){}[]<>;:,.'\"`$#|&!=+-*/%\\ \n_aZ09", "${", "//", "/*", "**"]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    src = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not src:
            break
        op = draw(st.sampled_from(["delete", "insert", "swap", "truncate", "duplicate"]))
        i = draw(st.integers(min_value=0, max_value=len(src) - 1))
        if op == "delete":
            j = draw(st.integers(min_value=i, max_value=min(len(src), i + 4)))
            src = src[:i] + src[j:]
        elif op == "insert":
            src = src[:i] + draw(st.sampled_from(MUTATION_CHARS)) + src[i:]
        elif op == "swap":
            j = draw(st.integers(min_value=0, max_value=len(src) - 1))
            chars = list(src)
            chars[i], chars[j] = chars[j], chars[i]
            src = "".join(chars)
        elif op == "truncate":
            src = src[:i]
        else:
            j = draw(st.integers(min_value=i, max_value=min(len(src), i + 12)))
            src = src[:j] + src[i:j] + src[j:]
    return src


@FUZZ
@given(mutated())
def test_mutated_scripts_never_crash(src):
    assert_well_behaved(src)


def test_corpus_is_valid():
    """The mutation corpus itself must run, or the mutations test nothing interesting."""
    for src in CORPUS:
        Engine(**LIMITS).eval(src)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=40, max_value=400), st.sampled_from(["(", "[", "{", "-(", "!("]))
def test_deep_nesting_is_a_parse_error_not_a_crash(depth, opener):
    closer = "".join({"(": ")", "[": "]", "{": "}"}[c] for c in opener if c in "([{")
    src = opener * depth + "1" + closer * depth
    assert_well_behaved(src)


# ---- arithmetic oracle ----


class Overflow(Exception):
    """The reference model's ErrorArithmetic."""


def checked(value: int) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise Overflow
    return value


def rust_div(a: int, b: int) -> int:
    if b == 0:
        raise Overflow
    q = abs(a) // abs(b)
    return checked(q if (a < 0) == (b < 0) else -q)


def rust_rem(a: int, b: int) -> int:
    if b == 0:
        raise Overflow
    checked(rust_div(a, b))  # i64::MIN % -1 overflows in Rust's checked_rem
    r = abs(a) % abs(b)
    return r if a >= 0 else -r


OPS = {
    "+": (150, lambda a, b: checked(a + b)),
    "-": (150, lambda a, b: checked(a - b)),
    "*": (180, lambda a, b: checked(a * b)),
    "/": (180, rust_div),
    "%": (180, rust_rem),
}

EDGES = [INT_MAX, INT_MIN, 2**62, -(2**62), 2**32, 3037000499, 3037000500, -1, 0, 1]
leaf = st.one_of(st.integers(min_value=-20, max_value=20), st.sampled_from(EDGES))
tree = st.recursive(
    leaf,
    lambda sub: st.tuples(st.sampled_from(sorted(OPS)), sub, sub),
    max_leaves=10,
)


def reference(node: Any) -> int:
    if isinstance(node, int):
        return node
    op, left, right = node
    a = reference(left)
    b = reference(right)
    return OPS[op][1](a, b)


def render(node: Any, *, minimal: bool) -> str:
    """Source text; `minimal` uses only the parentheses precedence and associativity need."""
    if isinstance(node, int):
        return f"({node})" if node < 0 else str(node)
    op, left, right = node
    prec = OPS[op][0]
    lhs = render(left, minimal=minimal)
    rhs = render(right, minimal=minimal)
    if not minimal or (not isinstance(left, int) and OPS[left[0]][0] < prec):
        lhs = f"({lhs})" if not isinstance(left, int) else lhs
    if not minimal or (not isinstance(right, int) and OPS[right[0]][0] <= prec):
        rhs = f"({rhs})" if not isinstance(right, int) else rhs
    return f"{lhs} {op} {rhs}"


@settings(max_examples=2000, deadline=None)
@given(tree, st.booleans())
@example(("%", INT_MIN, -1), False)
@example(("/", INT_MIN, -1), True)
@example(("-", ("*", 3037000500, 3037000500), 1), True)
def test_int_arithmetic_matches_checked_i64(node, minimal):
    src = render(node, minimal=minimal)
    try:
        expected: int | None = reference(node)
    except Overflow:
        expected = None
    engine = Engine(max_operations=10_000)
    if expected is None:
        try:
            value = engine.eval(src)
        except RhaiError as err:
            assert err.kind == "ErrorArithmetic", f"{src}: {err!r}"
            check_error(err, src)
            return
        raise AssertionError(f"{src} gave {value!r}, expected ErrorArithmetic")
    try:
        value = engine.eval(src)
    except RhaiError as err:
        raise AssertionError(f"{src} raised {err!r}, expected {expected}") from None
    assert type(value) is int and value == expected, f"{src} gave {value!r}, expected {expected}"


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-50, max_value=50), st.integers(min_value=-50, max_value=50))
def test_int_compound_assignment_matches_operators(a, b):
    for op, (_, fn) in OPS.items():
        src = f"let v = {a}; v {op}= {b}; v" if b >= 0 else f"let v = {a}; v {op}= ({b}); v"
        try:
            expected = fn(a, b)
        except Overflow:
            try:
                Engine().eval(src)
            except RhaiError as err:
                assert err.kind == "ErrorArithmetic", f"{src}: {err!r}"
                continue
            raise AssertionError(f"{src}: expected ErrorArithmetic") from None
        value = Engine().eval(src)
        assert type(value) is int and value == expected, f"{src} gave {value!r}"


def wrap_i64(value: int) -> int:
    value &= 2**64 - 1
    return value - 2**64 if value >= 2**63 else value


def shift_left(x: int, n: int) -> int:
    if n < 0:
        return shift_right(x, -n)
    return 0 if n >= 64 else wrap_i64(x << n)


def shift_right(x: int, n: int) -> int:
    if n < 0:
        return shift_left(x, -n)
    return (-1 if x < 0 else 0) if n >= 64 else x >> n


@settings(max_examples=500, deadline=None)
@given(
    st.integers(min_value=INT_MIN, max_value=INT_MAX),
    st.integers(min_value=-70, max_value=70),
    st.sampled_from(["<<", ">>"]),
)
def test_shifts_never_raise(x, n, op):
    src = f"let x = {x}; let n = {n}; x {op} n"
    value = Engine().eval(src)
    expected = shift_left(x, n) if op == "<<" else shift_right(x, n)
    assert type(value) is int and value == expected, f"{src} gave {value!r}, expected {expected}"


# ---- library oracles: simple, well-defined functions against Python ----

SAFE_TEXT = st.text(alphabet="abcXYZ ,.-_019", max_size=20)
SMALL_INTS = st.lists(st.integers(min_value=-1000, max_value=1000), max_size=25)


def rhai_list(items: list[int]) -> str:
    return "[" + ", ".join(str(i) for i in items) + "]"


@settings(max_examples=200, deadline=None)
@given(SMALL_INTS)
def test_array_library_matches_python(items):
    arr = rhai_list(items)
    src = (
        f"let a = {arr}; let s = a; s.sort(); let r = a; r.reverse(); "
        f"[s, r, a.len(), a.filter(|x| x % 2 == 0), a.map(|x| x * 3), a.reduce(|t, x| t + x, 0), "
        f"a.contains(7), a.index_of(7)]"
    )
    got = Engine(max_operations=100_000).eval(src)
    want = [
        sorted(items),
        items[::-1],
        len(items),
        [x for x in items if x % 2 == 0],
        [x * 3 for x in items],
        sum(items),
        7 in items,
        items.index(7) if 7 in items else -1,
    ]
    assert got == want, f"{src} gave {got!r}"


@settings(max_examples=200, deadline=None)
@given(SAFE_TEXT, SAFE_TEXT)
def test_string_library_matches_python(text, other):
    src = (
        f'let s = "{text}"; let o = "{other}"; '
        "[s.len(), s.to_upper(), s.to_lower(), s.contains(o), s.starts_with(o), s.ends_with(o), "
        's.index_of(o), s.split(","), s + o, s == o, s < o]'
    )
    got = Engine(max_operations=100_000).eval(src)
    want = [
        len(text),
        text.upper(),
        text.lower(),
        other in text,
        text.startswith(other),
        text.endswith(other),
        text.find(other) if text else -1,  # Rhai: searching an empty string always gives -1
        text.split(","),
        text + other,
        text == other,
        text < other,
    ]
    assert got == want, f"{src} gave {got!r}"


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=INT_MIN, max_value=INT_MAX))
def test_int_conversions_round_trip(n):
    src = f"let n = {n}; [n.to_string(), parse_int(n.to_string()), n.to_hex(), n.to_binary()]"
    got = Engine().eval(src)
    assert got == [str(n), n, format(n & (2**64 - 1), "x"), format(n & (2**64 - 1), "b")]


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet="abcdefgh", min_size=1, max_size=4), st.integers(-9, 9), max_size=8
    )
)
def test_map_keys_are_sorted(entries):
    literal = "#{" + ", ".join(f"{k}: {v}" for k, v in entries.items()) + "}"
    got = Engine().eval(f"let m = {literal}; [m.keys(), m.values(), m.len()]")
    keys = sorted(entries)
    assert got == [keys, [entries[k] for k in keys], len(entries)]


# ---- differential: small INT programs against a Python model ----
#
# Straight-line code, if/else, bounded for-loops and two helper functions over three INT
# variables. The model evaluates the same tree with checked i64 arithmetic; any overflow or
# division by zero must surface as ErrorArithmetic (possibly wrapped by a function call).

VARS = ("a", "b", "c")
HELPERS = "fn twice_minus(x, y) { x * 2 - y } fn step(x) { if x > 0 { x - 1 } else { x + 1 } }\n"


def model_call(name: str, args: list[int]) -> int:
    if name == "twice_minus":
        return checked(checked(args[0] * 2) - args[1])
    return checked(args[0] - 1) if args[0] > 0 else checked(args[0] + 1)


def int_expr(names: tuple[str, ...]) -> st.SearchStrategy[Any]:
    base = st.one_of(
        st.integers(min_value=-30, max_value=30).map(lambda n: ("lit", n)),
        st.sampled_from(EDGES).map(lambda n: ("lit", n)),
        st.sampled_from(names).map(lambda v: ("var", v)),
    )

    def extend(sub: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.tuples(st.just("bin"), st.sampled_from(sorted(OPS)), sub, sub),
            st.tuples(st.just("call"), st.just("twice_minus"), st.tuples(sub, sub)),
            st.tuples(st.just("call"), st.just("step"), st.tuples(sub)),
        )

    return st.recursive(base, extend, max_leaves=5)


def cond_expr(names: tuple[str, ...]) -> st.SearchStrategy[Any]:
    cmp = st.tuples(
        st.just("cmp"),
        st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
        int_expr(names),
        int_expr(names),
    )
    return st.one_of(
        cmp,
        st.tuples(st.just("and"), cmp, cmp),
        st.tuples(st.just("or"), cmp, cmp),
        st.tuples(st.just("not"), cmp),
    )


#: Loop starts near the INT boundaries too, so value-range reasoning about loop variables is tested.
loop_start = st.one_of(
    st.just(0),
    st.integers(min_value=-5, max_value=5),
    st.sampled_from([INT_MAX - 3, INT_MIN, 2**62, -(2**62), 3037000497]),
)


def statements_for(names: tuple[str, ...], depth: int) -> st.SearchStrategy[list[Any]]:
    assign = st.tuples(
        st.just("set"),
        st.sampled_from(VARS),
        st.sampled_from(["=", "+=", "-=", "*=", "/=", "%="]),
        int_expr(names),
    )
    if depth == 0:
        return st.lists(assign, min_size=1, max_size=3)
    inner = statements_for(names, depth - 1)
    loop_var = f"i{depth}"
    loop_body = statements_for((*names, loop_var), depth - 1)
    stmt = st.one_of(
        assign,
        st.tuples(st.just("if"), cond_expr(names), inner, inner),
        st.tuples(st.just("for"), st.just(loop_var), loop_start, st.integers(0, 3), loop_body),
    )
    return st.lists(stmt, min_size=1, max_size=4)


int_program = st.tuples(
    st.tuples(*[st.integers(min_value=-100, max_value=100)] * 3),
    statements_for(VARS, 2),
)


def render_int(node: Any) -> str:
    kind = node[0]
    if kind == "lit":
        return f"({node[1]})" if node[1] < 0 else str(node[1])
    if kind == "var":
        return node[1]
    if kind == "bin":
        return f"({render_int(node[2])} {node[1]} {render_int(node[3])})"
    return f"{node[1]}({', '.join(render_int(a) for a in node[2])})"


def render_cond(node: Any) -> str:
    kind = node[0]
    if kind == "cmp":
        return f"{render_int(node[2])} {node[1]} {render_int(node[3])}"
    if kind == "not":
        return f"!({render_cond(node[1])})"
    op = "&&" if kind == "and" else "||"
    return f"({render_cond(node[1])}) {op} ({render_cond(node[2])})"


def render_stmts(stmts: list[Any]) -> str:
    out = []
    for s in stmts:
        if s[0] == "set":
            out.append(f"{s[1]} {s[2]} {render_int(s[3])};")
        elif s[0] == "if":
            out.append(
                f"if {render_cond(s[1])} {{ {render_stmts(s[2])} }} else {{ {render_stmts(s[3])} }}"
            )
        else:
            start, count = s[2], s[3]
            out.append(f"for {s[1]} in ({start})..({start + count}) {{ {render_stmts(s[4])} }}")
    return " ".join(out)


def model_int(node: Any, env: dict[str, int]) -> int:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "var":
        return env[node[1]]
    if kind == "bin":
        left = model_int(node[2], env)
        return OPS[node[1]][1](left, model_int(node[3], env))
    return model_call(node[1], [model_int(a, env) for a in node[2]])


CMP = {
    "<": lambda x, y: x < y, "<=": lambda x, y: x <= y, ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y, "==": lambda x, y: x == y, "!=": lambda x, y: x != y,
}  # fmt: skip


def model_cond(node: Any, env: dict[str, int]) -> bool:
    kind = node[0]
    if kind == "cmp":
        left = model_int(node[2], env)
        return CMP[node[1]](left, model_int(node[3], env))
    if kind == "not":
        return not model_cond(node[1], env)
    if kind == "and":
        return model_cond(node[1], env) and model_cond(node[2], env)
    return model_cond(node[1], env) or model_cond(node[2], env)


def model_stmts(stmts: list[Any], env: dict[str, int]) -> None:
    for s in stmts:
        if s[0] == "set":
            value = model_int(s[3], env)
            env[s[1]] = value if s[2] == "=" else OPS[s[2][0]][1](env[s[1]], value)
        elif s[0] == "if":
            model_stmts(s[2] if model_cond(s[1], env) else s[3], env)
        else:
            for i in range(s[2], s[2] + s[3]):
                env[s[1]] = i
                model_stmts(s[4], env)
            env.pop(s[1], None)


@settings(max_examples=400, deadline=None)
@given(int_program)
def test_int_programs_match_python_model(program):
    (a, b, c), body = program
    src = f"{HELPERS}let a = {a}; let b = {b}; let c = {c};\n{render_stmts(body)}\n[a, b, c]"
    env = {"a": a, "b": b, "c": c}
    try:
        model_stmts(body, env)
        expected: list[int] | None = [env["a"], env["b"], env["c"]]
    except Overflow:
        expected = None
    try:
        got = Engine(max_operations=100_000).eval(src)
    except RhaiError as err:
        assert expected is None, f"{src}\nraised {err!r}, expected {expected}"
        assert err.root().kind == "ErrorArithmetic", f"{src}\n{err!r}"
        check_error(err, src)
        return
    assert expected is not None, f"{src}\ngave {got!r}, expected ErrorArithmetic"
    assert got == expected and all(type(v) is int for v in got), f"{src}\ngave {got!r}"


# ---- differential: value semantics of arrays and strings ----
#
# Rhai copies arrays and strings on assignment and when passing them to script functions, while
# methods on a variable change it in place. Random sequences of such operations, including
# closures that capture (and so share) a variable, are compared with a Python model.

ARRAYS = ("p", "q", "r")
STRINGS = ("s", "t")
VALUE_HELPERS = 'fn grown(x) { x.push(99); x } fn shout(x) { x += "!"; x }\n'

small = st.integers(min_value=-9, max_value=9)
array_op = st.one_of(
    st.tuples(st.just("copy"), st.sampled_from(ARRAYS), st.sampled_from(ARRAYS)),
    st.tuples(st.just("push"), st.sampled_from(ARRAYS), small),
    st.tuples(st.just("plus_item"), st.sampled_from(ARRAYS), small),
    st.tuples(st.just("plus_array"), st.sampled_from(ARRAYS), st.sampled_from(ARRAYS)),
    st.tuples(
        st.just("concat"), st.sampled_from(ARRAYS), st.sampled_from(ARRAYS), st.sampled_from(ARRAYS)
    ),
    st.tuples(st.just("pop"), st.sampled_from(ARRAYS)),
    st.tuples(st.just("insert0"), st.sampled_from(ARRAYS), small),
    st.tuples(st.just("reverse"), st.sampled_from(ARRAYS)),
    st.tuples(st.just("set0"), st.sampled_from(ARRAYS), small),
    st.tuples(st.just("local"), st.sampled_from(ARRAYS), small),
    st.tuples(st.just("fn"), st.sampled_from(ARRAYS), st.sampled_from(ARRAYS)),
    st.tuples(st.just("map"), st.sampled_from(ARRAYS), st.sampled_from(ARRAYS)),
    st.tuples(st.just("capture"), st.sampled_from(ARRAYS)),
    st.tuples(st.just("scopy"), st.sampled_from(STRINGS), st.sampled_from(STRINGS)),
    st.tuples(st.just("sappend"), st.sampled_from(STRINGS), st.sampled_from("xyz")),
    st.tuples(st.just("sfn"), st.sampled_from(STRINGS), st.sampled_from(STRINGS)),
    st.tuples(st.just("supper"), st.sampled_from(STRINGS)),
    st.tuples(st.just("scapture"), st.sampled_from(STRINGS)),
)


def render_value_op(op: tuple) -> str:
    kind, *args = op
    return {
        "copy": lambda d, s: f"{d} = {s};",
        "push": lambda d, k: f"{d}.push({k});",
        "plus_item": lambda d, k: f"{d} += {k};",
        "plus_array": lambda d, s: f"{d} += {s};",
        "concat": lambda d, x, y: f"{d} = {x} + {y};",
        "pop": lambda d: f"{d}.pop();",
        "insert0": lambda d, k: f"{d}.insert(0, {k});",
        "reverse": lambda d: f"{d}.reverse();",
        "set0": lambda d, k: f"if {d}.len() > 0 {{ {d}[0] = {k}; }}",
        "local": lambda d, k: f"{{ let tmp = {d}; tmp.push({k}); }}",
        "fn": lambda d, s: f"{d} = grown({s});",
        "map": lambda d, s: f"{d} = {s}.map(|v| v * 2);",
        "capture": lambda d: f"let seen_{d} = || {d}.len(); {d}.push(seen_{d}.call());",
        "scopy": lambda d, s: f"{d} = {s};",
        "sappend": lambda d, ch: f'{d} += "{ch}";',
        "sfn": lambda d, s: f"{d} = shout({s});",
        "supper": lambda d: f"{d}.make_upper();",
        "scapture": lambda d: f'let seen_{d} = || {d} + "?"; {d} = seen_{d}.call();',
    }[kind](*args)


def model_value_op(op: tuple, env: dict[str, Any]) -> None:
    kind, *args = op
    if kind in ("copy", "scopy"):
        env[args[0]] = copy.deepcopy(env[args[1]])
    elif kind in ("push", "plus_item"):
        env[args[0]].append(args[1])
    elif kind == "plus_array":
        env[args[0]].extend(copy.deepcopy(env[args[1]]))
    elif kind == "concat":
        env[args[0]] = env[args[1]] + env[args[2]]
    elif kind == "pop":
        if env[args[0]]:
            env[args[0]].pop()
    elif kind == "insert0":
        env[args[0]].insert(0, args[1])
    elif kind == "reverse":
        env[args[0]].reverse()
    elif kind == "set0":
        if env[args[0]]:
            env[args[0]][0] = args[1]
    elif kind == "fn":
        env[args[0]] = [*env[args[1]], 99]
    elif kind == "map":
        env[args[0]] = [v * 2 for v in env[args[1]]]
    elif kind == "capture":
        env[args[0]].append(len(env[args[0]]))
    elif kind == "sappend":
        env[args[0]] += args[1]
    elif kind == "sfn":
        env[args[0]] = env[args[1]] + "!"
    elif kind == "supper":
        env[args[0]] = env[args[0]].upper()
    elif kind == "scapture":
        env[args[0]] = env[args[0]] + "?"


@settings(max_examples=300, deadline=None)
@given(st.lists(array_op, min_size=1, max_size=12))
def test_value_semantics_match_python_model(ops):
    src = (
        f'{VALUE_HELPERS}let p = [1, 2]; let q = [3]; let r = []; let s = "a"; let t = "b";\n'
        + "\n".join(render_value_op(op) for op in ops)
        + "\n[p, q, r, s, t]"
    )
    env: dict[str, Any] = {"p": [1, 2], "q": [3], "r": [], "s": "a", "t": "b"}
    for op in ops:
        model_value_op(op, env)
    got = Engine(max_operations=100_000).eval(src)
    want = [env[name] for name in (*ARRAYS, *STRINGS)]
    assert got == want, f"{src}\ngave {got!r}\nwant {want!r}"


MAPS = ("m", "n")
KEYS = st.sampled_from(["a", "b", "c", "d"])
map_op = st.one_of(
    st.tuples(st.just("copy"), st.sampled_from(MAPS), st.sampled_from(MAPS)),
    st.tuples(st.just("prop"), st.sampled_from(MAPS), KEYS, small),
    st.tuples(st.just("index"), st.sampled_from(MAPS), KEYS, small),
    st.tuples(st.just("remove"), st.sampled_from(MAPS), KEYS),
    st.tuples(st.just("mixin"), st.sampled_from(MAPS), st.sampled_from(MAPS)),
    st.tuples(
        st.just("merge"), st.sampled_from(MAPS), st.sampled_from(MAPS), st.sampled_from(MAPS)
    ),
    st.tuples(st.just("fill"), st.sampled_from(MAPS), st.sampled_from(MAPS)),
    st.tuples(st.just("bump"), st.sampled_from(MAPS), KEYS),
    st.tuples(st.just("clear"), st.sampled_from(MAPS)),
)


def render_map_op(op: tuple) -> str:
    kind, *args = op
    return {
        "copy": lambda d, s: f"{d} = {s};",
        "prop": lambda d, k, v: f"{d}.{k} = {v};",
        "index": lambda d, k, v: f'{d}["{k}"] = {v};',
        "remove": lambda d, k: f'{d}.remove("{k}");',
        "mixin": lambda d, s: f"{d}.mixin({s});",
        "merge": lambda d, x, y: f"{d} = {x} + {y};",
        "fill": lambda d, s: f"{d}.fill_with({s});",
        "bump": lambda d, k: f'if "{k}" in {d} {{ {d}.{k} += 1; }}',
        "clear": lambda d: f"{d}.clear();",
    }[kind](*args)


def model_map_op(op: tuple, env: dict[str, dict]) -> None:
    kind, *args = op
    if kind == "copy":
        env[args[0]] = dict(env[args[1]])
    elif kind in ("prop", "index"):
        env[args[0]][args[1]] = args[2]
    elif kind == "remove":
        env[args[0]].pop(args[1], None)
    elif kind == "mixin":
        env[args[0]].update(env[args[1]])
    elif kind == "merge":
        env[args[0]] = {**env[args[1]], **env[args[2]]}
    elif kind == "fill":
        for key, value in list(env[args[1]].items()):
            env[args[0]].setdefault(key, value)
    elif kind == "bump":
        if args[1] in env[args[0]]:
            env[args[0]][args[1]] += 1
    else:
        env[args[0]].clear()


@settings(max_examples=300, deadline=None)
@given(st.lists(map_op, min_size=1, max_size=12))
def test_map_semantics_match_python_model(ops):
    src = (
        "let m = #{a: 1}; let n = #{b: 2};\n"
        + "\n".join(render_map_op(op) for op in ops)
        + "\n[m, n, m.keys(), n.values()]"
    )
    env = {"m": {"a": 1}, "n": {"b": 2}}
    for op in ops:
        model_map_op(op, env)
    got = Engine(max_operations=100_000).eval(src)
    want = [env["m"], env["n"], sorted(env["m"]), [env["n"][k] for k in sorted(env["n"])]]
    assert got == want, f"{src}\ngave {got!r}\nwant {want!r}"


UNICODE_TEXT = st.text(alphabet="aZ é朝\U0001f600-", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(UNICODE_TEXT, st.data())
def test_string_positions_count_chars_not_bytes(text, data):
    size = len(text)
    i = data.draw(st.integers(min_value=0, max_value=size - 1), label="i")
    j = data.draw(st.integers(min_value=i, max_value=size), label="j")
    k = data.draw(st.integers(min_value=-size, max_value=-1), label="k")
    src = (
        f'let s = "{text}"; '
        f"[s.len(), s[{i}], s[{k}], s[{i}..{j}], s.sub_string({i}, {j - i}), s.bytes, "
        f"s.index_of(s[{i}]), s.to_chars().len()]"
    )
    got = Engine().eval(src)
    want = [
        size,
        text[i],
        text[k],
        text[i:j],
        text[i:j],
        len(text.encode()),
        text.index(text[i]),
        size,
    ]
    assert got == want, f"{src} gave {got!r}"
    assert type(got[1]) is Char and type(got[3]) is str


# ---- FLOAT arithmetic is plain IEEE-754, with INT promoted when mixed ----


def ieee_div(a: float, b: float) -> float:
    if b != 0:
        return a / b
    if a != a or a == 0:
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


FLOAT_OPS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": ieee_div,
}
float_leaf = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 0.1, 3.0]),
    st.integers(min_value=-1000, max_value=1000),
)
float_tree = st.recursive(
    float_leaf, lambda sub: st.tuples(st.sampled_from(sorted(FLOAT_OPS)), sub, sub), max_leaves=8
)


def render_float(node: Any) -> str:
    if isinstance(node, tuple):
        return f"({render_float(node[1])} {node[0]} {render_float(node[2])})"
    if isinstance(node, int):
        return f"({node})" if node < 0 else str(node)
    text = repr(node)
    if "inf" in text or "nan" in text:
        raise AssertionError("leaves are finite")
    if "e" not in text and "." not in text:
        text += ".0"
    return f"({text})" if text.startswith("-") else text


def model_float(node: Any) -> int | float:
    """Evaluate with Rhai's typing: INT op INT stays INT (checked), anything with FLOAT is f64."""
    if not isinstance(node, tuple):
        return node
    a, b = model_float(node[1]), model_float(node[2])
    if isinstance(a, int) and isinstance(b, int):
        return OPS[node[0]][1](a, b)
    return FLOAT_OPS[node[0]](float(a), float(b))


@settings(max_examples=300, deadline=None)
@given(float_tree)
def test_float_arithmetic_is_ieee(node):
    src = render_float(node)
    try:
        expected = model_float(node)
    except Overflow:
        try:
            Engine().eval(src)
        except RhaiError as err:
            assert err.kind == "ErrorArithmetic", f"{src}: {err!r}"
            return
        raise AssertionError(f"{src}: expected ErrorArithmetic") from None
    got = Engine().eval(src)
    assert type(got) is type(expected), f"{src} gave {got!r}, expected {expected!r}"
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got), f"{src} gave {got!r}"
    else:
        assert got == expected, f"{src} gave {got!r}, expected {expected!r}"
