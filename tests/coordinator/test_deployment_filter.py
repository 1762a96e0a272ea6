"""`GET /api/v1/deployments?status=`: only that status; an unknown one is a 400 naming the
allowed ones, never an empty list that looks like "none"."""

import pytest

from coordinator import services
from coordinator.choices import JobState
from coordinator.models import Deployment
from tests.conftest import make_farm
from tests.coordinator.conftest import deployment_payload, make_online_node, make_tenant

pytestmark = pytest.mark.django_db


def test_the_list_filters_by_status():
    node = make_online_node(make_farm(), linked=False)  # jobs wait: a cancel ends one at once
    ann, bob = make_tenant("ann"), make_tenant("bob")
    ids = [ann.submit(deployment_payload(target={"node": node.pk})).json()["id"] for _ in range(3)]
    bob.submit(deployment_payload(target={"node": node.pk}))
    services.cancel_deployment(deployment=Deployment.objects.get(pk=ids[1]))
    cancelled = ann.api.get("/api/v1/deployments?status=cancelled").json()
    assert [d["id"] for d in cancelled["results"]] == [ids[1]]
    queued = ann.api.get("/api/v1/deployments?status=queued").json()
    assert sorted(d["id"] for d in queued["results"]) == [ids[0], ids[2]]
    assert ann.api.get("/api/v1/deployments").json()["count"] == 3


def test_an_unknown_status_is_refused_with_the_allowed_ones():
    ann = make_tenant("ann")
    response = ann.api.get("/api/v1/deployments?status=done")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_status"
    assert body["allowed"] == JobState.values
    assert "'done'" in body["message"] and "succeeded" in body["message"]
