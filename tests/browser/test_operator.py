"""An operator reads a live node's agent log on its admin page, and the grid overview, in a real
browser under the site's CSP (the log panel is a static ES module polling the staff endpoint),
then drains the node with the admin action."""

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from nodeagent.config import STATE_FILE
from nodeagent.jobstore import connect
from nodeagent.logring import LOG_STREAM
from tests.integration.conftest import bootstrap, start_agent, wait_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

# A day of deployments as the database holds them (submitted every other hour, more later in the
# day, in the states they ended in), so the overview's chart has something to draw.
SEED_DAY = """
from datetime import timedelta
from django.contrib.auth.models import User
from django.utils import timezone
from coordinator.models import Deployment, Job
from ledger.models import UserKey
user = User.objects.create_user("tenant")
key = UserKey.objects.create(user=user, name="k", public_key="cd" * 32)
now = timezone.now()
states = ["succeeded", "succeeded", "failed", "succeeded", "running", "cancelled"]
for hours_ago in range(0, 24, 2):
    for i, state in enumerate(states[: 1 + (24 - hours_ago) % 6]):
        d = Deployment.objects.create(
            owner=user, name="d", envelope={}, payload="{}", signer=key, script_sha256="0" * 64,
            nonce=f"{hours_ago}-{i}", expires_at=now, status=state,
        )
        Deployment.objects.filter(pk=d.pk).update(created=now - timedelta(hours=hours_ago))
        Job.objects.create(deployment=d, state=state, attempt=2 if state == "failed" else 1)
"""


def test_operator_follows_a_nodes_log_and_sees_the_overview(
    plane,
    new_page,
    start_agent,  # noqa: F811  (the fixture imported above)
    screenshots: Path,
):
    info = bootstrap(plane)
    agent = start_agent(
        "--ledger", plane.url, "--farm", str(info["farm"]), "--enroll", info["token"]
    )
    node_id = wait_for(lambda: plane.get("/api/v1/nodes")["results"], timeout=30, what="node")[0][
        "id"
    ]
    plane.manage("shell", "-c", SEED_DAY)
    page = new_page()
    violations = []
    page.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m.text))

    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill(info["username"])
    page.get_by_label("Password").fill(info["password"])
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Grid overview").click()
    expect(page.get_by_role("heading", name="Nodes", exact=True)).to_be_visible()
    chart = page.get_by_role("img", name="Deployments submitted per hour")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.state-failed")).not_to_have_count(0)
    expect(page.locator("#jobs-retried")).not_to_have_text("0 (0%)")
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=screenshots / "operator-overview.png", full_page=True)

    page.goto(f"/admin/ledger/node/{node_id}/change/")
    lines = page.locator("#log-lines")
    expect(lines).to_contain_text("coordinator link up")  # once the link is up; the panel asks
    page.get_by_label("Follow live (every 2 s)").check()
    redis_url = json.loads((agent.data_dir / STATE_FILE).read_text())["redis"]
    connect(redis_url).xadd(LOG_STREAM, {"source": "runner-1", "line": "token=zet_abcdef123 x"})
    expect(lines).to_contain_text("runner-1 token=[REDACTED] x")
    expect(lines).not_to_contain_text("zet_abcdef123")
    page.locator("#agent-log").screenshot(path=screenshots / "operator-node-log.png")
    page.screenshot(path=screenshots / "operator-node.png", full_page=True)

    # Drain it from the node list, as an operator would before maintenance.
    page.goto("/admin/ledger/node/")
    page.get_by_role("checkbox", name="Select this object for an action").first.check()
    page.get_by_role("combobox", name="Action").select_option("drain")
    page.get_by_role("button", name="Go").click()
    expect(page.locator("ul.messagelist")).to_contain_text("1 node(s) drained")
    page.set_viewport_size({"width": 1600, "height": 700})  # every column in the picture
    page.get_by_role("button", name="Toggle navigation").click()
    expect(page.get_by_role("columnheader", name="Drained at")).to_be_visible()
    page.screenshot(path=screenshots / "operator-drain.png", full_page=True)
    nodes = plane.get(
        f"/api/v1/farms/{info['farm']}/nodes",
        headers={"Authorization": f"Token {info['api_token']}"},
    )
    assert [(n["id"], n["drained"]) for n in nodes] == [(node_id, True)]
    assert violations == []
    assert agent.stop() == 0
