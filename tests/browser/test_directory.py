"""The nodes directory, drafts in the editor and the deployments filter, in a real browser
against a real control plane. Nodes, their uptime and many deployments are made in the plane's
own environment (`manage.py shell`) with the rows the page-speed tests use."""

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_up, snap

pytestmark = pytest.mark.integration


def _shell(plane, code: str) -> dict:
    return json.loads(plane.manage("shell", "-c", code).strip().splitlines()[-1])


def _seed_nodes(plane, username: str) -> dict:
    """A farm of the user with one node: 30 days reported, a few hours and a day missing."""
    return _shell(
        plane,
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from django.db.models import F\n"
        "from ledger.models import UptimeHour\n"
        "from tests.dashboard.seed import seed_nodes\n"
        f"user = get_user_model().objects.get(username={username!r})\n"
        "[node] = seed_nodes(user, nodes=1, report_days=30)\n"
        "hours = list(UptimeHour.objects.filter(node=node).order_by('-hour'))\n"
        "UptimeHour.objects.filter(pk__in=[h.pk for h in hours[3:6] + hours[200:224]]).delete()\n"
        "UptimeHour.objects.filter(pk=hours[8].pk).update(reports=F('reports') / 2)\n"
        "print(json.dumps({'node': node.pk, 'farm': node.farm.name}))\n",
    )


def test_the_directory_shows_a_node_with_its_bars_and_both_charts(page, plane, screenshots):
    sign_up(page, "dina")
    seeded = _seed_nodes(plane, "dina")
    page.get_by_role("navigation").get_by_role("link", name="Nodes").click()
    page.wait_for_url("/nodes")
    expect(page.get_by_role("row", name=re.compile(seeded["farm"]))).to_contain_text("1 of 1")
    card = page.locator(f"#node-{seeded['node']}")
    expect(card).to_contain_text("Online")
    expect(card).to_contain_text("agent 1.0.0")
    for bar in (r"^Cores: 1 of 4 used, 3 free$", r"^Memory: 1\.0 GiB of 8\.0 GiB used"):
        expect(card.get_by_role("img", name=re.compile(bar))).to_be_visible()
    day = card.get_by_role("img", name=re.compile(r"^Uptime, last 24 hours: \d"))
    month = card.get_by_role("img", name=re.compile(r"^Uptime, last 30 days: \d"))
    expect(day.locator("rect")).to_have_count(24)
    expect(month.locator("rect")).to_have_count(30)
    expect(day.locator("rect.down")).to_have_count(3)  # the hours without a report
    expect(day.locator("rect.partial")).to_have_count(1)  # the half-reported hour
    expect(month.locator("rect.down, rect.partial")).not_to_have_count(0)
    assert day.bounding_box()["width"] > 100 and month.bounding_box()["height"] > 20
    snap(page, screenshots, "nodes")

    card.get_by_role("link", name=f"Node {seeded['node']}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Node {seeded['node']}")
    expect(page.get_by_role("img", name=re.compile("^Uptime, "))).to_have_count(2)


def test_a_draft_is_saved_reopened_after_a_reload_and_deleted(page):
    sign_up(page, "emil")
    page.goto("/deploy")
    script = '// my first draft\nlog("kept for later");\n'
    page.get_by_label("Name", exact=True).fill("later")
    page.get_by_label("Script (Rhai)").fill(script)
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#draft-status")).to_have_text("Draft “later” saved.")

    page.reload()
    page.get_by_label("Script (Rhai)").fill("something else")
    saved = page.locator("#draft option", has_text=re.compile(r"^later \(saved "))
    page.get_by_label("Draft", exact=True).select_option(saved.get_attribute("value"))
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_label("Script (Rhai)")).to_have_value(script)
    expect(page.get_by_label("Name", exact=True)).to_have_value("later")

    page.get_by_label("Script (Rhai)").fill('log("changed");\n')
    page.get_by_role("button", name="Save draft").click()  # same name: the draft is updated
    expect(page.locator("#draft-status")).to_have_text("Draft “later” saved.")
    expect(page.locator("#draft option")).to_have_count(2)  # the prompt and the one draft

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("#draft-status")).to_have_text("Draft “later” deleted.")
    page.reload()
    expect(page.locator("#draft option")).to_have_count(1)


def test_deployments_are_filtered_by_status_across_pages(page, plane):
    sign_up(page, "fred")
    _shell(
        plane,
        "from django.contrib.auth import get_user_model\n"
        "from tests.dashboard.seed import Seeded, add_deployments, seed_nodes\n"
        "user = get_user_model().objects.get(username='fred')\n"
        "add_deployments(Seeded(user, seed_nodes(user, nodes=1, report_days=0)), 130)\n"
        "print('{}')\n",
    )
    page.goto("/deployments")
    expect(page.get_by_text("Page 1 of 6")).to_be_visible()
    page.get_by_label("Status").select_option(label="Failed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"/deployments\?status=failed$"))
    expect(page.get_by_text("Page 1 of 2")).to_be_visible()
    statuses = page.locator("tbody tr td:nth-child(2)")
    expect(statuses).to_have_count(25)
    assert set(statuses.all_inner_texts()) == {"Failed"}
    page.get_by_role("link", name="Older").click()
    page.wait_for_url(re.compile(r"status=failed&page=2$"))
    expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    expect(statuses).to_have_count(1)  # 26 of the 130 failed
    expect(statuses).to_have_text(["Failed"])
    expect(page.get_by_label("Status")).to_have_value("failed")
