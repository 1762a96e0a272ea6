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
