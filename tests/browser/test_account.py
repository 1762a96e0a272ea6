"""The account pages in a real browser: sign-up to sign-out, lockout, password, API tokens."""

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, field, sign_in, sign_out, sign_up, snap

pytestmark = pytest.mark.integration


def test_a_visitor_signs_up_lands_on_the_dashboard_and_signs_out(page, screenshots):
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Run workloads")
    snap(page, screenshots, "welcome")
    sign_up(page, "alice")
    expect(page.get_by_role("heading", name="Hello, alice")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Your account is ready")
    snap(page, screenshots, "dashboard")
    sign_out(page)
    expect(page.get_by_role("navigation").get_by_role("link", name="Sign in")).to_be_visible()


def test_a_wrong_password_is_explained(page):
    sign_up(page, "bob")
    sign_out(page)
    sign_in(page, "bob", "not my password")
    expect(page.locator(".errorlist")).to_contain_text("correct username and password")
    assert page.url.endswith("/sign-in")


def test_five_failed_sign_ins_lock_the_account_at_this_address(page, screenshots):
    sign_up(page, "carol")
    sign_out(page)
    for _ in range(4):
        sign_in(page, "carol", "wrong")
        expect(page.locator(".errorlist")).to_be_visible()
    sign_in(page, "carol", "wrong")
    expect(page.get_by_role("alert")).to_contain_text("locked")
    snap(page, screenshots, "locked-out")
    sign_in(page, "carol")  # the right password changes nothing until the cool-off ends
    expect(page.get_by_role("heading", level=1)).to_have_text("Too many failed sign-ins")


def test_a_changed_password_is_the_one_that_signs_in(page):
    sign_up(page, "dave")
    page.get_by_role("link", name="Password").click()
    field(page, "Old password").fill(PASSWORD)
    field(page, "New password").fill("another long passphrase")
    field(page, "New password confirmation").fill("another long passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("password was changed")
    sign_out(page)
    sign_in(page, "dave")
    expect(page.locator(".errorlist")).to_be_visible()
    sign_in(page, "dave", "another long passphrase")
    expect(page.get_by_role("heading", name="Hello, dave")).to_be_visible()


def test_a_token_is_shown_once_works_for_the_api_and_stops_when_revoked(page, plane, screenshots):
    sign_up(page, "erin")
    page.get_by_role("navigation").get_by_role("link", name="API tokens").click()
    field(page, "Name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    secret = field(page, "Token").input_value()
    assert re.fullmatch(r"zos_[A-Za-z0-9_-]{43}", secret)
    snap(page, screenshots, "tokens")
    api = {"Authorization": f"Token {secret}"}
    assert requests.get(f"{plane.url}/api/v1/keys", headers=api, timeout=5).status_code == 200
    page.goto("/account/tokens")
    expect(field(page, "Token")).to_have_count(0)
    expect(page.get_by_role("cell", name="laptop", exact=True)).to_be_visible()
    # Used once above: "last used" is no longer "never".
    expect(page.get_by_role("cell", name="never", exact=True)).to_have_count(0)
    page.get_by_role("button", name="Revoke token laptop").click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    assert requests.get(f"{plane.url}/api/v1/keys", headers=api, timeout=5).status_code == 401


def test_a_second_person_sees_none_of_the_first_ones_tokens(new_page):
    first, second = new_page(), new_page()
    sign_up(first, "frank")
    first.goto("/account/tokens")
    field(first, "Name").fill("frank-ci")
    first.get_by_role("button", name="Create token").click()
    sign_up(second, "grace")
    second.goto("/account/tokens")
    expect(second.get_by_text("frank-ci")).to_have_count(0)
    expect(second.get_by_text("No tokens")).to_be_visible()


def test_the_dashboard_fits_a_phone(new_page, screenshots):
    phone = new_page(phone=True)
    sign_up(phone, "heidi")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    snap(phone, screenshots, "dashboard-phone")
