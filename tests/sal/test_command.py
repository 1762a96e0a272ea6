import resource
import subprocess
import sys

import pytest

from sal.command import CommandFailed, run, run_json


def test_output_is_returned():
    assert run(["echo", "hi"]).stdout == "hi\n"


def test_a_failure_says_what_ran_and_what_it_printed():
    with pytest.raises(CommandFailed) as err:
        run(["sh", "-c", "echo no such pool >&2; exit 3"])
    assert (
        str(err.value)
        == "`sh -c 'echo no such pool >&2; exit 3'` exited with status 3: no such pool"
    )


def test_a_hanging_tool_times_out():
    with pytest.raises(CommandFailed, match=r"timed out after 0\.2s"):
        run(["sleep", "5"], timeout=0.2)


def test_a_missing_tool_is_named():
    with pytest.raises(CommandFailed, match="is zos-no-such-tool installed"):
        run(["zos-no-such-tool"])


def test_json_output_is_parsed_and_garbage_refused():
    assert run_json(["echo", '[{"ifname": "lo"}]']) == [{"ifname": "lo"}]
    with pytest.raises(CommandFailed, match="invalid JSON"):
        run_json(["echo", "{nope"])


def test_a_tool_does_not_inherit_a_lowered_soft_memory_limit():
    # A process under a runner's soft RLIMIT_AS (256 MiB) runs a tool through sal.command: the
    # tool reads its own limit from /proc, and must see the hard limit, not 256 MiB.
    child = """
import resource
from sal.command import run
_, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (256 * 2**20, hard))
limits = run(["cat", "/proc/self/limits"]).stdout
mine = open("/proc/self/limits").read()
line = lambda text: next(x for x in text.splitlines() if x.startswith("Max address space"))
print(line(mine).split()[3], line(limits).split()[3])
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    mine, tool = out.stdout.split()
    assert mine == str(256 * 2**20)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    assert tool == ("unlimited" if hard == resource.RLIM_INFINITY else str(hard))
