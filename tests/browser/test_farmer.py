"""A farmer runs a farm from the dashboard against a live grid (daphne, the coordinator worker,
two real agents, a real boot image): signs up, creates the farm and an enrollment token, opens
the boot page, approves the node of a machine that runs what the farm's public boot media say (a
stranger downloads zos.efi from the public boot page the farmer's page links; the agent reads
the command line stamped into it), drains it, and sees a farm deployment land on the other node.
Another farmer sees none of it."""

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bootimage.stamp import read_cmdline
from tests.browser.conftest import field, sign_in, sign_up, snap
from tests.browser.test_keys import _make_key
from tests.integration import conftest as integration
from tests.integration.conftest import ROOT, wait_for
from tests.integration.test_deployments import _link_up

pytestmark = pytest.mark.integration

RUN_MS = 120_000  # a busy two-core machine takes a while to run a job on a fresh node

control_plane = integration.control_plane
start_agent = integration.start_agent


@pytest.fixture
def plane(control_plane):
    return control_plane


# A tiny real build (tests/ledger/conftest.py), registered as the grid's current boot image.
REGISTER_BUILD = """
from pathlib import Path
from ledger.boot import register_build
from tests.ledger.conftest import make_build
register_build(make_build(Path({out!r})))
"""


@pytest.fixture
def boot_image(plane, tmp_path) -> None:
    plane.manage("shell", "-c", REGISTER_BUILD.format(out=str(tmp_path / "build")))


@pytest.fixture
def coordinator(plane, tmp_path):
    """The coordinator worker: retries, and moving jobs between nodes, run here."""
    with open(tmp_path / "coordinator.log", "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "coordinator", "--every", "0.2"],
            cwd=ROOT,
            env=plane.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    yield worker
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=10)


