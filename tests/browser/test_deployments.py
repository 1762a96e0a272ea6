"""The deployments pages against a real server: the list, and a deployment's events arriving
live over /ws/deployments/ — across a dropped connection, none lost and none twice.

No agent runs here: the node's side is played by the coordinator's own services in the plane's
environment (tests/browser/feed.py), pushing through the Redis channel layer daphne listens on.
"""

import json
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_up, snap
from tests.integration.conftest import ControlPlane, free_port, wait_for

pytestmark = pytest.mark.integration


@dataclass
class FeedPlane(ControlPlane):
    redis_url: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "REDIS_URL": self.redis_url}

    def feed(self, call: str) -> str:
        return self.manage("shell", "-c", f"from tests.browser import feed; feed.{call}")


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeedPlane]:
    port = free_port()
    redis = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    # Polled, not slept on: a loaded machine can take longer than any fixed pause to start it.
    wait_for(lambda: _accepts(port), timeout=30, what="redis-server to listen")
    server = FeedPlane(
        var_dir=tmp_path_factory.mktemp("var"), redis_url=f"redis://127.0.0.1:{port}/0"
    )
    server.migrate()
    server.start()
    yield server
    server.kill()
    redis.terminate()
    redis.wait(10)


def _submit(plane: FeedPlane, username: str) -> dict:
    return json.loads(plane.feed(f"submit({username!r})").strip().splitlines()[-1])


def _report(plane: FeedPlane, made: dict, events: list[dict]) -> None:
    plane.feed(f"report({made['job']!r}, {made['node']}, {events!r})")


def test_events_appear_live_and_survive_a_dropped_connection(page, plane, screenshots):
    sign_up(page, "pia")
    made = _submit(plane, "pia")
    page.get_by_role("navigation").get_by_role("link", name="Deployments").click()
    expect(page.get_by_role("row", name=re.compile("live"))).to_contain_text("Queued")
    snap(page, screenshots, "deployments")
    page.get_by_role("link", name="live").click()
    page.wait_for_url(f"/deployments/{made['id']}")
    expect(page.locator("#deployment")).to_have_attribute("data-live", "true")

    _report(plane, made, [{"status": "running", "log": "step one"}])
    expect(page.locator("#events")).to_contain_text("step one")
    expect(page.locator("#status")).to_have_text("Running")

    # The connection drops; what happens meanwhile is caught up, once.
    page.evaluate("window.zosDeploymentFeed.drop()")
    _report(plane, made, [{"status": "running", "log": "step two"}])
    expect(page.locator("#deployment")).to_have_attribute("data-live", "true")
    _report(
        plane,
        made,
        [
            {"status": "running", "log": "step three"},
            {"status": "succeeded", "result": {"greeting": "hello", "n": 3}},
        ],
    )
    expect(page.locator("#status")).to_have_text("Succeeded")
    expect(page.locator("#result")).to_contain_text('"greeting": "hello"')
    for line in ("step one", "step two", "step three"):
        expect(page.locator("#events li", has_text=line)).to_have_count(1)
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    snap(page, screenshots, "deployment")

    # The same page loaded afresh shows the same events, in order.
    shown = page.locator("#events li").all_inner_texts()
    page.reload()
    expect(page.locator("#events li")).to_have_count(len(shown))


def test_cancel_shows_cancel_requested(page, plane):
    sign_up(page, "quin")
    made = _submit(plane, "quin")
    _report(plane, made, [{"status": "running", "log": "sleeping"}])
    page.goto(f"/deployments/{made['id']}")
    expect(page.locator("#events")).to_contain_text("sleeping")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#status")).to_have_text("Cancel requested")
    expect(page.locator("#detail")).to_contain_text("cancel requested")


def test_a_second_user_sees_none_of_the_first_users_deployments(new_page, plane):
    first, second = new_page(), new_page()
    sign_up(first, "rosa")
    made = _submit(plane, "rosa")
    sign_up(second, "sven")
    second.goto("/deployments")
    expect(second.get_by_text("No deployments")).to_be_visible()
    response = second.goto(f"/deployments/{made['id']}")
    assert response.status == 404
    first.goto(f"/deployments/{made['id']}")
    expect(first.locator("h1")).to_contain_text("live")


def test_the_editor_and_a_deployment_fit_a_phone(new_page, plane, screenshots):
    phone = new_page(phone=True)
    sign_up(phone, "tom")
    made = _submit(plane, "tom")
    for path, name in (
        ("/deploy", "deploy-phone"),
        (f"/deployments/{made['id']}", "deployment-phone"),
        ("/deployments", "deployments-phone"),
    ):
        phone.goto(path)
        phone.wait_for_load_state("networkidle")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways on a phone ({width}px)"
        snap(phone, screenshots, name)


def test_a_failure_is_said_in_words(page, plane):
    sign_up(page, "vera")
    made = _submit(plane, "vera")
    page.goto(f"/deployments/{made['id']}")
    expect(page.locator("#deployment")).to_have_attribute("data-live", "true")
    _report(plane, made, [{"status": "failed", "error": "vm_create: no such image 'nope'"}])
    expect(page.locator("#status")).to_have_text("Failed")
    expect(page.locator("#failure")).to_have_text("It failed: vm_create: no such image 'nope'")
    page.reload()
    expect(page.locator("#failure")).to_have_text("It failed: vm_create: no such image 'nope'")
