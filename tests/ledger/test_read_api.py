import pytest

from tests.conftest import NodeClient, make_farm, make_token

pytestmark = pytest.mark.django_db


def test_nodes_filter_by_farm_and_status(client):
    farm1, farm2 = make_farm("f1"), make_farm("f2")
    NodeClient(client).register(farm1, enroll_token=make_token(farm1))
    NodeClient(client).register(farm1)
    NodeClient(client).register(farm2)
    by_farm = client.get(f"/api/v1/nodes?farm={farm1.pk}").json()
    assert by_farm["count"] == 2
    online = client.get(f"/api/v1/nodes?farm={farm1.pk}&status=online").json()
    assert [n["status"] for n in online["results"]] == ["online"]
    bad = client.get("/api/v1/nodes?status=bogus")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid"


def test_farms_are_listed(client, farm):
    assert client.get("/api/v1/farms").json()["results"][0]["name"] == farm.name


def test_node_detail_by_id_and_by_key(client, farm):
    node = NodeClient(client)
    node_id = node.register(farm).json()["id"]
    assert client.get(f"/api/v1/nodes/{node_id}").json()["public_key"] == node.public_key
    assert client.get(f"/api/v1/nodes/{node.public_key}").json()["id"] == node_id


def test_coordinator_key_is_published_and_stable(client, settings, tmp_path):
    from coordinator.keys import coordinator_signing_key

    settings.ZOS_COORDINATOR_KEY_FILE = tmp_path / "coordinator.key"
    coordinator_signing_key.cache_clear()
    first = client.get("/api/v1/coordinator/key").json()
    coordinator_signing_key.cache_clear()
    assert client.get("/api/v1/coordinator/key").json() == first
    assert len(first["public_key"]) == 64
    assert oct((tmp_path / "coordinator.key").stat().st_mode & 0o777) == "0o400"
    coordinator_signing_key.cache_clear()


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/v1/schema")
    assert schema.status_code == 200
    assert b"/api/v1/nodes/{id}/uptime" in schema.content
    assert client.get("/api/v1/docs").status_code == 200
