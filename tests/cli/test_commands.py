"""The commands against a stand-in control plane: requests sent, output shown, exit codes."""

import base64
import json
import stat

import pytest

from contracts.payload_types import DEPLOYMENT_TYPE, KEY_PROOF_TYPE
from signing.dsse import canonical_json, verify_envelope
from signing.keys import parse_public_key
from tests.cli.fake_plane import (
    TOKEN,
    FakePlane,
    deployment,
    event,
    scripted_events,
)
from tests.cli.helpers import isolated_env, run
from zoscli.keys import load_signing_key

SCRIPT = 'log("hello");\nlet info = node_info();\n#{ greeting: "hi" }\n'


@pytest.fixture
def plane():
    fake = FakePlane()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def env(tmp_path, plane):
    env = isolated_env(tmp_path, ZOS_URL=plane.url, ZOS_TOKEN=TOKEN)
    assert run(env, "keygen").code == 0
    return env


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "hello.rhai"
    path.write_text(SCRIPT)
    return str(path)


def _submitted(plane) -> dict:
    return next(r for r in plane.requests if r["path"] == "/api/v1/deployments")


def test_login_saves_token_privately(tmp_path, plane):
    env = isolated_env(tmp_path, ZOS_URL=plane.url)
    plane.reply("POST", "/api/v1/auth/token", 200, {"token": TOKEN})
    result = run(env, "login", "--username", "alice", "--password-stdin", stdin="secret\n")
    assert result.code == 0, result.err
    config = tmp_path / ".config/zos/config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert f'token = "{TOKEN}"' in config.read_text()
    assert plane.requests[-1]["body"] == {"username": "alice", "password": "secret"}


def test_login_creates_the_file_zos_config_names(tmp_path, plane):
    target = tmp_path / "elsewhere/zos.toml"
    env = isolated_env(tmp_path, ZOS_CONFIG=str(target))
    plane.reply("POST", "/api/v1/auth/token", 200, {"token": TOKEN})
    result = run(env, "--url", plane.url, "login", "-u", "alice", "--password-stdin", stdin="pw")
    assert result.code == 0, result.err
    assert target.read_text() == f'token = "{TOKEN}"\nurl = "{plane.url}"\n'
    plane.reply("GET", "/api/v1/deployments", 200, [])
    assert run(env, "status").code == 0  # URL and token now come from that file
    assert plane.requests[-1]["auth"] == f"Token {TOKEN}"
    assert run({**env, "ZOS_CONFIG": str(tmp_path / "nope.toml")}, "status").code == 2


def test_login_with_wrong_password_is_explained(tmp_path, plane):
    env = isolated_env(tmp_path, ZOS_URL=plane.url)
    plane.reply(
        "POST",
        "/api/v1/auth/token",
        400,
        {
            "error": "invalid",
            "message": "non_field_errors: Unable to log in with provided credentials.",
            "fields": {"non_field_errors": ["Unable to log in with provided credentials."]},
        },
    )
    result = run(env, "login", "-u", "alice", "--password-stdin", stdin="wrong\n")
    assert result.code == 1
    assert "Unable to log in" in result.err
    assert not (tmp_path / ".config/zos/config.toml").exists()


def test_key_register_uploads_the_public_key_with_proof_of_possession(env, plane, tmp_path):
    challenge = {"user": 7, "challenge": "ab" * 32, "expires_at": 0, "payload_type": "x"}
    plane.reply("POST", "/api/v1/keys/challenge", 201, challenge)
    plane.reply("POST", "/api/v1/keys", 201, {"id": 4, "name": "default"})
    result = run(env, "key", "register")
    assert result.code == 0, result.err
    sent = plane.requests[-1]
    public = (tmp_path / ".config/zos/keys/default.pub").read_text().strip()
    proof = sent["body"].pop("proof")
    assert sent["body"] == {"name": "default", "public_key": public}
    assert sent["auth"] == f"Token {TOKEN}"
    payload, _ = verify_envelope(proof, KEY_PROOF_TYPE, [parse_public_key(public)])
    assert payload == canonical_json(
        {**json.loads(payload), "user": 7, "challenge": "ab" * 32, "public_key": public}
    )
    assert "registered key 'default' (id 4" in result.out


