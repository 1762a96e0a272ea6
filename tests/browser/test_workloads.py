"""A HeroDB's life in the browser, on a real node with a workload pool: deployed from the editor
(examples/herodb.rhai, signed in the browser), listed under /workloads with its state and address
once the node's inventory says so, deleted from its page (a confirmed, browser-signed delete
script followed on its deployment's page) and gone from the list. Another user, in another
browser context, sees no workloads and gets a 404 for the first user's.

Real parts throughout (tests/integration's grid): daphne, the coordinator worker, an enrolled
agent with its runners and redis-server, btrfs on a loop device and the database's redis-server.
"""

import contextlib
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from nodeagent.functions.resources import node_resources
from tests.browser.conftest import sign_in, sign_up, snap
from tests.browser.test_keys import _make_key
from tests.integration import conftest as integration
from tests.integration.test_deployments import running_grid
from tests.sal.conftest import loop_pool
from tests.sal.guest import READY_MARKER, install_guest_image

pytestmark = pytest.mark.integration

GIB = 2**30
RUN_MS = 120_000  # a busy two-core machine takes a while to start a database
INVENTORY_S = 60  # the node reports its inventory within a second; the machine may be slow

control_plane = integration.control_plane
start_agent = integration.start_agent


@pytest.fixture
def plane(control_plane):
    return control_plane


@pytest.fixture
def pool(tmp_path: Path):
    """The node's workload pool: btrfs on a loop device (skips unless root with loop devices)."""
    with loop_pool(tmp_path / "btrfs", size=4 * GIB) as made:
        yield made


@pytest.fixture
def node_dir():
    """The agent's data directory, short (a VM's QMP socket path under it must fit in 107
    bytes); any process still running from it at the end (a database server or QEMU left by a
    failed test) is killed by pid, so nothing outlives the test."""
    path = Path(tempfile.mkdtemp(prefix="zw-", dir="/tmp"))
    yield path
    _kill_processes_under(path)
    shutil.rmtree(path, ignore_errors=True)


def _kill_processes_under(path: Path) -> None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(path).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def _deploy_from_editor(page: Page, node: int, *, example: str = "", script: str = "") -> None:
    """Deploy from the editor to `node`, signed with this browser's key; wait for its success."""
    page.get_by_role("navigation").get_by_role("link", name="Deploy", exact=True).click()
    if example:
        page.get_by_label("Start from an example").select_option(example)
        # What is deployed is the editor's text: the example's, not the page's first one (CI
        # once deployed hello: deploy.js loaded it over a choice made before the module ran).
        example_text = (integration.ROOT / "examples" / f"{example}.rhai").read_text()
        expect(page.get_by_label("Script (Rhai)")).to_have_value(example_text)
    else:
        page.get_by_label("Script (Rhai)").fill(script)
        page.get_by_label("Name", exact=True).fill("make-vm")
    expect(page.get_by_label("Node", exact=True)).to_contain_text(f"node {node}")
    page.get_by_label("Node", exact=True).select_option(str(node))
    page.get_by_role("button", name="Deploy", exact=True).click()
    page.wait_for_url("**/deployments/*")
    expect(page.locator("#status")).to_have_text("Succeeded", timeout=RUN_MS)


def _until_listed(page: Page, text: str, *, present: bool) -> None:
    """Reload /workloads until `text` is (or is no longer) in its table: the list is the
    coordinator's copy of the node's inventory, which follows the script by a moment."""
    deadline = time.monotonic() + INVENTORY_S
    while True:
        page.goto("/workloads")
        found = page.locator("table").filter(has_text=text).count() > 0
        if found == present or time.monotonic() > deadline:
            break
        page.wait_for_timeout(500)
    assert found == present, f"/workloads {'never' if present else 'still'} lists {text!r}"


