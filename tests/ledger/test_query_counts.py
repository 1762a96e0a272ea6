"""Every ledger list and detail endpoint answers in a fixed number of queries, however many rows
there are (STYLE.md §5: an N+1 query shows up here as a count that grows).

Each test serves one row, adds several more, and serves again with the same pinned count.
"""

import secrets

import pytest
from django.test import Client

from ledger.models import AgentRelease, BootImage
from ledger.services import add_user_key
from tests.conftest import NodeClient, make_farm, make_user

pytestmark = pytest.mark.django_db

MORE = 4  # rows added between the two requests


def new_key() -> str:
    return secrets.token_hex(32)


def logged_in(user) -> Client:
    api = Client()
    api.force_login(user)
    return api


def make_image(version: str) -> BootImage:
    files = {"vmlinuz": {"sha256": "0" * 64, "size": 1}}
    return BootImage.objects.create(version=version, manifest={"files": files, "cmdline": "quiet"})


def make_release(version: str) -> AgentRelease:
    return AgentRelease.objects.create(version=version, sha256="0" * 64, size=1, envelope={})


DOWNLOADS = [("boot-images", make_image), ("releases", make_release)]


def add_keys(user) -> None:
    for i in range(1, 1 + MORE):
        add_user_key(user=user, name=f"k{i}", public_key=new_key())


def test_farms(client, flat_queries):
    make_farm("f0")
    url = "/api/v1/farms"
    one, many = flat_queries(
        lambda: client.get(url), lambda: [make_farm(f"f{i}") for i in range(1, 1 + MORE)], 2
    )
    assert (one["count"], many["count"]) == (1, 1 + MORE)
    assert {f["owner"] for f in many["results"]} == {f"owner-f{i}" for i in range(1 + MORE)}


def test_farm_detail(client, flat_queries):
    farm = make_farm("f0")
    url = f"/api/v1/farms/{farm.pk}"
    one, many = flat_queries(
        lambda: client.get(url), lambda: [make_farm(f"f{i}") for i in range(1, 1 + MORE)], 1
    )
    assert one == many and many["owner"] == "owner-f0"


@pytest.mark.parametrize(("by_farm", "queries"), [(False, 2), (True, 3)])
def test_nodes(client, farm, flat_queries, by_farm, queries):
    """The count and the page; filtering by farm also looks the farm up."""
    NodeClient(client).register(farm)
    url = f"/api/v1/nodes?farm={farm.pk}" if by_farm else "/api/v1/nodes"
    one, many = flat_queries(
        lambda: client.get(url),
        lambda: [NodeClient(client).register(farm) for _ in range(MORE)],
        queries,
    )
    assert (one["count"], many["count"]) == (1, 1 + MORE)


@pytest.mark.parametrize("by", ["id", "public_key"])
def test_node_detail(client, farm, flat_queries, by):
    node = NodeClient(client)
    node_id = node.register(farm).json()["id"]
    url = f"/api/v1/nodes/{node_id if by == 'id' else node.public_key}"
    one, many = flat_queries(
        lambda: client.get(url), lambda: [NodeClient(client).register(farm) for _ in range(MORE)], 1
    )
    assert one["id"] == many["id"] == node_id


def test_own_keys(flat_queries):
    user = make_user("alice")
    add_user_key(user=user, name="k0", public_key=new_key())
    api = logged_in(user)
    one, many = flat_queries(lambda: api.get("/api/v1/keys"), lambda: add_keys(user), 4)
    assert (one["count"], many["count"]) == (1, 1 + MORE)


def test_own_key_detail(flat_queries):
    user = make_user("alice")
    key = add_user_key(user=user, name="k0", public_key=new_key())
    api = logged_in(user)
    one, many = flat_queries(lambda: api.get(f"/api/v1/keys/{key.pk}"), lambda: add_keys(user), 3)
    assert one == many and many["name"] == "k0"


def test_a_users_public_keys(flat_queries):
    user = make_user("alice")
    add_user_key(user=user, name="k0", public_key=new_key())
    staff = logged_in(make_user("operator", staff=True))
    url = f"/api/v1/users/{user.pk}/keys"
    one, many = flat_queries(lambda: staff.get(url), lambda: add_keys(user), 3)
    assert (len(one["keys"]), len(many["keys"])) == (1, 1 + MORE)


@pytest.mark.parametrize(("kind", "make"), DOWNLOADS)
@pytest.mark.parametrize(("path", "queries"), [("", 2), ("/1.0", 1)])
def test_downloads(client, flat_queries, kind, make, path, queries):
    """The list (count and page) and one item by version, of boot images and agent releases."""
    make("1.0")
    one, many = flat_queries(
        lambda: client.get(f"/api/v1/{kind}{path}"),
        lambda: [make(f"1.{i}") for i in range(1, 1 + MORE)],
        queries,
    )
    if path:
        assert one == many and many["version"] == "1.0"
    else:
        assert (one["count"], many["count"]) == (1, 1 + MORE)