def test_key_register_conflict_shows_code_and_hint(env, plane):
    plane.reply("POST", "/api/v1/keys/challenge", 201, {"user": 7, "challenge": "ab" * 32})
    plane.reply(
        "POST",
        "/api/v1/keys",
        409,
        {"error": "key_name_taken", "message": "you already have a key named 'default'"},
    )
    result = run(env, "key", "register")
    assert result.code == 1
    assert "key_name_taken (HTTP 409): you already have a key named 'default'" in result.err
    assert "pick another --name" in result.err


def test_key_list_marks_local_keys(env, plane, tmp_path):
    public = (tmp_path / ".config/zos/keys/default.pub").read_text().strip()
    plane.reply(
        "GET",
        "/api/v1/keys",
        200,
        {
            "count": 2,
            "next": None,
            "previous": None,
            "results": [
                {"id": 1, "name": "default", "public_key": public, "revoked": False},
                {"id": 2, "name": "old", "public_key": "ab" * 32, "revoked": True},
            ],
        },
    )
    result = run(env, "key", "list")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "KEY", "ID", "STATE", "LOCAL", "FILE", "CREATED"]
    assert "active" in lines[1] and lines[1].split()[4] == "default"
    assert "revoked" in lines[2]


def test_key_revoke(env, plane):
    plane.reply("POST", "/api/v1/keys/4/revoke", 200, {"id": 4, "name": "old", "revoked": True})
    result = run(env, "key", "revoke", "4")
    assert result.code == 0, result.err
    assert "revoked key 'old' (id 4)" in result.out


def test_wrong_token_is_explained(tmp_path, plane):
    env = isolated_env(tmp_path, ZOS_URL=plane.url, ZOS_TOKEN="wrong")
    plane.reply("GET", "/api/v1/deployments", 200, [])
    result = run(env, "status")
    assert result.code == 1
    assert "authentication_failed (HTTP 401)" in result.err
    assert "zos login" in result.err


def test_deploy_signs_submits_follows_and_prints_the_result(env, plane, script, tmp_path):
    plane.reply("POST", "/api/v1/deployments", 201, deployment())
    plane.route(
        "GET",
        "/api/v1/deployments/7/events",
        scripted_events(
            [
                [event(1, "queued", log="queued for node 1")],
                [event(2, "dispatched", second=1), event(3, "accepted", second=1)],
                [event(4, "running", second=2), event(5, "running", log="hello", second=2)],
                [event(6, "succeeded", second=3, result={"greeting": "hi"})],
            ],
            "succeeded",
        ),
    )
    plane.reply(
        "GET", "/api/v1/deployments/7", 200, deployment(status="succeeded", result={"greeting": 1})
    )
    result = run(
        env,
        "deploy",
        script,
        "--node",
        "1",
        "--cru",
        "1",
        "--mru",
        "1G",
        "--no-live",
        "--timeout",
        "20",
    )
    assert result.code == 0, result.err
    out = result.out
    assert "deployment 7 'hello' accepted" in out
    for expected in ("queued", "dispatched", "accepted", "running", "| hello", "succeeded"):
        assert expected in out
    assert out.index("queued") < out.index("dispatched") < out.index("| hello")
    assert "[   3.0s] succeeded" in out
    assert '"greeting": 1' in out

    envelope = _submitted(plane)["body"]["envelope"]
    _, key = load_signing_key(tmp_path / ".config/zos/keys", "default")
    payload, _ = verify_envelope(envelope, DEPLOYMENT_TYPE, [key.verify_key])
    data = json.loads(payload)
    assert data["script"] == SCRIPT
    assert data["target"] == {"node": 1}
    assert data["name"] == "hello"
    assert data["resources"] == {"cru": 1, "mru": 2**30}
    assert 0 < data["expires_at"] - data["issued_at"] <= 3600


