"""`GET /api/v1/catalog`: the catalog table as served, public and cacheable, described in the
OpenAPI schema."""

import pytest
from django.test import Client

from contracts.catalog import CATALOG
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def _get(client: Client, **headers: str):
    return client.get("/api/v1/catalog", headers=headers)


def test_the_endpoint_lists_exactly_the_catalogs_functions_in_its_order():
    body = _get(Client()).json()
    assert [f["name"] for f in body["functions"]] == list(CATALOG)
    for served in body["functions"]:
        function = CATALOG[served["name"]]
        assert served["signature"] == function.signature
        assert [p["name"] for p in served["params"]] == [p.name for p in function.params]
        assert served["returns"] == function.returns
        assert served["example"] == function.example


def test_map_arguments_carry_their_fields_with_types_defaults_and_ranges():
    functions = {f["name"]: f for f in _get(Client()).json()["functions"]}
    spec = functions["vm_create"]["params"][0]
    assert spec["type"] == "map"
    fields = {f["name"]: f for f in spec["fields"]}
    assert list(fields) == [f.name for f in CATALOG["vm_create"].spec_fields]
    assert fields["cpus"] == {
        "name": "cpus",
        "type": "int",
        "required": False,
        "default": 1,
        "minimum": 1,
        "maximum": 64,
        "max_items": None,
        "choices": [],
        "pattern": None,
        "doc": "virtual CPUs, reserved",
        "fields": [],
    }
    assert fields["name"]["required"] and fields["image"]["required"]
    assert (fields["memory_mb"]["default"], fields["mycelium"]["default"]) == (512, True)
    assert fields["kind"]["choices"] == ["vm", "container"]
    db = {f["name"]: f for f in functions["herodb_create"]["params"][0]["fields"]}
    assert (db["memory_mb"]["default"], db["disk_gb"]["default"]) == (256, 1)
    size = functions["volume_create"]["params"][1]
    assert (size["type"], size["minimum"], size["maximum"]) == ("int", 1, 16384)


def test_it_is_public_even_with_a_stale_token_and_for_a_signed_in_user():
    assert _get(Client()).status_code == 200
    assert _get(Client(), Authorization="Token not-a-real-token").status_code == 200
    signed_in = Client()
    signed_in.force_login(make_user())
    assert _get(signed_in).json() == _get(Client()).json()


def test_it_is_cacheable_and_answers_304_to_the_current_etag():
    first = _get(Client())
    assert "public" in first["Cache-Control"] and "max-age=300" in first["Cache-Control"]
    again = _get(Client(), **{"If-None-Match": first["ETag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert _get(Client(), **{"If-None-Match": '"stale"'}).status_code == 200


def test_the_openapi_schema_describes_the_endpoint():
    schema = Client().get("/api/v1/schema", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/catalog"]["get"]
    assert operation["security"] == [{}]  # no authentication needed
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    catalog = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    function_ref = catalog["properties"]["functions"]["items"]["$ref"]
    function = schema["components"]["schemas"][function_ref.rsplit("/", 1)[1]]
    assert {"name", "signature", "params", "returns", "example"} <= set(function["properties"])
