"""The progress hook (`Engine(on_progress=..., progress_every=N)`, Rhai's `Engine::on_progress`):
called every N operations with the count so far; a value or an exception ends the script with
ErrorTerminated, which the script cannot catch; the operation limit stays exactly where it was."""

import pytest

from rhai import Engine, RhaiError

LOOPS = [
    pytest.param("loop {}", id="loop"),
    pytest.param("fn f() { loop {} } f()", id="loop-in-function"),
    pytest.param("let f = || { loop {} }; f.call()", id="loop-in-closure"),
    pytest.param('eval("loop {}")', id="loop-in-eval"),
    pytest.param("try { loop {} } catch (e) { 42 }", id="loop-in-try"),
]


def outcome(engine: Engine, src: str) -> tuple:
    try:
        return ("value", engine.eval(src))
    except RhaiError as exc:
        return (exc.root().kind, exc.root().line, exc.root().column)


def test_the_hook_sees_the_operation_count_every_n_operations():
    seen: list[int] = []
    engine = Engine(max_operations=10**9, on_progress=seen.append, progress_every=1000)
    engine.eval("let x = 0; for i in 0..5000 { x += i; } x")
    assert seen
    # operations are charged a loop iteration (a few) at a time: the hook runs once per
    # 1000 operations, at the first charge that reaches the next multiple
    assert [n // 1000 for n in seen] == list(range(1, len(seen) + 1))


@pytest.mark.parametrize("src", LOOPS)
def test_a_value_from_the_hook_terminates_any_loop(src):
    engine = Engine(max_operations=10**12, on_progress=lambda n: "stop" if n >= 5000 else None)
    with pytest.raises(RhaiError) as info:
        engine.eval(src)
    root = info.value.root()
    assert root.kind == "ErrorTerminated"
    assert root.details["token"] == "stop"
    assert root.line is not None


@pytest.mark.parametrize("src", LOOPS)
def test_an_exception_from_the_hook_terminates_any_loop(src):
    def hook(_ops: int) -> None:
        raise TimeoutError("out of time")

    with pytest.raises(RhaiError) as info:
        Engine(max_operations=10**12, on_progress=hook, progress_every=100).eval(src)
    assert info.value.root().kind == "ErrorTerminated"
    assert "out of time" in str(info.value.root())


def test_a_terminated_error_raised_by_the_hook_keeps_its_message_and_gets_a_position():
    def hook(_ops: int) -> None:
        raise RhaiError("ErrorTerminated", "Script terminated: the job was cancelled")

    with pytest.raises(RhaiError) as info:
        Engine(max_operations=10**12, on_progress=hook).eval("let n = 0;\nloop { n += 1; }")
    assert info.value.kind == "ErrorTerminated"
    assert info.value.message == "Script terminated: the job was cancelled"
    assert info.value.line == 2


@pytest.mark.parametrize("every", [1, 3, 7, 1000])
@pytest.mark.parametrize("limit", [1, 2, 5, 50, 500])
def test_a_hook_moves_no_limit(every: int, limit: int):
    scripts = [f"let x = 0; for i in 0..{k} {{ x += 1 }} x" for k in range(0, 300, 7)]
    scripts.append("let a = []; a.pad(400, 1); let b = a; let c = b; c.len()")  # deep copies
    for src in scripts:
        plain = Engine(max_operations=limit)
        hooked = Engine(max_operations=limit, on_progress=lambda _n: None, progress_every=every)
        assert outcome(plain, src) == outcome(hooked, src), src


def test_a_hook_needs_an_operation_limit():
    with pytest.raises(ValueError, match="max_operations"):
        Engine(max_operations=0, on_progress=lambda _n: None).eval("1")
