"""Node logs without a shell: a real agent sends its log tail over its link, secrets redacted."""

import json
import logging
import re

import pytest
import requests

from nodeagent.config import STATE_FILE
from nodeagent.jobstore import connect
from nodeagent.logring import LOG_STREAM, RingHandler
from tests.integration.conftest import bootstrap, wait_for

pytestmark = pytest.mark.integration

PLANTED_PASSWORD = "hunter2-planted-pw"


def signed_in(plane, username: str, password: str) -> requests.Session:
    """A browser-like session signed in through the dashboard's sign-in form."""
    session = requests.Session()
    # Generous: a sign-in hashes the password (PBKDF2, CPU-bound) and CI's two cores are busy;
    # 5 s ran out under load. A server that never answers still fails the test.
    page = session.get(f"{plane.url}/sign-in", timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    reply = session.post(
        f"{plane.url}/sign-in",
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{plane.url}/sign-in"},
        timeout=30,
    )
    assert reply.ok and session.cookies.get("sessionid"), reply.text[:500]
    return session


def test_staff_read_a_live_agents_log_tail_with_secrets_redacted(control_plane, start_agent):
    info = bootstrap(control_plane)
    token = info["token"]
    agent = start_agent(
        "--ledger", control_plane.url, "--farm", str(info["farm"]), "--enroll", token
    )
    node_id = wait_for(
        lambda: control_plane.get("/api/v1/nodes")["results"], timeout=30, what="registration"
    )[0]["id"]
    staff = signed_in(control_plane, info["username"], info["password"])
    logs_url = f"{control_plane.url}/operator/nodes/{node_id}/logs"

    # A runner (its own process) logs the farm's token and a password, through the ring handler
    # every runner installs; and a line carrying the token lands in the ring unredacted, as if
    # written by something that skipped the handler: the agent redacts it on the way out.
    redis_url = json.loads((agent.data_dir / STATE_FILE).read_text())["redis"]
    runner_log = logging.getLogger("test.planted")
    handler = RingHandler(redis_url, source="runner-9")
    runner_log.addHandler(handler)
    try:
        runner_log.warning("herodb db1 created, password=%s", PLANTED_PASSWORD)
    finally:
        runner_log.removeHandler(handler)
        handler.close()
    connect(redis_url).xadd(LOG_STREAM, {"source": "runner-9", "line": f"cmdline: {token}"})

    def tail():
        reply = staff.get(logs_url, timeout=10)
        return reply.json() if reply.status_code == 200 else None

    body = wait_for(tail, timeout=30, what="the node's link to answer a log request")
    text = "\n".join(f"{entry['source']} {entry['line']}" for entry in body["lines"])
    assert "coordinator link up" in text  # the supervisor's own log
    assert "agent " in text and "runner-9 " in text
    assert "herodb db1 created, password=[REDACTED]" in text
    assert PLANTED_PASSWORD not in text
    assert token not in text and token[4:] not in text
    assert body["cursor"] == body["lines"][-1]["id"]

    # Follow: with the cursor, only what was logged since.
    connect(redis_url).xadd(LOG_STREAM, {"source": "agent", "line": "a line after the cursor"})
    newer = staff.get(logs_url, params={"after": body["cursor"]}, timeout=10).json()
    assert [entry["line"] for entry in newer["lines"]] == ["a line after the cursor"]

    # Nobody but staff: anonymous and a signed-in non-staff user both get 404.
    assert requests.get(logs_url, timeout=10).status_code == 404
    control_plane.manage(
        "shell", "-c", "from django.contrib.auth.models import User; "
        "User.objects.create_user('farmer', password='farmer-pw-123')",
    )  # fmt: skip
    farmer = signed_in(control_plane, "farmer", "farmer-pw-123")
    refused = farmer.get(logs_url, timeout=10)
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    assert agent.stop() == 0
