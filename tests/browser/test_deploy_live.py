"""From the editor to a finished deployment on a real node: daphne, the coordinator worker and an
enrolled agent with its runners (tests/integration's grid). hello.rhai is signed in the browser,
runs on the node, and its log lines and result appear live on the deployment's page."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import field, sign_up, snap
from tests.browser.test_keys import _make_key
from tests.integration import conftest as integration
from tests.integration.test_deployments import running_grid

pytestmark = pytest.mark.integration

RUN_MS = 120_000  # enrolment done, a busy two-core machine still takes a while to run it


# tests/integration's fixtures, used here: its control plane and its agents.
control_plane = integration.control_plane
start_agent = integration.start_agent


@pytest.fixture
def plane(control_plane):
    return control_plane


def test_hello_deployed_from_the_browser_succeeds_live(
    page, plane, start_agent, tmp_path, screenshots
):
    with running_grid(plane, start_agent, tmp_path) as (user, _agent):
        sign_up(page, "tess")
        _make_key(page, "tess-key")
        page.goto("/deploy")
        expect(page.get_by_label("Node", exact=True)).to_contain_text(f"node {user.node}")
        page.get_by_label("Node", exact=True).select_option(str(user.node))
        field(page, "Name").fill("hello")
        page.get_by_role("button", name="Deploy", exact=True).click()
        page.wait_for_url("**/deployments/*")
        expect(page.locator("#events")).to_contain_text("hello from a ZOS node", timeout=RUN_MS)
        expect(page.locator("#status")).to_have_text("Succeeded", timeout=RUN_MS)
        expect(page.locator("#events")).to_contain_text("step 3 of 3")
        expect(page.locator("#result")).to_contain_text('"greeting": "hello"')
        snap(page, screenshots, "deployment-hello")


def test_a_sleeping_deployment_is_cancelled_from_its_page(
    page, plane, start_agent, tmp_path, screenshots
):
    with running_grid(plane, start_agent, tmp_path) as (user, _agent):
        sign_up(page, "uma")
        _make_key(page, "uma-key")
        page.goto("/deploy")
        expect(page.get_by_label("Node", exact=True)).to_contain_text(f"node {user.node}")
        page.get_by_label("Script (Rhai)").fill('log("sleeping");\nsleep(120000);\n"woke"\n')
        field(page, "Name").fill("sleeper")
        page.get_by_role("button", name="Deploy", exact=True).click()
        page.wait_for_url("**/deployments/*")
        expect(page.locator("#events")).to_contain_text("sleeping", timeout=RUN_MS)
        page.get_by_role("button", name="Cancel").click()
        expect(page.locator("#status")).to_have_text("Cancelled", timeout=RUN_MS)
        expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
        expect(page.locator("#failure")).to_have_text(re.compile(r"^Cancelled: "))
        expect(page.locator("#result")).not_to_contain_text("woke")
        snap(page, screenshots, "deployment-cancelled")
