"""Drafts through the JSON API: a user's own, kept as written, limited like a deployment's
script, and another user's draft is 404 for every verb."""

import pytest

from coordinator.serializers import SCRIPT_MAX_CHARS
from tests.coordinator.conftest import make_tenant

pytestmark = pytest.mark.django_db

SCRIPT = '// my VM\nlet vm = vm_create(#{name: "web", cpus: 1});\n  vm\n'


def _post(tenant, **body):
    return tenant.api.post("/api/v1/drafts", body, content_type="application/json")


def test_a_draft_is_saved_listed_changed_and_deleted_by_its_owner():
    ann = make_tenant("ann")
    created = _post(ann, name="web", script=SCRIPT)
    assert created.status_code == 201, created.content
    draft = created.json()
    assert draft["script"] == SCRIPT  # whitespace and all
    listed = ann.api.get("/api/v1/drafts").json()["results"]
    assert [(d["id"], d["name"]) for d in listed] == [(draft["id"], "web")]
    assert "script" not in listed[0]

    changed = ann.api.patch(
        f"/api/v1/drafts/{draft['id']}", {"script": "log(1)"}, content_type="application/json"
    )
    assert changed.status_code == 200, changed.content
    again = ann.api.get(f"/api/v1/drafts/{draft['id']}").json()
    assert (again["name"], again["script"]) == ("web", "log(1)")

    assert ann.api.delete(f"/api/v1/drafts/{draft['id']}").status_code == 204
    assert ann.api.get(f"/api/v1/drafts/{draft['id']}").status_code == 404


def test_another_users_draft_is_not_found_for_every_verb():
    ann, bob = make_tenant("ann"), make_tenant("bob")
    draft = _post(ann, name="secret", script="log(42)").json()
    url = f"/api/v1/drafts/{draft['id']}"
    assert bob.api.get(url).status_code == 404
    assert (
        bob.api.put(url, {"name": "x", "script": ""}, content_type="application/json").json()[
            "error"
        ]
        == "not_found"
    )
    assert bob.api.delete(url).status_code == 404
    assert bob.api.get("/api/v1/drafts").json()["results"] == []
    assert ann.api.get(url).json()["script"] == "log(42)"


def test_drafts_need_a_session_or_token():
    from django.test import Client

    assert Client().get("/api/v1/drafts").status_code in (401, 403)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ok", "script": "x" * (SCRIPT_MAX_CHARS + 1)}, "script"),
        ({"name": "Not A Name", "script": ""}, "name"),
        ({"script": "log(1)"}, "name"),
    ],
)
def test_bad_drafts_are_refused_with_the_field_named(body, field):
    ann = make_tenant("ann")
    response = _post(ann, **body)
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{field}:"), response.json()


def test_the_largest_deployable_script_is_a_valid_draft():
    ann = make_tenant("ann")
    assert _post(ann, name="big", script="x" * SCRIPT_MAX_CHARS).status_code == 201


def test_a_second_draft_with_the_same_name_is_a_conflict_not_a_crash():
    ann, bob = make_tenant("ann"), make_tenant("bob")
    first = _post(ann, name="web", script="1").json()
    again = _post(ann, name="web", script="2")
    assert again.status_code == 409 and again.json()["error"] == "draft_exists"
    assert _post(bob, name="web", script="3").status_code == 201  # names are per owner
    other = _post(ann, name="db", script="4").json()
    renamed = ann.api.patch(
        f"/api/v1/drafts/{other['id']}", {"name": "web"}, content_type="application/json"
    )
    assert renamed.status_code == 409
    assert ann.api.get(f"/api/v1/drafts/{first['id']}").json()["script"] == "1"
