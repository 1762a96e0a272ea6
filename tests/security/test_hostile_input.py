"""Input no client should send, sent anyway: a clear 4xx (or a close code), never a 500."""

import pytest

from tests.conftest import make_user

pytestmark = pytest.mark.django_db

BEYOND_64_BITS = "9" * 30


@pytest.fixture
def staff_client(client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    client.force_login(make_user("operator", staff=True))
    return client


def test_an_id_beyond_64_bits_in_a_path_is_404(staff_client):
    """Found by schemathesis: the driver raised OverflowError on the foreign-key lookup."""
    response = staff_client.get(f"/api/v1/users/{BEYOND_64_BITS}/keys")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_an_id_beyond_64_bits_in_a_query_is_a_400_naming_it(staff_client):
    """Found by schemathesis: GET /api/v1/workloads?node=<30 digits> was a 500."""
    response = staff_client.get(f"/api/v1/workloads?node={BEYOND_64_BITS}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert "node" in response.json()["message"]


def test_a_node_filter_that_is_not_an_id_is_refused_not_ignored(staff_client):
    response = staff_client.get("/api/v1/workloads?node=abc")
    assert response.status_code == 400
    assert staff_client.get("/api/v1/workloads?node=7").json()["results"] == []


@pytest.mark.parametrize("query", ["limit=36893488147419103233", "offset=" + BEYOND_64_BITS])
def test_a_page_bound_beyond_64_bits_is_served_not_a_500(client, query):
    """Found by schemathesis: GET /api/v1/nodes?limit=36893488147419103233 was a 500."""
    response = client.get(f"/api/v1/nodes?{query}")
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_a_page_is_at_most_the_maximum_size(client):
    from grid.pagination import MAX_LIMIT
    from ledger.models import Node
    from tests.conftest import CAPACITY, make_farm

    farm = make_farm()
    Node.objects.bulk_create(
        Node(farm=farm, public_key=f"{n:064x}", **CAPACITY) for n in range(MAX_LIMIT + 1)
    )
    page = client.get(f"/api/v1/nodes?limit={MAX_LIMIT * 10}").json()
    assert len(page["results"]) == MAX_LIMIT and page["count"] == MAX_LIMIT + 1
    assert page["next"]
