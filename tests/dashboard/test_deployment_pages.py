"""The editor and deployments pages through Django's test client: owner-scoped, filtered, paged,
and a constant number of queries however many deployments a user has."""

import pytest

from coordinator import services
from tests.conftest import make_farm
from tests.coordinator.conftest import deployment_payload, make_online_node, make_tenant

pytestmark = pytest.mark.django_db


def _deploy(tenant, node, n: int) -> list[int]:
    ids = []
    for _ in range(n):
        response = tenant.submit(deployment_payload(target={"node": node.pk}))
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return ids


def test_the_editor_offers_the_examples_and_needs_a_session(client):
    assert client.get("/deploy")["Location"].startswith("/sign-in")
    tenant = make_tenant("ann")
    page = tenant.api.get("/deploy")
    assert page.status_code == 200
    assert b'id="examples"' in page.content and b"hello from a ZOS node" in page.content


def test_a_deployment_page_is_its_owners_only():
    node = make_online_node(make_farm())
    ann, bob = make_tenant("ann"), make_tenant("bob")
    [deployment] = _deploy(ann, node, 1)
    assert ann.api.get(f"/deployments/{deployment}").status_code == 200
    assert bob.api.get(f"/deployments/{deployment}").status_code == 404
    assert b"No deployments" in bob.api.get("/deployments").content


def test_the_list_filters_by_status_and_pages():
    node = make_online_node(make_farm(), linked=False)  # jobs wait: a cancel ends one at once
    ann = make_tenant("ann")
    ids = _deploy(ann, node, 27)
    from coordinator.models import Deployment

    services.cancel_deployment(deployment=Deployment.objects.get(pk=ids[0]))
    first = ann.api.get("/deployments").content.decode()
    assert "Page 1 of 2" in first and f'href="/deployments/{ids[-1]}"' in first
    second = ann.api.get("/deployments?page=2").content.decode()
    assert f'href="/deployments/{ids[0]}"' in second
    cancelled = ann.api.get("/deployments?status=cancelled").content.decode()
    assert cancelled.count('href="/deployments/') == 1 and "Page 1 of 1" in cancelled
    unknown = ann.api.get("/deployments?status=done").content.decode()
    assert "“done” is not a status; showing every deployment" in unknown
    assert "Page 1 of 2" in unknown


def test_the_list_and_a_page_cost_the_same_queries_for_one_deployment_or_many(
    django_assert_num_queries,
):
    node = make_online_node(make_farm())
    ann = make_tenant("ann")
    [first] = _deploy(ann, node, 1)
    for more in (0, 30):
        _deploy(ann, node, more)
        with django_assert_num_queries(4):  # session, user, count, the page's rows
            assert ann.api.get("/deployments").status_code == 200
        with django_assert_num_queries(3):  # session, user, the deployment with its job
            assert ann.api.get(f"/deployments/{first}").status_code == 200
