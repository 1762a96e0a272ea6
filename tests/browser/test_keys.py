"""Signing keys made in the browser: registered with a browser-made proof the server verifies."""

import base64
import time

import pytest
import requests
from playwright.sync_api import expect

from contracts.payload_types import KEY_PROOF_TYPE
from signing.dsse import canonical_json, verify_envelope
from signing.keys import parse_public_key
from tests.browser.conftest import field, sign_up, snap

pytestmark = pytest.mark.integration

# Runs in the page: the stored key pair, whether its private half can be exported, and a
# key-proof envelope signed by the page's own envelope module.
IN_PAGE = """async (statement) => {
  const { allKeys } = await import("/static/dashboard/keystore.js");
  const { signStatement } = await import("/static/dashboard/envelope.js");
  const [entry] = await allKeys();
  let exported = "refused";
  try { await crypto.subtle.exportKey("pkcs8", entry.keyPair.privateKey); exported = "exported"; }
  catch (error) { exported = "refused"; }
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", entry.keyPair.publicKey));
  const envelope = await signStatement(entry.keyPair, raw, statement.type, statement.fields);
  return {
    publicKey: entry.publicKey,
    extractable: entry.keyPair.privateKey.extractable,
    exported,
    envelope,
  };
}"""


def _make_key(page, name: str) -> None:
    page.get_by_role("navigation").get_by_role("link", name="Keys").click()
    field(page, "Name").fill(name)
    page.get_by_role("button", name="Make and register key").click()
    expect(page.get_by_role("row", name=name)).to_contain_text("this browser")


def test_a_browser_key_is_registered_non_extractable_and_signs_what_python_verifies(
    page, plane, screenshots
):
    sign_up(page, "ivan")
    _make_key(page, "ivan-chromium")
    expect(page.get_by_role("row", name="ivan-chromium")).to_contain_text("active")
    snap(page, screenshots, "keys")

    fields = {"user": 7, "public_key": "", "challenge": "ch-ä", "issued_at": int(time.time())}
    found = page.evaluate(IN_PAGE, {"type": KEY_PROOF_TYPE, "fields": fields})
    assert found["extractable"] is False and found["exported"] == "refused"
    fields["public_key"] = found["publicKey"]
    found = page.evaluate(IN_PAGE, {"type": KEY_PROOF_TYPE, "fields": fields})
    payload, _ = verify_envelope(
        found["envelope"], KEY_PROOF_TYPE, [parse_public_key(found["publicKey"])]
    )
    assert payload == canonical_json(fields)
    assert base64.b64decode(found["envelope"]["payload"]) == canonical_json(fields)

    # The key the server stored is the browser's, registered for this user and active.
    token = requests.post(
        f"{plane.url}/api/v1/auth/token",
        json={"username": "ivan", "password": "correct horse battery staple"},
        timeout=5,
    ).json()["token"]
    keys = requests.get(
        f"{plane.url}/api/v1/keys", headers={"Authorization": f"Token {token}"}, timeout=5
    ).json()["results"]
    assert [(k["name"], k["public_key"], k["revoked"]) for k in keys] == [
        ("ivan-chromium", found["publicKey"], False)
    ]


def test_a_key_is_revoked_from_its_row(page):
    sign_up(page, "judy")
    _make_key(page, "judy-key")
    page.get_by_role("button", name="Revoke key judy-key").click()
    expect(page.get_by_role("status").first).to_contain_text("revoked")
    expect(page.get_by_role("row", name="judy-key")).to_contain_text("revoked")


def test_a_second_person_sees_none_of_the_first_ones_keys(new_page):
    first, second = new_page(), new_page()
    sign_up(first, "kim")
    _make_key(first, "kim-key")
    sign_up(second, "lee")
    second.goto("/keys")
    expect(second.get_by_text("kim-key")).to_have_count(0)
    expect(second.get_by_text("No keys yet")).to_be_visible()
