"""The script editor: Check marks an error at its line and column; Deploy signs in the browser
the envelope `zos deploy` makes (the server's own verifier accepts it) and submits it."""

import base64
import json
import re

import pytest
from playwright.sync_api import expect

from contracts.payload_types import DEPLOYMENT_TYPE
from signing.dsse import verify_envelope
from signing.keys import key_id, parse_public_key
from tests.browser.conftest import field, sign_up, snap
from tests.browser.test_keys import _make_key
from zoscli.envelope import build_payload

pytestmark = pytest.mark.integration

BROKEN = 'log("one");\nlet y = (2;\nlog("three");\n'

# Runs in the page: the deployment envelope the dashboard builds, for fixed time and nonce.
BUILD_IN_PAGE = """async (fields) => {
  const { allKeys } = await import("/static/dashboard/keystore.js");
  const { deploymentPayload, signDeployment } = await import("/static/dashboard/envelope.js");
  const [entry] = await allKeys();
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", entry.keyPair.publicKey));
  const payload = deploymentPayload(fields);
  const envelope = await signDeployment(entry.keyPair, raw, payload);
  return { publicKey: entry.publicKey, envelope };
}"""


def test_check_marks_the_error_at_its_line_and_column(page, screenshots):
    sign_up(page, "mona")
    page.get_by_role("navigation").get_by_role("link", name="Deploy", exact=True).click()
    editor = page.get_by_label("Script (Rhai)")
    expect(editor).to_have_value(re.compile("hello from a ZOS node"))  # hello.rhai to start from
    expect(page.get_by_text("vm_create(spec)")).to_be_visible()  # the catalog beside it
    editor.fill(BROKEN)
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.locator("#check-status")).to_contain_text("line 2, column 11:")
    expect(editor).to_have_attribute("aria-invalid", "true")
    expect(editor).to_have_attribute("data-error-line", "2")
    expect(page.locator("#gutter .error-line")).to_have_text("2")
    # The caret is at line 2, column 11 (the selection runs from there to the line's end).
    start = editor.evaluate("e => [e.selectionStart, e.selectionEnd, document.activeElement === e]")
    offset = len('log("one");\n') + 10
    assert start == [offset, len('log("one");\nlet y = (2;'), True]
    snap(page, screenshots, "deploy-check-error")

    # Editing clears the mark; a clean script checks fine and names the functions it calls.
    editor.fill('log("fixed");\n')
    expect(editor).not_to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.locator("#check-status")).to_contain_text("No errors. It calls log.")


def test_without_a_browser_key_the_page_links_to_the_keys_page(page):
    sign_up(page, "nina")
    page.goto("/deploy")
    expect(page.get_by_role("link", name="make one on the keys page")).to_be_visible()


def test_the_browser_signs_what_zos_deploy_signs_and_the_coordinator_answers(page, screenshots):
    sign_up(page, "omar")
    _make_key(page, "omar-key")

    fields = {
        "script": 'log("héllo");\n',
        "target": {"node": 3},
        "name": "hello",
        "now": 1_800_000_000,
        "nonce": "0123456789abcdef0123456789abcdef",
        "resources": {"cru": 1, "mru": 1024},
    }
    page.goto("/deploy")
    found = page.evaluate(BUILD_IN_PAGE, fields)
    expected = build_payload(**fields)
    expected_bytes = json.dumps(
        expected, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    public = parse_public_key(found["publicKey"])
    payload, _ = verify_envelope(found["envelope"], DEPLOYMENT_TYPE, [public])
    assert payload == expected_bytes == base64.b64decode(found["envelope"]["payload"])
    assert found["envelope"]["payloadType"] == DEPLOYMENT_TYPE
    assert found["envelope"]["signatures"][0]["keyid"] == key_id(public)

    # Through the form: signed with the browser key and submitted; with no such farm the
    # coordinator's refusal is shown in words.
    field(page, "Name").fill("hello")
    page.get_by_label("Run on").select_option("farm")
    page.get_by_label("Farm id").fill("999")
    expect(page.get_by_label("Signing key (in this browser)")).to_contain_text("omar-key")
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.locator("#deploy-status")).to_contain_text("Not deployed: farm 999 does not exist")
    snap(page, screenshots, "deploy")