@pytest.mark.parametrize(("final", "code"), [("failed", 1), ("cancelled", 3)])
def test_deploy_exit_code_follows_the_outcome(env, plane, script, final, code):
    plane.reply("POST", "/api/v1/deployments", 201, deployment())
    plane.route(
        "GET",
        "/api/v1/deployments/7/events",
        scripted_events([[event(1, "queued")], [event(2, final, error="boom")]], final),
    )
    plane.reply("GET", "/api/v1/deployments/7", 200, deployment(status=final, error="boom"))
    result = run(env, "deploy", script, "--farm", "2", "--no-live")
    assert result.code == code, result.err
    assert f"deployment 7 {final}" in result.out
    assert "error: boom" in result.out
    assert json.loads(base64.b64decode(_submitted(plane)["body"]["envelope"]["payload"]))[
        "target"
    ] == {"farm": 2}


def test_deploy_times_out_with_exit_4_and_says_the_job_goes_on(env, plane, script):
    plane.reply("POST", "/api/v1/deployments", 201, deployment())
    plane.reply(
        "GET",
        "/api/v1/deployments/7/events",
        200,
        {"status": "running", "results": [], "next": 0},
    )
    result = run(env, "deploy", script, "--node", "1", "--no-live", "--timeout", "0.6")
    assert result.code == 4
    assert "still running after 0.6s" in result.err
    assert "zos logs 7 --follow" in result.err and "zos cancel 7" in result.err


def test_deploy_no_follow_returns_at_once(env, plane, script):
    plane.reply("POST", "/api/v1/deployments", 201, deployment())
    result = run(env, "deploy", script, "--node", "1", "--no-follow", "--name", "custom-1")
    assert result.code == 0
    assert "zos logs 7 --follow" in result.out
    assert not any(r["path"].endswith("/events") for r in plane.requests)
    payload = base64.b64decode(_submitted(plane)["body"]["envelope"]["payload"])
    assert json.loads(payload)["name"] == "custom-1"


def test_script_parse_error_points_into_the_file(env, plane, script):
    plane.reply(
        "POST",
        "/api/v1/deployments",
        400,
        {
            "error": "script_parse",
            "message": "line 2, column 12: expecting ';'",
            "line": 2,
            "column": 12,
            "kind": "MissingToken",
        },
    )
    result = run(env, "deploy", script, "--node", "1")
    assert result.code == 1
    assert f"{script}:2:12: syntax error (MissingToken): expecting ';'" in result.err
    assert "  let info = node_info();\n             ^" in result.err
    assert "zos validate" in result.err


def test_payload_invalid_lists_the_fields(env, plane, script):
    plane.reply(
        "POST",
        "/api/v1/deployments",
        400,
        {
            "error": "payload_invalid",
            "message": "the signed payload has invalid fields",
            "fields": {"target": {"node": ["Ensure this value is greater than 0."]}},
        },
    )
    result = run(env, "deploy", script, "--node", "1")
    assert result.code == 1
    assert "target.node: Ensure this value is greater than 0." in result.err


def test_signature_refused_says_to_register_the_key(env, plane, script):
    plane.reply(
        "POST",
        "/api/v1/deployments",
        403,
        {"error": "signature_invalid", "message": "no signature verifies"},
    )
    result = run(env, "deploy", script, "--node", "1")
    assert result.code == 1
    assert "zos key register" in result.err


def test_validate_reports_functions_or_unknown_ones(env, plane, script):
    plane.reply("POST", "/api/v1/scripts/validate", 200, {"ok": True, "functions": ["log"]})
    result = run(env, "validate", script)
    assert result.code == 0
    assert "ok; calls log" in result.out
    assert plane.requests[-1]["body"] == {"script": SCRIPT}
    plane.reply(
        "POST",
        "/api/v1/scripts/validate",
        400,
        {"error": "unknown_function", "message": "calls rm_rf", "functions": ["rm_rf"]},
    )
    result = run(env, "validate", script)
    assert result.code == 1
    assert "functions: rm_rf" in result.err


def test_status_table_and_detail(env, plane):
    plane.reply(
        "GET",
        "/api/v1/deployments",
        200,
        {"count": 1, "next": None, "previous": None, "results": [deployment(status="running")]},
    )
    result = run(env, "status")
    assert result.code == 0
    header, row = result.out.splitlines()
    assert header.split() == ["ID", "NAME", "STATUS", "TARGET", "NODE", "ATTEMPT", "CREATED"]
    assert row.split()[:3] == ["7", "hello", "running"]
    plane.reply("GET", "/api/v1/deployments/7", 200, deployment(status="succeeded", result=[1, 2]))
    detail = run(env, "status", "7")
    assert "status         succeeded" in detail.out
    assert "attempt        1 of 3" in detail.out
    assert "result:" in detail.out
    as_json = run(env, "status", "7", "--json")
    assert json.loads(as_json.out)["job"]["result"] == [1, 2]


