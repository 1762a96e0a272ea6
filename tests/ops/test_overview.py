"""The operator overview: staff only, the grid's figures and charts, a fixed number of queries."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from coordinator import services
from coordinator.models import Deployment, Job
from ledger.choices import NodeStatus
from ledger.models import Node
from ops import charts, figures
from tests.conftest import make_farm, make_user
from tests.coordinator.conftest import deployment_payload, make_online_node, make_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(make_user("op", staff=True))
    return client


def deploy(tenant, node, name: str) -> Deployment:
    response = tenant.submit(deployment_payload(target={"node": node.pk}, name=name))
    assert response.status_code == 201, response.json()
    return Deployment.objects.get(pk=response.json()["id"])


def grow_grid(tenant, farm, n: int) -> None:
    for i in range(n):
        node = make_online_node(farm, used_cru=1)
        deploy(tenant, node, f"more{i}")


def test_overview_shows_nodes_capacity_links_and_an_hourly_chart(staff):
    farm = make_farm()
    node = make_online_node(farm, used_cru=1, used_mru=2 * 2**30)
    pending = make_online_node(farm, linked=False)
    Node.objects.filter(pk=pending.pk).update(status=NodeStatus.PENDING)
    tenant = make_tenant("alice")
    failed = deploy(tenant, node, "broken")
    Job.objects.filter(deployment=failed).update(state="failed", attempt=2)
    Deployment.objects.filter(pk=failed.pk).update(status="failed")
    deploy(tenant, node, "fine")

    page = staff.get("/operator/")

    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(r'<span class="ops-n">1</span> online', html)
    assert re.search(r'<span class="ops-n">1</span> pending', html)
    assert re.search(r'<span class="ops-n" id="links">1</span> connected links', html)
    assert "3 of 4" not in html and "<td>1</td><td>3</td><td>4</td>" in html  # cpu used/free/total
    assert "2.0 GiB" in html  # memory used
    assert html.count('class="state-failed"') >= 2  # a bar segment and the legend
    assert "Deployments, last 24 hours (2)" in html
    assert '<dd id="jobs-retried">1 (50%)</dd>' in html
    assert '<dd id="jobs-failed">1 of 1 (100%)</dd>' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline scripts break the CSP"
    assert "script-src 'self'" in page["Content-Security-Policy"]


def test_overview_costs_the_same_queries_for_a_bigger_grid(staff, django_assert_num_queries):
    farm = make_farm()
    tenant = make_tenant("alice")
    grow_grid(tenant, farm, 1)
    with django_assert_num_queries(9):
        assert staff.get("/operator/").status_code == 200
    grow_grid(tenant, farm, 4)
    with django_assert_num_queries(9):
        assert staff.get("/operator/").status_code == 200


def test_the_hourly_chart_buckets_the_last_24_hours(db):
    farm = make_farm()
    node = make_online_node(farm)
    tenant = make_tenant("alice")
    old = deploy(tenant, node, "yesterday")
    Deployment.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(hours=30))
    recent = deploy(tenant, node, "three-hours-ago")
    Deployment.objects.filter(pk=recent.pk).update(created=timezone.now() - timedelta(hours=3))
    deploy(tenant, node, "now")

    hours = figures.deployments_per_hour()

    assert len(hours) == 24
    assert [row["total"] for row in hours][-1] == 1
    assert [row["total"] for row in hours][-4] == 1
    assert sum(row["total"] for row in hours) == 2  # 30 hours ago is outside


def test_non_staff_and_anonymous_are_sent_to_sign_in(client):
    anonymous = client.get("/operator/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client.force_login(make_user("bob"))
    user = client.get("/operator/")
    assert user.status_code == 302 and "/admin/login/" in user["Location"]


def test_cancel_service_is_what_the_overview_counts(staff):
    """A cancelled deployment shows under its state: the page reads the rows services write."""
    node = make_online_node(make_farm(), linked=False)  # the job waits: cancelled at once
    deployment = deploy(make_tenant("alice"), node, "c")
    services.cancel_deployment(deployment=deployment)
    html = staff.get("/operator/").content.decode()
    assert re.search(r'<span class="ops-n">1</span> cancelled', html)


def test_the_admin_index_links_to_the_overview(staff):
    assert b'href="/operator/"' in staff.get("/admin/").content


@pytest.mark.parametrize(("peak", "top"), [(0, 2), (1, 2), (3, 4), (5, 10), (11, 20), (41, 100)])
def test_the_chart_scale_is_round_with_a_whole_middle_line(peak, top):
    chart = charts.stacked_bars([("00", {"succeeded": peak})], states=["succeeded"], title="t")
    assert [tick["value"] for tick in chart.ticks] == [0, top // 2, top]
    if peak:
        assert chart.bars[0].segments[0]["height"] == pytest.approx(chart.plot_height * peak / top)