def accept_confirmations(page: Page) -> list[str]:
    """Say yes to farm.js's questions, and keep them to check what was asked."""
    asked: list[str] = []

    def answer(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    return asked


def node_row(page: Page, node_id: int):
    return page.locator(f"#node-{node_id}")


def public_media_cmdline(new_page, public_page: str, tmp_path, screenshots) -> Path:
    """What a stranger gets: zos.efi from the farm's public boot page; returns the file holding
    the kernel command line stamped into it (an agent reads it as if it had booted from it)."""
    stranger = new_page()
    stranger.goto(public_page)
    expect(stranger.locator("#content-main")).to_contain_text("join this farm as pending")
    snap(stranger, screenshots, "farm-public-boot")
    with stranger.expect_download() as download:
        stranger.get_by_role("link", name="zos.efi", exact=True).click()
    efi = tmp_path / "public-zos.efi"
    download.value.save_as(efi)
    cmdline = tmp_path / "public-cmdline"
    cmdline.write_text(read_cmdline(efi))
    return cmdline


def test_a_farmer_approves_and_drains_a_node_and_work_goes_elsewhere(
    new_page, plane, boot_image, coordinator, start_agent, tmp_path, screenshots
):
    page = new_page()
    asked = accept_confirmations(page)
    sign_up(page, "fara")
    page.get_by_role("navigation").get_by_role("link", name="Farms").click()
    field(page, "Farm name").fill("fara-acres")
    page.get_by_role("button", name="Create farm").click()
    page.wait_for_url(re.compile(r"/farms/\d+$"))
    farm_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_role("heading", level=1)).to_contain_text("fara-acres")

    field(page, "Label").fill("rack 1")
    page.get_by_role("button", name="Create enrollment token").click()
    secret = page.get_by_label("Enrollment token", exact=True).input_value()
    assert secret.startswith("zet_")
    expect(page.locator("#tokens")).to_contain_text("rack 1")

    page.get_by_role("link", name="Boot media", exact=True).click()
    expect(page.locator("#boot-files")).to_contain_text("usb.img")
    link = page.get_by_label(re.compile("^Boot link")).input_value()
    assert link.startswith(f"{plane.url}/boot/{farm_id}/")
    expect(page.get_by_role("link", name="boot.ipxe")).to_have_attribute("href", f"{link}boot.ipxe")
    snap(page, screenshots, "farm-boot")

    # A machine that runs the farm's public media: no token in them, so its node waits. It has
    # the most memory, so it is the scheduler's first choice until it is drained.
    public_page = page.get_by_role("link", name=f"{plane.url}/boot/{farm_id}/").get_attribute(
        "href"
    )
    cmdline = public_media_cmdline(new_page, public_page, tmp_path, screenshots)
    words = dict(word.split("=", 1) for word in cmdline.read_text().split() if "=" in word)
    assert (words["zos.ledger"], words["zos.farm"]) == (plane.url, str(farm_id))
    assert "zos.enroll" not in words
    facts = tmp_path / "big.json"
    facts.write_text(json.dumps({"capacity": {"mru": 512 * 2**30}}))
    start_agent("--kernel-cmdline", str(cmdline), "--facts", str(facts))
    pending = wait_for(
        lambda: [n["id"] for n in plane.get("/api/v1/nodes")["results"] if n["farm"] == farm_id],
        timeout=60,
        what="the tokenless node to register",
    )[0]
    start_agent("--ledger", plane.url, "--farm", str(farm_id), "--enroll", secret)
    enrolled = wait_for(
        lambda: [
            n["id"]
            for n in plane.get("/api/v1/nodes")["results"]
            if n["farm"] == farm_id and n["id"] != pending and n["status"] == "online"
        ],
        timeout=60,
        what="the enrolled node to come online",
    )[0]

    page.get_by_role("link", name="Back to the farm").click()
    expect(node_row(page, pending)).to_contain_text("Pending approval")
    expect(node_row(page, enrolled)).to_contain_text("Online")
    expect(page.locator("#tokens")).to_contain_text("used up")  # its one use is spent
    snap(page, screenshots, "farm-pending")
    page.get_by_role("button", name=f"Approve node {pending}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Node {pending} is approved")
    expect(node_row(page, pending)).to_contain_text("Online")
    page.get_by_role("button", name=f"Drain node {pending}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Node {pending} is drained")
    expect(node_row(page, pending)).to_contain_text("drained")
    expect(
        node_row(page, pending).get_by_role("button", name=f"Undrain node {pending}")
    ).to_be_visible()
    assert [q.split("?")[0] for q in asked] == [f"Approve node {pending}", f"Drain node {pending}"]
    snap(page, screenshots, "farm")

    wait_for(lambda: _link_up(plane, enrolled), timeout=60, what="the enrolled node's link")
    _make_key(page, "fara-key")
    page.goto("/deploy")
    page.get_by_label("Run on").select_option("farm")
    page.get_by_label("Farm id").fill(str(farm_id))
    field(page, "Name").fill("farm-hello")
    page.get_by_role("button", name="Deploy", exact=True).click()
    page.wait_for_url("**/deployments/*")
    expect(page.locator("#status")).to_have_text("Succeeded", timeout=RUN_MS)
    expect(page.get_by_text(f"placed on node {enrolled}")).to_be_visible()
    snap(page, screenshots, "farm-deployment")

    # On a phone the farm page fits the screen (the nodes table scrolls inside itself).
    phone = new_page(phone=True)
    sign_in(phone, "fara")
    phone.goto(f"/farms/{farm_id}")
    expect(node_row(phone, enrolled).get_by_role("img")).to_have_attribute(
        "aria-label", re.compile(rf"^Node {enrolled} reported \d+% of the time")
    )
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    snap(phone, screenshots, "farm-phone")

    # Another farmer: the farm is not theirs to see, in any page or API call.
    other = new_page()
    sign_up(other, "farb")
    for path in (f"/farms/{farm_id}", f"/farms/{farm_id}/boot"):
        assert other.goto(path).status == 404
    other.goto("/farms")
    expect(other.get_by_role("main")).not_to_contain_text("fara-acres")
    for path in (f"/api/v1/farms/{farm_id}/nodes", f"/api/v1/farms/{farm_id}/boot-link"):
        assert other.request.get(path).status == 404
