"""Factories and fixtures shared by the suite: real keys, real signatures, no fixture files."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from nacl.signing import SigningKey

from signing.keys import public_key_hex
from signing.node_request import sign_request

CAPACITY = {"cru": 4, "mru": 8 * 2**30, "sru": 100 * 2**30, "hru": 0}


def make_user(username: str = "alice", *, staff: bool = False):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(
        username, password="a-long-test-password", is_staff=staff, is_superuser=staff
    )


def make_farm(name: str = "farm1", owner=None):
    from ledger.models import Farm

    return Farm.objects.create(name=name, owner=owner or make_user(f"owner-{name}"))


def make_token(farm, *, uses: int = 1, ttl: timedelta = timedelta(days=1)) -> str:
    from ledger.services import create_enrollment_token

    return create_enrollment_token(farm=farm, uses=uses, ttl=ttl)[1]


def registration(farm, **extra) -> dict:
    return {
        "farm": farm.pk,
        "capacity": dict(CAPACITY),
        "interfaces": [{"name": "eth0", "mac": "52:54:00:12:34:56", "ips": ["10.0.2.15/24"]}],
        "serial": "SN-1",
        "agent_version": "0.1.0",
        **extra,
    }


class NodeClient:
    """A node as the ledger sees it: a key that signs every request it sends."""

    def __init__(self, client: Client, key: SigningKey | None = None) -> None:
        self.client = client
        self.key = key or SigningKey.generate()

    @property
    def public_key(self) -> str:
        return public_key_hex(self.key)

    def signed(self, method: str, path: str, payload=None, *, body: bytes | None = None, **sign):
        if body is None:
            body = b"" if payload is None else json.dumps(payload).encode()
        header = sign_request(self.key, method, path, body, **sign)
        return self.send(method, path, body, header)

    def send(self, method: str, path: str, body: bytes, authorization: str | None):
        extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
        return self.client.generic(method, path, body, content_type="application/json", **extra)

    def register(self, farm, **extra):
        return self.signed("POST", "/api/v1/nodes", registration(farm, **extra))

    def uptime(self, node_id, *, uptime: int = 100, health=(), used=None):
        report = {"uptime": uptime, "health": list(health)}
        if used is not None:
            report["used"] = used
        return self.signed("POST", f"/api/v1/nodes/{node_id}/uptime", report)


@pytest.fixture
def node(client) -> NodeClient:
    return NodeClient(client)


@pytest.fixture
def farm(db):
    return make_farm()


@pytest.fixture
def flat_queries(django_assert_num_queries):
    """STYLE.md §5: a read endpoint costs the same number of queries for one row as for many.

    `flat_queries(fetch, add_rows, queries)` calls `fetch()` (one request) with exactly
    `queries` queries, calls `add_rows()`, then `fetch()` again with the same count, and returns
    both responses so the caller can check that the rows really were served. The count is
    pinned, not only compared, so that a new query on every request shows up too.
    """

    def check(fetch, add_rows, queries: int):
        with django_assert_num_queries(queries):
            before = fetch()
        add_rows()
        with django_assert_num_queries(queries):
            after = fetch()
        assert before.status_code == after.status_code == 200, after.content
        return before.json(), after.json()

    return check
