"""Nodes fetch images with signed requests, and only what the job's owner may see."""

from coordinator.models import Deployment, Job
from tests.conftest import NodeClient, make_farm
from tests.coordinator.conftest import make_online_node
from tests.hub.conftest import KERNEL, pushed, sha


def _node_running_jobs_of(client, *tenants):
    node = make_online_node(make_farm("farm-n"))
    for tenant in tenants:
        deployment = Deployment.objects.create(
            owner=tenant.user,
            name="d",
            envelope={},
            payload="{}",
            signer=tenant.user.keys.first(),
            script_sha256="0" * 64,
            nonce=f"n-{tenant.user.pk}",
            target_node=node,
            expires_at="2100-01-01T00:00:00Z",
        )
        Job.objects.create(deployment=deployment, node=node)
    return NodeClient(client, node.signing_key)


def test_a_node_gets_the_owners_image_and_its_parts(client, alice):
    image = pushed(alice)
    node = _node_running_jobs_of(client, alice)
    found = node.signed("GET", f"/api/v1/node-fetch/images/tiny?owner={alice.user.pk}")
    assert found.status_code == 200, found.content
    body = found.json()
    assert body["id"] == image["id"] and body["publisher"] == alice.user.pk
    assert body["envelope"]["payloadType"] == "application/vnd.zos.image.v1+json"
    blob = node.signed("GET", f"/api/v1/node-fetch/blobs/{sha(KERNEL)}?owner={alice.user.pk}")
    assert blob.status_code == 200
    assert b"".join(blob.streaming_content) == KERNEL


def test_a_node_without_the_owners_jobs_gets_nothing(client, alice):
    pushed(alice)
    node = _node_running_jobs_of(client)
    refused = node.signed("GET", f"/api/v1/node-fetch/images/tiny?owner={alice.user.pk}")
    assert refused.status_code == 403 and refused.json()["error"] == "owner_not_on_node"


def test_a_node_fetching_for_another_owner_never_sees_a_private_image(client, alice, mallory):
    pushed(alice)
    node = _node_running_jobs_of(client, mallory)
    image = node.signed("GET", f"/api/v1/node-fetch/images/tiny?owner={mallory.user.pk}")
    assert image.status_code == 404 and image.json()["error"] == "unknown_image"
    blob = node.signed("GET", f"/api/v1/node-fetch/blobs/{sha(KERNEL)}?owner={mallory.user.pk}")
    assert blob.status_code == 404


def test_public_images_reach_every_owner(client, alice, operator):
    pushed(operator, public=True)
    node = _node_running_jobs_of(client, alice)
    found = node.signed("GET", f"/api/v1/node-fetch/images/tiny?owner={alice.user.pk}")
    assert found.status_code == 200 and found.json()["public"] is True


def test_unsigned_requests_are_refused(client, alice):
    pushed(alice)
    response = client.get(f"/api/v1/node-fetch/images/tiny?owner={alice.user.pk}")
    assert response.status_code == 401
