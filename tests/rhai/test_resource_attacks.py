"""Regression tests for resource attacks seen against a running grid.

Each script below once escaped the engine's limits: it grew a process to gigabytes while every
single value stayed under its own size limit, or it did unbounded work inside what the engine
counted as one operation. Attacks run in a child process with an address-space limit and a
timeout, so a regression fails its test instead of hanging or exhausting the machine; work is
judged by the operation counter and the memory accounting, never by elapsed time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rhai import Engine, RhaiError

MIB = 1024 * 1024

#: The child reports how the script ended and how many operations the engine counted.
PROBE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]), int(sys.argv[3])))
from rhai import Engine, RhaiError
engine = Engine(**json.loads(sys.argv[2]))
out = {}
try:
    out["value"] = repr(engine.eval(sys.argv[1]))[:200]
except RhaiError as err:
    root = err.root()
    out.update(kind=err.kind, root=root.kind, what=root.details.get("what"),
               line=err.line, column=err.column, message_len=len(str(err)),
               message=str(err)[:300])
except BaseException as exc:
    out.update(kind="python:" + type(exc).__name__, message=str(exc)[:300])
out["ops"] = next(engine._rt.ops)
print(json.dumps(out))
"""


def attack(src: str, *, address_space: int = 1024 * MIB, **limits: Any) -> dict[str, Any]:
    """Run `src` in a child process limited to `address_space` bytes and 120 s."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, src, json.dumps(limits), str(address_space)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-800:])
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- A1: error messages of nested `eval` ----


def test_self_evaluating_eval_stops_at_call_levels_with_a_small_message():
    # 30 bytes of script once grew a process to ~4.9 GB of nested error messages
    out = attack('let s = "eval(s)"; eval(s)', address_space=512 * MIB)
    assert out["root"] == "ErrorStackOverflow", out
    assert out["message_len"] < 2_000, out


def test_eval_counts_as_a_call_level():
    engine = Engine(max_call_levels=5)
    assert engine.eval('eval("eval(\\"eval(\\\\\\"1\\\\\\")\\")")') == 1
    with pytest.raises(RhaiError) as info:
        engine.eval('let s = "eval(s)"; eval(s)')
    assert info.value.root().kind == "ErrorStackOverflow"


def test_wrapped_messages_stay_bounded_and_keep_the_innermost_error():
    src = "fn f(n) { if n == 0 { throw \"x\".pad(5000, 'y') } f(n - 1) }\nf(40)"
    with pytest.raises(RhaiError) as info:
        Engine().eval(src)
    err = info.value
    assert err.root().kind == "ErrorRuntime"
    assert len(str(err)) < 1_000
    # the innermost error, with its position, is still named at the end of the message
    assert str(err).rstrip(".").endswith("...") or "line 1, column" in str(err)
    assert f"line {err.root().line}, column {err.root().column}" in str(err)
