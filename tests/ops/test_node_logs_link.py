"""The coordinator's side of node logs over real Channels consumers (in-memory layer): the
request reaches the node's link, the answer comes back, and what can go wrong is said clearly."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from coordinator.consumers import WS_CONTEXT, NodeLinkConsumer
from coordinator.nodelogs import fetch_node_logs
from grid.errors import ServiceError
from signing.keys import b64encode, public_key_hex
from tests.conftest import make_farm
from tests.coordinator.conftest import make_online_node

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def online_node(db):
    return make_online_node(make_farm("farm-a"), linked=False)


async def linked(node, features: list[str]) -> WebsocketCommunicator:
    link = WebsocketCommunicator(NodeLinkConsumer.as_asgi(), "/ws/node/")
    assert (await link.connect())[0]
    challenge = await link.receive_json_from()
    signature = node.signing_key.sign(WS_CONTEXT + challenge["nonce"].encode()).signature
    await link.send_json_to(
        {
            "type": "hello",
            "key": public_key_hex(node.signing_key),
            "sig": b64encode(signature),
            "features": features,
        }
    )
    assert (await link.receive_json_from(timeout=5))["type"] == "welcome"
    return link


def test_the_request_reaches_the_node_and_its_answer_comes_back(online_node):
    async def scenario():
        link = await linked(online_node, ["pong", "logs"])
        fetch = asyncio.ensure_future(fetch_node_logs(online_node.pk, lines=50, after="7-0"))
        request = await link.receive_json_from(timeout=5)
        assert {k: request[k] for k in ("type", "lines", "after")} == {
            "type": "logs",
            "lines": 50,
            "after": "7-0",
        }
        lines = [{"id": "8-0", "source": "agent", "line": "hello", "extra": "dropped"}]
        await link.send_json_to(
            {"type": "logs", "id": request["id"], "lines": lines, "cursor": "8-0"}
        )
        reply = await fetch
        await link.disconnect()
        return reply

    assert async_to_sync(scenario)() == {
        "lines": [{"id": "8-0", "source": "agent", "line": "hello"}],
        "cursor": "8-0",
    }


def test_an_agent_without_the_feature_is_not_asked(online_node):
    async def scenario():
        link = await linked(online_node, ["pong"])
        try:
            await fetch_node_logs(online_node.pk)
        finally:
            assert await link.receive_nothing(timeout=0.2)
            await link.disconnect()

    with pytest.raises(ServiceError) as refused:
        async_to_sync(scenario)()
    assert (refused.value.code, refused.value.http_status) == ("logs_unsupported", 501)


def test_a_node_without_a_link_is_unreachable(online_node):
    with pytest.raises(ServiceError) as refused:
        async_to_sync(fetch_node_logs)(online_node.pk, timeout=0.3)
    assert (refused.value.code, refused.value.http_status) == ("node_unreachable", 503)
    assert f"node {online_node.pk} did not answer" in refused.value.message


def test_a_node_that_cannot_read_its_ring_says_so(online_node):
    async def scenario():
        link = await linked(online_node, ["logs"])
        fetch = asyncio.ensure_future(fetch_node_logs(online_node.pk))
        request = await link.receive_json_from(timeout=5)
        await link.send_json_to(
            {"type": "logs", "id": request["id"], "lines": [], "error": "log ring unreadable: x"}
        )
        try:
            await fetch
        finally:
            await link.disconnect()

    with pytest.raises(ServiceError) as refused:
        async_to_sync(scenario)()
    assert (refused.value.code, refused.value.http_status) == ("node_log_unreadable", 502)


@pytest.mark.parametrize("lines", [0, 1001])
def test_line_counts_out_of_range_are_refused(online_node, lines):
    with pytest.raises(ServiceError, match="lines must be between 1 and 1000"):
        async_to_sync(fetch_node_logs)(online_node.pk, lines=lines)