def test_a_herodb_is_deployed_listed_and_deleted_from_the_browser(
    new_page, plane, start_agent, tmp_path, pool, node_dir, screenshots
):
    agent_args = ("--storage", str(pool.mountpoint))
    with running_grid(plane, start_agent, tmp_path, *agent_args, data_dir=node_dir) as (
        user,
        agent,
    ):
        page = new_page()
        sign_up(page, "wren")
        _make_key(page, "wren-key")
        _deploy_from_editor(page, user.node, example="herodb")
        expect(page.locator("#events")).to_contain_text("database cache is ready")

        _until_listed(page, "cache", present=True)
        row = page.get_by_role("row").filter(has_text="cache")
        expect(row).to_contain_text("herodb")
        expect(row).to_contain_text(f"node {user.node}")
        expect(row).to_contain_text("ready")
        # a loop device may count as an HDD or an SSD: the disk key follows the pool's kind
        expect(row).to_contain_text(re.compile(r"64 MiB memory · 1 GiB (SSD|HDD)"))
        expect(row.locator("code")).to_have_text(re.compile(r":\d+$"))  # its host:port
        snap(page, screenshots, "workloads")

        row.get_by_role("link", name="cache").click()
        page.wait_for_url(re.compile(r"/workloads/\d+$"))
        detail_url = page.url
        expect(page.get_by_role("heading", level=1)).to_contain_text("cache")
        expect(page.locator("#state")).to_have_text("ready")
        expect(page.get_by_label("Signing key (in this browser)")).to_contain_text("wren-key")
        snap(page, screenshots, "workload-detail")

        # On a phone: the list and the page fit the width (the table scrolls inside). The phone
        # holds none of wren's keys, so nothing can be signed there: the actions stay disabled.
        phone = new_page(phone=True)
        sign_in(phone, "wren")
        phone.wait_for_url("/")
        for path in ("/workloads", detail_url):
            phone.goto(path)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} scrolls sideways on a phone ({width}px)"
        expect(phone.get_by_text("This browser holds none of your keys")).to_be_visible()
        expect(phone.get_by_role("button", name="Delete", exact=True)).to_be_disabled()

        # Someone else, in another browser: nothing of wren's, and her workload is not found.
        other = new_page()
        sign_up(other, "xavi")
        other.get_by_role("navigation").get_by_role("link", name="Workloads").click()
        expect(other.get_by_text("No workloads yet")).to_be_visible()
        assert other.goto(detail_url).status == 404

        # The confirmation is a modal dialog: Escape (the keyboard's "no") deletes nothing.
        delete = page.get_by_role("button", name="Delete", exact=True)
        delete.click()
        dialog = page.get_by_role("dialog", name="Delete herodb “cache”?")
        expect(dialog).to_be_visible()
        expect(dialog.locator("#delete-script")).to_contain_text('herodb_delete("cache");')
        expect(dialog.get_by_role("button", name="Keep it")).to_be_focused()
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(delete).to_be_focused()
        assert page.url == detail_url

        # Confirmed from the keyboard: Tab to "Delete cache", Enter.
        delete.press("Enter")
        expect(dialog).to_be_visible()
        page.keyboard.press("Tab")
        expect(dialog.get_by_role("button", name="Delete cache")).to_be_focused()
        page.keyboard.press("Enter")
        page.wait_for_url("**/deployments/*")
        expect(page.get_by_role("heading", level=1)).to_contain_text("delete-herodb-cache")
        expect(page.locator("#status")).to_have_text("Succeeded", timeout=RUN_MS)
        expect(page.locator("#events")).to_contain_text("deleted herodb cache")

        _until_listed(page, "cache", present=False)
        expect(page.get_by_text("No workloads yet")).to_be_visible()
        assert page.goto(detail_url).status == 404
        assert agent.stop() == 0


VM_SCRIPT = f"""
let vm = vm_create(#{{name: "web", image: "busybox", cpus: 1, memory_mb: 256, disk_gb: 1,
                     mycelium: false}});
let info = vm_info("web");
while !info.console.contains("{READY_MARKER}") {{ sleep(200); info = vm_info("web"); }}
log("web is up");
"""


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu")
def test_a_vms_console_is_read_by_a_signed_script_and_the_vm_deleted_from_its_page(
    new_page, plane, start_agent, tmp_path, pool, node_dir, screenshots
):
    install_guest_image(node_resources(node_dir, (pool.mountpoint,), "127.0.0.1").vms.images)
    agent_args = ("--storage", str(pool.mountpoint))
    with running_grid(plane, start_agent, tmp_path, *agent_args, data_dir=node_dir) as (
        user,
        agent,
    ):
        page = new_page()
        sign_up(page, "yuki")
        _make_key(page, "yuki-key")
        _deploy_from_editor(page, user.node, script=VM_SCRIPT)
        _until_listed(page, "web", present=True)
        row = page.get_by_role("row").filter(has_text="web")
        expect(row).to_contain_text("vm")
        expect(row).to_contain_text(re.compile(r"1 core · 256 MiB memory · 1 GiB (SSD|HDD)"))
        row.get_by_role("link", name="web").click()

        console = page.get_by_label("Console output")
        expect(console).to_contain_text("Not read yet")
        page.get_by_role("button", name="Refresh console").click()
        expect(page.locator("#action-status")).to_contain_text("Console read at", timeout=RUN_MS)
        expect(console).to_contain_text(f"{READY_MARKER} web")
        expect(page.locator("#state")).to_have_text("running")
        snap(page, screenshots, "workload-console")

        page.get_by_role("button", name="Delete", exact=True).click()
        page.get_by_role("dialog").get_by_role("button", name="Delete web").click()
        page.wait_for_url("**/deployments/*")
        expect(page.locator("#status")).to_have_text("Succeeded", timeout=RUN_MS)
        expect(page.locator("#events")).to_contain_text("deleted vm web")
        _until_listed(page, "web", present=False)
        assert agent.stop() == 0
