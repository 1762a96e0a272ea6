"""Whole scripts of the kind ZOS users write: validation with try/catch, text aggregation,
memoised recursion through a captured closure, host functions in a pipeline."""

import pytest

from rhai import Engine, Scope

from .conftest import assert_error, assert_value, case, same

VALIDATION = """
fn validate(vm) {
    if vm.cpu < 1 { throw `bad cpu for ${vm.name}`; }
    if !("memory" in vm) { vm.memory = 1024; }
    vm
}

let vms = [#{name: "a", cpu: 2}, #{name: "b", cpu: 0}, #{name: "c", cpu: 1, memory: 512}];
let ok = [];
let errors = [];
for vm in vms {
    try { ok.push(validate(vm)); } catch (e) { errors.push(e); }
}
#{
    ok: ok.map(|v| `${v.name}:${v.memory}`),
    errors: errors,
    total: ok.reduce(|s, v| s + v.cpu, 0),
    untouched: vms[0].memory ?? "none",
}
"""


def test_validation_pipeline():
    assert_value(
        VALIDATION,
        {"ok": ["a:1024", "c:512"], "errors": ["bad cpu for b"], "total": 3, "untouched": "none"},
    )


AGGREGATION = """
let text = "web 3\\ndb 1\\nweb 2\\ncache 5\\n";
let totals = #{};
for line in text.split("\\n") {
    if line.is_empty() { continue; }
    let parts = line.split(" ");
    let name = parts[0];
    totals[name] = (totals[name] ?? 0) + parse_int(parts[1]);
}
let report = "";
for key in totals.keys() { report += `${key}=${totals[key]};`; }
[totals, report]
"""


def test_text_aggregation():
    assert_value(
        AGGREGATION,
        [{"web": 5, "db": 1, "cache": 5}, "cache=5;db=1;web=5;"],
    )


MEMO = """
let memo = #{};
let calls = 0;
let fib = 0;
fib = |n| {
    calls += 1;
    if n < 2 { return n; }
    let key = `${n}`;
    if key in memo { return memo[key]; }
    let v = fib.call(n - 1) + fib.call(n - 2);
    memo[key] = v;
    v
};
[fib.call(40), memo.len(), calls]
"""


def test_memoised_recursion_through_a_captured_closure():
    assert_value(MEMO, [102334155, 39, 79])


STATE_MACHINE = """
const TRANSITIONS = #{
    idle: #{start: "running"},
    running: #{pause: "paused", stop: "idle"},
    paused: #{resume: "running", stop: "idle"},
};
fn step(state, event) {
    let table = global::TRANSITIONS[state];
    if event in table { table[event] } else { throw `bad event ${event} in ${state}` }
}
let state = "idle";
let log = [];
for event in ["start", "pause", "resume", "jump", "stop"] {
    try {
        state = step(state, event);
        log += state;
    } catch (err) {
        log += `error: ${err}`;
    }
}
log
"""


def test_state_machine_with_global_constant_table():
    assert_value(
        STATE_MACHINE,
        ["running", "paused", "running", "error: bad event jump in running", "idle"],
    )


def test_host_functions_in_a_pipeline():
    disks = {"sda": 500, "sdb": 2000, "nvme0": 1000}
    engine = Engine(max_operations=100_000)
    engine.register_fn("disks", lambda: sorted(disks))
    engine.register_fn("disk_size", lambda name: disks[name])
    script = """
        let big = disks().filter(|d| disk_size(d) >= 1000);
        let plan = big.map(|d| #{
            name: d,
            size: disk_size(d),
            fs: if d.starts_with("nvme") { "xfs" } else { "btrfs" },
        });
        #{plan: plan, total: plan.reduce(|s, p| s + p.size, 0)}
    """
    assert same(
        engine.eval(script),
        {
            "plan": [
                {"name": "nvme0", "size": 1000, "fs": "xfs"},
                {"name": "sdb", "size": 2000, "fs": "btrfs"},
            ],
            "total": 3000,
        },
    )


def test_script_updates_host_scope_between_runs():
    engine = Engine()
    scope = Scope()
    scope.push("inventory", {"web": 1})
    for _ in range(3):
        engine.run("inventory.web += 1; inventory.db = (inventory.db ?? 0) + 2;", scope)
    assert same(scope.get("inventory"), {"web": 4, "db": 6})


TYPE_FLOW = [
    case("let x = 1; for i in 0..3 { x = x * 2.5; } x", 15.625, id="int-becomes-float-in-loop"),
    case("fn f(a) { a * 2 } [f(1), f(1.5), f(3)]", [2, 3.0, 6], id="function-called-with-both"),
    case('let x = 0; for i in 0..3 { if i == 1 { x = "s"; } else { x += 1; } } x', "s1"),
    case("let t = 0; for i in 0..5 { t += i; if i == 2 { t = t * 1.0; } } t", 10.0),
    case("let x = 9223372036854775807; x += 0.5; x", 9.223372036854776e18, id="max-plus-half"),
    case("fn g(n) { if n == 0 { 0.5 } else { n + g(n - 1) } } g(3)", 6.5),
    case("let a = [1, 2.5, 3]; let s = 0; for v in a { s += v; } s", 6.5),
    case("let s = 0; for i in 0..4 { s = s + i / 2; } s", 2),
    case("let s = 0; for i in 0..4 { s = s + i / 2.0; } s", 3.0),
    case("let x = 5; x /= 2; x *= 1.0; x", 2.0),
    case("let x = 7; let y = x; y -= 0.5; [x, y]", [7, 6.5]),
    case("fn h(a, b) { a % b } [h(7, 2), h(7.5, 2), h(-7, 2)]", [1, 1.5, -1]),
    case("let x = 3; x = x ** 2; x = x ** 0.5; x", 3.0),
    case("let c = 0; for i in 9223372036854775805..9223372036854775807 { c += 1; } c", 2),
    case(
        "let s = 0; for i in 9223372036854775805..9223372036854775807 { s = i + 1; } s",
        9223372036854775807,
        id="loop-variable-plus-one-at-max",
    ),
]


@pytest.mark.parametrize(("src", "expected"), TYPE_FLOW)
def test_values_change_type_as_rhai_says(src, expected):
    assert_value(src, expected)


def test_loop_variable_overflow_is_still_checked():
    script = "let s = 0;\nfor i in 9223372036854775805..9223372036854775807 { s = i + 2; } s"
    assert_error(script, "ErrorArithmetic", line=2)
