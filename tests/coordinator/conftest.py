"""A user with a signing key and an online node: what every deployment test starts from."""

import json
import secrets
import time
from dataclasses import dataclass

import pytest
from channels.testing import WebsocketCommunicator
from nacl.signing import SigningKey

from contracts.payload_types import DEPLOYMENT_TYPE
from coordinator.consumers import DeploymentFeedConsumer
from signing.dsse import sign_envelope
from signing.keys import public_key_hex
from tests.conftest import CAPACITY, make_farm, make_user


def deployment_payload(
    script: str = 'log("hi"); 40 + 2', *, target: dict | None = None, **overrides
) -> dict:
    now = int(time.time())
    payload = {
        "script": script,
        "target": target or {"node": 1},
        "nonce": secrets.token_hex(16),
        "issued_at": now,
        "expires_at": now + 3600,
        "name": "hello",
    }
    payload.update(overrides)
    return payload


async def open_feed(user) -> WebsocketCommunicator:
    """The user's live deployment feed, connected as the dashboard connects it."""
    feed = WebsocketCommunicator(DeploymentFeedConsumer.as_asgi(), "/ws/deployments/")
    feed.scope["user"] = user
    connected, _ = await feed.connect()
    assert connected
    return feed


async def feed_frames(feed: WebsocketCommunicator) -> list[dict]:
    """Every frame the feed sends until it has been quiet for half a second."""
    seen = []
    while not await feed.receive_nothing(timeout=0.5):
        seen.append(await feed.receive_json_from())
    return seen


def sign(key: SigningKey, payload: dict | bytes, payload_type: str = DEPLOYMENT_TYPE) -> dict:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return sign_envelope(key, payload_type, body)


@dataclass
class Tenant:
    user: object
    key: SigningKey
    api: object  # a django.test.Client logged in as the user

    def submit(self, payload: dict, *, key: SigningKey | None = None):
        envelope = sign(key or self.key, payload)
        return self.api.post(
            "/api/v1/deployments", {"envelope": envelope}, content_type="application/json"
        )


def make_tenant(username: str) -> Tenant:
    from django.test import Client

    from ledger.services import add_user_key

    user = make_user(username)
    key = SigningKey.generate()
    add_user_key(user=user, name="laptop", public_key=public_key_hex(key))
    api = Client()
    api.force_login(user)
    return Tenant(user=user, key=key, api=api)


def make_online_node(farm, key: SigningKey | None = None, *, linked: bool = True, **fields):
    """An online node; `linked`: its link to the coordinator is up, as a connected node's is."""
    from coordinator.links import link_up
    from ledger.choices import NodeStatus
    from ledger.models import Node

    key = key or SigningKey.generate()
    node = Node.objects.create(
        farm=farm,
        public_key=public_key_hex(key),
        status=NodeStatus.ONLINE,
        **{**CAPACITY, **fields},
    )
    node.signing_key = key
    if linked:
        link_up(node.pk, "test-session")
    return node


@pytest.fixture
def alice(db) -> Tenant:
    return make_tenant("alice")


@pytest.fixture
def mallory(db) -> Tenant:
    return make_tenant("mallory")


@pytest.fixture
def online_node(db):
    return make_online_node(make_farm("farm-a"))
