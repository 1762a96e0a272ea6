"""Every dashboard page costs the same number of queries with 10 deployments and workloads of
its user as with 1,000 deployments (with jobs and events) and 100 workloads."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from coordinator.models import Deployment, Workload
from tests.dashboard.seed import add_deployments, add_workloads, seed_user

pytestmark = pytest.mark.django_db

PAGES = [
    "/",
    "/deploy",
    "/deployments",
    "/deployments?status=failed&page=2",
    "/deployments/{deployment}",
    "/keys",
    "/account/tokens",
    "/nodes",
    "/nodes/{node}",
    "/workloads",
    "/workloads/{workload}",
]


@pytest.mark.parametrize("path", PAGES)
def test_a_page_costs_the_same_queries_for_10_rows_or_1000(path, django_assert_num_queries):
    seeded = seed_user("ann", report_days=1)
    add_deployments(seeded, 10)
    add_workloads(seeded, 10)
    client = Client()
    client.force_login(seeded.user)
    url = path.format(
        deployment=Deployment.objects.filter(owner=seeded.user).earliest("id").pk,
        node=seeded.nodes[0].pk,
        workload=Workload.objects.filter(owner=seeded.user).earliest("id").pk,
    )
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    add_deployments(seeded, 990)
    add_workloads(seeded, 90)
    with django_assert_num_queries(len(few.captured_queries)):
        many = client.get(url)
    assert many.status_code == 200
    assert len(few.captured_queries) <= 8, [q["sql"] for q in few.captured_queries]
