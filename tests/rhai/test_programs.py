"""Whole scripts of the kind ZOS users write: validation with try/catch, text aggregation,
memoised recursion through a captured closure, host functions in a pipeline."""

from rhai import Engine, Scope

from .conftest import assert_value, same

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
