"""A user never reads, cancels or follows another user's deployment."""

import pytest

from coordinator.models import Job
from tests.conftest import make_farm
from tests.coordinator.conftest import deployment_payload, make_online_node

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_deployment(alice) -> int:
    # Its node's link is down: the job waits, queued, and a cancel ends it at once.
    node = make_online_node(make_farm("farm-a"), linked=False)
    response = alice.submit(deployment_payload(target={"node": node.pk}))
    assert response.status_code == 201
    return response.json()["id"]


def test_lists_show_only_own_deployments(alice, mallory, alices_deployment):
    assert [d["id"] for d in alice.api.get("/api/v1/deployments").json()["results"]] == [
        alices_deployment
    ]
    assert mallory.api.get("/api/v1/deployments").json()["results"] == []


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("get", "/events"), ("post", "/cancel")],
    ids=["detail", "events", "cancel"],
)
def test_someone_elses_deployment_does_not_exist_for_you(
    mallory, alices_deployment, method, suffix
):
    response = getattr(mallory.api, method)(f"/api/v1/deployments/{alices_deployment}{suffix}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert Job.objects.get(deployment_id=alices_deployment).state == "queued"


def test_the_owner_can_cancel_and_read_events(alice, alices_deployment):
    cancelled = alice.api.post(f"/api/v1/deployments/{alices_deployment}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = alice.api.post(f"/api/v1/deployments/{alices_deployment}/cancel")
    assert again.status_code == 409
    assert again.json()["error"] == "already_finished"
    events = alice.api.get(f"/api/v1/deployments/{alices_deployment}/events").json()
    assert [e["status"] for e in events["results"]] == ["queued", "waiting", "cancelled"]
    later = alice.api.get(
        f"/api/v1/deployments/{alices_deployment}/events?after={events['results'][1]['seq']}"
    ).json()
    assert [e["status"] for e in later["results"]] == ["cancelled"]
