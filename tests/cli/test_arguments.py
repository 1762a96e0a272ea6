"""Usage and configuration errors exit 2 with a message that says what to do next."""

import pytest

from tests.cli.helpers import isolated_env, run


@pytest.fixture
def env(tmp_path):
    return isolated_env(tmp_path, ZOS_URL="http://127.0.0.1:9")


def _script(tmp_path, text='log("hi");\n'):
    path = tmp_path / "hello.rhai"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["deploy", "x.rhai"], "one of the arguments --node --farm is required"),
        (["deploy", "x.rhai", "--node", "1", "--farm", "2"], "not allowed with argument"),
        (["deploy", "x.rhai", "--node", "abc"], "'abc' is not a number"),
        (["deploy", "x.rhai", "--node", "0"], "must be 1 or more"),
        (["deploy", "x.rhai", "--node", "1", "--mru", "lots"], "not a size"),
        (["deploy", "x.rhai", "--node", "1", "--cru", "-1"], "must be 0 or more"),
        (["deploy", "x.rhai", "--node", "1", "--timeout", "0"], "more than 0 seconds"),
        (["status", "nope"], "'nope' is not a number"),
        (["logs"], "required: DEPLOYMENT"),
        (["nodes", "--status", "sleepy"], "invalid choice"),
        (["key"], "required: SUBCOMMAND"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_argument_errors_exit_2(env, capsys, argv, message):
    assert run(env, *argv).code == 2
    assert message in capsys.readouterr().err


def test_help_lists_every_command_and_the_configuration(capsys):
    assert run({}, "--help").code == 0
    text = capsys.readouterr().out
    for command in ("login", "keygen", "key", "deploy", "status", "logs", "cancel", "nodes"):
        assert f"    {command}" in text
    for name in ("ZOS_URL", "ZOS_TOKEN", "ZOS_KEY", "ZOS_CONFIG", "config.toml", "exit codes"):
        assert name in text


@pytest.mark.parametrize(
    "command",
    [
        ["deploy"],
        ["status"],
        ["logs"],
        ["cancel"],
        ["nodes"],
        ["validate"],
        ["keygen"],
        ["login"],
        ["key", "register"],
        ["key", "list"],
        ["key", "revoke"],
    ],
)
def test_every_subcommand_has_help(capsys, command):
    assert run({}, *command, "--help").code == 0
    assert "usage: zos" in capsys.readouterr().out


def test_deploy_without_token_says_how_to_get_one(env, tmp_path):
    result = run(env, "deploy", _script(tmp_path), "--node", "1")
    assert result.code == 2
    assert "no API token" in result.err
    assert "zos login" in result.err and "ZOS_TOKEN" in result.err


def test_deploy_checks_the_script_before_anything_else(env, tmp_path):
    result = run(env, "deploy", str(tmp_path / "missing.rhai"), "--node", "1")
    assert result.code == 2
    assert "does not exist" in result.err


def test_deploy_without_key_says_how_to_make_one(env, tmp_path):
    env["ZOS_TOKEN"] = "t"
    result = run(env, "deploy", _script(tmp_path), "--node", "1")
    assert result.code == 2
    assert "zos keygen" in result.err and "zos key register" in result.err


def test_unreachable_control_plane_names_the_url(env, tmp_path):
    env["ZOS_TOKEN"] = "t"
    assert run(env, "keygen").code == 0
    result = run(env, "deploy", _script(tmp_path), "--node", "1")
    assert result.code == 2
    assert "cannot connect to http://127.0.0.1:9" in result.err
    assert "ZOS_URL" in result.err


def test_bad_url_in_environment(tmp_path):
    result = run(isolated_env(tmp_path, ZOS_URL="127.0.0.1:8000"), "nodes")
    assert result.code == 2
    assert "must start with http://" in result.err
