"""A real agent registers with a real ASGI server, gets approved, reports, and survives restarts."""

import time
from datetime import datetime

import pytest
import requests

from tests.integration.conftest import bootstrap, wait_for

pytestmark = pytest.mark.integration


def _nodes(plane) -> list[dict]:
    return plane.get("/api/v1/nodes")["results"]


def _last_seen(plane, node_id: int) -> datetime:
    return datetime.fromisoformat(plane.get(f"/api/v1/nodes/{node_id}")["last_seen"])


def test_node_appears_pending_is_approved_reports_and_recovers_after_restart(
    control_plane, start_agent
):
    info = bootstrap(control_plane)
    agent = start_agent("--ledger", control_plane.url, "--farm", str(info["farm"]))

    nodes = wait_for(lambda: _nodes(control_plane), timeout=30, what="the node to register")
    node = nodes[0]
    assert node["status"] == "pending"
    assert node["capacity"]["cru"] >= 1 and node["capacity"]["mru"] > 0
    assert node["farm"] == info["farm"]
    # The ledger lists the node as soon as it registers; the agent logs its pending state after.
    wait_for(
        lambda: "must approve" in agent.log(), timeout=10, what="the agent to log it is pending"
    )

    approved = requests.post(
        f"{control_plane.url}/api/v1/nodes/{node['id']}/approve",
        headers={"Authorization": f"Token {info['api_token']}"},
        timeout=5,
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "online"

    seen = _last_seen(control_plane, node["id"])
    wait_for(
        lambda: _last_seen(control_plane, node["id"]) > seen,
        timeout=15,
        what="an uptime report after approval",
    )
    detail = control_plane.get(f"/api/v1/nodes/{node['id']}")
    assert detail["status"] == "online"
    assert detail["uptime"] > 0

    control_plane.kill()
    time.sleep(3)  # the agent fails at least one report while the server is down
    control_plane.start()
    restarted_at = _last_seen(control_plane, node["id"])
    wait_for(
        lambda: _last_seen(control_plane, node["id"]) > restarted_at,
        timeout=40,
        what="the agent to report again after the server restart",
    )
    assert "ledger unreachable" in agent.log()
    assert control_plane.get(f"/api/v1/nodes/{node['id']}")["status"] == "online"

    assert agent.stop() == 0
    assert len(_nodes(control_plane)) == 1


def test_enrolled_node_is_online_at_once_and_keeps_its_identity(control_plane, start_agent):
    info = bootstrap(control_plane)
    args = ("--ledger", control_plane.url, "--farm", str(info["farm"]), "--enroll", info["token"])
    first = start_agent(*args)
    node = wait_for(lambda: _nodes(control_plane), timeout=30, what="registration")[0]
    wait_for(
        lambda: control_plane.get(f"/api/v1/nodes/{node['id']}")["status"] == "online",
        timeout=15,
        what="the enrolled node to be online",
    )
    assert first.stop() == 0

    # Same data directory: same key, so the same node, even though the token is now spent.
    again = start_agent(*args, data_dir=first.data_dir)
    seen = _last_seen(control_plane, node["id"])
    wait_for(lambda: _last_seen(control_plane, node["id"]) > seen, timeout=15, what="a report")
    assert len(_nodes(control_plane)) == 1
    assert again.stop() == 0
