"""A real control plane (daphne) and Debian's chromium driven by Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium (scripts/setup.sh installs it).
One server serves every test of a module; tests keep apart by using their own usernames.
Screenshots go to `<pytest's base temp>/screenshots` and the path is printed at the end.
"""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from tests.integration.conftest import ControlPlane

CHROMIUM = "/usr/bin/chromium"
# As root the sandbox must be off (../shared/PLATFORM.md); the rest keeps chromium off the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery staple"
# Waits, not deadlines: on a busy two-core machine a key generation plus two API calls took over
# Playwright's default 5 s; a page that never gets there still fails, only later.
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    server = ControlPlane(var_dir=tmp_path_factory.mktemp("var"))
    server.migrate()
    server.start()
    yield server
    server.kill()


# Package scope, not session: Playwright's sync API keeps an asyncio loop running on the main
# thread while it is open, and code that later runs its own loop there (qemu.qmp's legacy client
# in tests/image) then fails with "This event loop is already running".
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/setup.sh does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "screenshots"


@pytest.fixture
def new_page(browser: Browser, plane: ControlPlane) -> Iterator:
    """Pages in fresh browser contexts (separate cookies and storage, like separate people)."""
    contexts: list[BrowserContext] = []

    def make(*, phone: bool = False) -> Page:
        viewport = {"width": 390, "height": 844} if phone else {"width": 1100, "height": 800}
        context = browser.new_context(base_url=plane.url, viewport=viewport)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page) -> Page:
    return new_page()


def field(page: Page, label: str) -> Locator:
    """The form field labelled exactly `label` (Django appends a colon to its labels)."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}:?$"))


def sign_up(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/sign-up")
    field(page, "Username").fill(username)
    field(page, "Email").fill(f"{username}@example.org")
    field(page, "Password").fill(password)
    field(page, "Password again").fill(password)
    page.get_by_role("button", name="Create my account").click()
    page.wait_for_url("/")


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/sign-in")
    field(page, "Username").fill(username)
    field(page, "Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("/")


def snap(page: Page, screenshots: Path, name: str) -> None:
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=screenshots / f"{name}.png", full_page=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    base = config._tmp_path_factory.getbasetemp() if hasattr(config, "_tmp_path_factory") else None
    if base and (base / "screenshots").is_dir():
        terminalreporter.write_line(f"dashboard screenshots: {base / 'screenshots'}")
