"""The farmer's pages through Django's test client: owner-scoped (another farmer's farm is 404),
the token secret shown once, the actions and their refusals as messages, flat query counts."""

import re

import pytest
from django.test import Client

from ledger.models import EnrollmentToken, Farm, Node
from tests.conftest import NodeClient, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def farmer() -> Client:
    client = Client()
    client.force_login(make_user("fiona"))
    return client


def create_farm(client: Client, name: str = "meadow") -> Farm:
    response = client.post("/farms", {"name": name})
    assert response.status_code == 302, response.content
    return Farm.objects.get(name=name)


def test_the_farm_pages_need_a_session(client):
    assert client.get("/farms")["Location"].startswith("/sign-in")


def test_a_farmer_creates_a_farm_and_a_token_whose_secret_is_shown_once(farmer):
    farm = create_farm(farmer)
    assert farm.owner.username == "fiona"
    page = farmer.get(f"/farms/{farm.pk}")
    assert b"meadow" in page.content and b"No node yet" in page.content
    made = farmer.post(f"/farms/{farm.pk}/tokens", {"label": "rack", "uses": 2, "days": 3})
    secret = (
        re.search(rb'id="new-enrollment-token" class="mono" readonly value="([^"]+)"', made.content)
        .group(1)
        .decode()
    )
    token = EnrollmentToken.objects.get(farm=farm)
    assert secret.startswith(token.prefix) and token.uses_left == 2
    assert secret.encode() not in farmer.get(f"/farms/{farm.pk}").content
    bad = farmer.post(f"/farms/{farm.pk}/tokens", {"uses": 0, "days": 3})
    assert b"errorlist" in bad.content and EnrollmentToken.objects.filter(farm=farm).count() == 1
    taken = farmer.post("/farms", {"name": "meadow"})
    assert b"exists; choose another name" in taken.content


def test_another_farmer_gets_404_on_every_page_and_action(farmer):
    farm = create_farm(farmer)
    node_id = NodeClient(Client()).register(farm).json()["id"]
    token = EnrollmentToken.objects.create(
        farm=farm, secret_hash="x" * 64, prefix="zet_x", expires_at="2099-01-01T00:00Z"
    )
    other = Client()
    other.force_login(make_user("mallory"))
    answers = [
        other.get(f"/farms/{farm.pk}"),
        other.get(f"/farms/{farm.pk}/boot"),
        other.post(f"/farms/{farm.pk}/tokens", {"uses": 1, "days": 1}),
        other.post(f"/farms/{farm.pk}/tokens/{token.pk}/revoke"),
        other.post(f"/farms/{farm.pk}/nodes/{node_id}/approve"),
        other.post(f"/farms/{farm.pk}/release", {"agent_version": ""}),
        other.post(f"/farms/{farm.pk}/boot/rotate"),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers)
    assert b"meadow" not in other.get("/farms").content
    assert Node.objects.get(pk=node_id).status == "pending"


def test_approve_and_drain_from_the_farm_page_with_refusals_as_messages(farmer):
    farm = create_farm(farmer)
    node_id = NodeClient(Client()).register(farm).json()["id"]
    base = f"/farms/{farm.pk}/nodes/{node_id}"
    refused = farmer.post(f"{base}/drain", follow=True)
    assert b"approve it first" in refused.content
    approved = farmer.post(f"{base}/approve", follow=True)
    assert f"Node {node_id} is approved".encode() in approved.content
    drained = farmer.post(f"{base}/drain", follow=True)
    assert b"is drained" in drained.content and b'class="drained"' in drained.content
    assert Node.objects.get(pk=node_id).drained
    assert farmer.post(f"{base}/reboot").status_code == 404


def test_the_boot_page_shows_the_secret_link_and_rotates_it(farmer):
    farm = create_farm(farmer)
    page = farmer.get(f"/farms/{farm.pk}/boot").content.decode()
    link = re.search(r'id="boot-link" class="mono" readonly value="([^"]+)"', page).group(1)
    assert link.startswith(f"http://testserver/boot/{farm.pk}/") and f"{link}usb.img" in page
    assert "The grid has no boot image yet" in page
    rotated = farmer.post(f"/farms/{farm.pk}/boot/rotate", follow=True).content.decode()
    assert "The boot link is new" in rotated and link not in rotated


def test_the_farm_page_costs_the_same_queries_for_many_nodes(farmer):
    farm = create_farm(farmer)
    NodeClient(Client()).register(farm)

    def count() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            assert farmer.get(f"/farms/{farm.pk}").status_code == 200
        return len(ctx.captured_queries)

    one = count()
    for _ in range(5):
        NodeClient(Client()).register(farm)
    assert count() == one