def test_status_pages_through_long_lists(env, plane):
    first = {
        "count": 2,
        "next": f"{plane.url}/api/v1/deployments/page2",
        "previous": None,
        "results": [deployment(1)],
    }
    second = {"count": 2, "next": None, "previous": None, "results": [deployment(2)]}
    plane.reply("GET", "/api/v1/deployments", 200, first)
    plane.reply("GET", "/api/v1/deployments/page2", 200, second)
    result = run(env, "status")
    assert [line.split()[0] for line in result.out.splitlines()[1:]] == ["1", "2"]


def test_logs_prints_every_event_and_notes_running_jobs(env, plane):
    plane.reply("GET", "/api/v1/deployments/7", 200, deployment(status="running"))
    plane.route(
        "GET",
        "/api/v1/deployments/7/events",
        scripted_events(
            [[event(1, "queued")], [event(2, "running"), event(3, "running", log="line")]],
            "running",
        ),
    )
    result = run(env, "logs", "7")
    assert result.code == 0
    assert "| line" in result.out
    assert "zos logs 7 --follow" in result.out


def test_cancel_and_already_finished(env, plane):
    plane.reply("POST", "/api/v1/deployments/7/cancel", 200, deployment(status="cancelled"))
    result = run(env, "cancel", "7")
    assert result.code == 0
    assert "deployment 7 'hello' is cancelled" in result.out
    plane.reply(
        "POST",
        "/api/v1/deployments/7/cancel",
        409,
        {"error": "already_finished", "message": "the deployment already ended succeeded"},
    )
    result = run(env, "cancel", "7")
    assert result.code == 1
    assert "already ended succeeded" in result.err


def test_a_cancel_the_node_has_not_confirmed_says_so(env, plane):
    detail = "cancel requested; the node will stop the job when it hears of it"
    cancelling = {**deployment(status="cancelling"), "detail": detail}
    plane.reply("POST", "/api/v1/deployments/7/cancel", 200, cancelling)
    result = run(env, "cancel", "7")
    assert result.code == 0
    assert f"deployment 7 'hello' is cancelling ({detail})" in result.out
    plane.reply("GET", "/api/v1/deployments/7", 200, cancelling)
    assert f"status         cancelling ({detail})" in run(env, "status", "7").out


def test_nodes_filters_and_shows_free_capacity(tmp_path, plane):
    env = isolated_env(tmp_path, ZOS_URL=plane.url)
    node = {
        "id": 3,
        "farm": 1,
        "status": "online",
        "capacity": {"cru": 4, "mru": 8 * 2**30, "sru": 100 * 2**30, "hru": 0},
        "used": {"cru": 1, "mru": 2**30, "sru": 0, "hru": 0},
        "last_seen": None,
    }
    plane.reply("GET", "/api/v1/nodes", 200, {"count": 1, "next": None, "results": [node]})
    result = run(env, "nodes", "--farm", "1", "--status", "online", "--status", "pending")
    assert result.code == 0, result.err
    assert plane.requests[-1]["query"] == {"farm": ["1"], "status": ["online", "pending"]}
    assert plane.requests[-1]["auth"] is None
    row = result.out.splitlines()[1]
    assert "3/4" in row and "7.0 GiB" in row and "100.0 GiB" in row


def test_follow_without_a_websocket_feed_polls(env, plane, script):
    """The stand-in has no /ws/deployments/: following falls back to polling and still ends."""
    plane.reply("POST", "/api/v1/deployments", 201, deployment())
    plane.route(
        "GET",
        "/api/v1/deployments/7/events",
        scripted_events([[event(1, "queued")], [], [event(2, "succeeded")]], "succeeded"),
    )
    plane.reply("GET", "/api/v1/deployments/7", 200, deployment(status="succeeded"))
    result = run(env, "deploy", script, "--node", "1", "--timeout", "10")
    assert result.code == 0, result.err
    assert "deployment 7 succeeded" in result.out
