"""The node link and the owner's live feed over real Channels consumers (in-memory layer)."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from nacl.signing import SigningKey

from contracts.payload_types import DISPATCH_TYPE
from coordinator.consumers import WS_CONTEXT, DeploymentFeedConsumer, NodeLinkConsumer
from coordinator.models import Job
from coordinator.notify import node_group
from signing.keys import b64decode, b64encode, public_key_hex
from tests.coordinator.conftest import deployment_payload, feed_frames, open_feed

pytestmark = pytest.mark.django_db(transaction=True)


async def connect_node(
    key: SigningKey, *, features: list[str] | None = None
) -> tuple[WebsocketCommunicator, dict]:
    link = WebsocketCommunicator(NodeLinkConsumer.as_asgi(), "/ws/node/")
    connected, _ = await link.connect()
    assert connected
    challenge = await link.receive_json_from()
    assert challenge["type"] == "challenge"
    signature = key.sign(WS_CONTEXT + challenge["nonce"].encode()).signature
    hello = {"type": "hello", "key": public_key_hex(key), "sig": b64encode(signature)}
    await link.send_json_to({**hello, **({"features": features} if features else {})})
    return link, await link.receive_output(timeout=5)


def _payload(envelope: dict) -> dict:
    assert envelope["payloadType"] == DISPATCH_TYPE
    return json.loads(b64decode(envelope["payload"], what="payload"))


def test_a_node_with_a_bad_signature_is_refused(online_node):
    async def scenario():
        link = WebsocketCommunicator(NodeLinkConsumer.as_asgi(), "/ws/node/")
        await link.connect()
        await link.receive_json_from()
        forged = SigningKey.generate().sign(b"something else").signature
        await link.send_json_to(
            {"type": "hello", "key": online_node.public_key, "sig": b64encode(forged)}
        )
        return await link.receive_output(timeout=5)

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": 4401}


def test_an_unknown_node_is_refused():
    async def scenario():
        _, reply = await connect_node(SigningKey.generate())
        return reply

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": 4403}


def test_dispatch_accept_event_ack_and_redelivery(alice, online_node):
    job_id = None

    async def first_session():
        nonlocal job_id
        link, welcome = await connect_node(online_node.signing_key)
        hello = json.loads(welcome["text"])
        # The coordinator's clock: a node whose own is off checks expiries by it.
        sent_at = hello.pop("time")
        assert hello == {"type": "welcome", "node": online_node.pk}
        dispatch = await link.receive_json_from(timeout=5)
        assert dispatch["type"] == "dispatch"
        job_id = _payload(dispatch["envelope"])["job_id"]
        assert abs(_payload(dispatch["envelope"])["issued_at"] - sent_at) < 60
        await link.disconnect()  # dropped before acknowledging

    async def second_session():
        link, _ = await connect_node(online_node.signing_key)
        dispatch = await link.receive_json_from(timeout=5)
        assert _payload(dispatch["envelope"])["job_id"] == job_id  # re-sent after reconnect
        await link.send_json_to({"type": "accepted", "job_id": job_id, "attempt": 1})
        event = {"type": "event", "id": "5-0", "job_id": job_id, "attempt": 1}
        await link.send_json_to({**event, "status": "succeeded", "result": {"ok": True}})
        ack = await link.receive_json_from(timeout=5)
        await link.disconnect()
        return ack

    response = alice.submit(deployment_payload(target={"node": online_node.pk}))
    assert response.status_code == 201
    async_to_sync(first_session)()
    assert async_to_sync(second_session)() == {"type": "ack", "ids": ["5-0"]}
    job = Job.objects.get(uuid=job_id)
    assert job.state == "succeeded"
    assert job.result == {"ok": True}


def test_a_job_submitted_while_the_node_is_linked_is_sent_by_its_push_once(alice, online_node):
    """The submit dispatches the job and its push carries the signed dispatch; the link sends
    it as it comes, and a later catch-up read of the node's work does not send it again."""

    async def scenario():
        link, _ = await connect_node(online_node.signing_key)
        submit = database_sync_to_async(alice.submit)
        response = await submit(deployment_payload(target={"node": online_node.pk}))
        dispatch = await link.receive_json_from(timeout=5)
        await get_channel_layer().group_send(node_group(online_node.pk), {"type": "link.wake"})
        again = not await link.receive_nothing(timeout=0.5)
        await link.disconnect()
        return response, dispatch, again

    response, dispatch, again = async_to_sync(scenario)()
    assert response.status_code == 201 and response.json()["status"] == "dispatched"
    job = Job.objects.get(deployment_id=response.json()["id"])
    assert dispatch["type"] == "dispatch"
    assert _payload(dispatch["envelope"])["job_id"] == job.uuid.hex
    assert not again
    assert list(job.events.order_by("id").values_list("status", flat=True)) == [
        "queued",
        "dispatched",
    ]


def test_events_reach_the_owner_and_nobody_else(alice, mallory, online_node):
    async def scenario():
        feeds = {}
        for tenant in (alice, mallory):
            feeds[tenant.user.username] = await open_feed(tenant.user)
        link, _ = await connect_node(online_node.signing_key)
        dispatch = await link.receive_json_from(timeout=5)
        job_id = _payload(dispatch["envelope"])["job_id"]
        await link.send_json_to(
            {
                "type": "event",
                "id": "1-0",
                "job_id": job_id,
                "attempt": 1,
                "status": "running",
                "log": "secret of alice",
            }
        )
        await link.receive_json_from(timeout=5)
        seen = await feed_frames(feeds["alice"])
        leaked = not await feeds["mallory"].receive_nothing(timeout=0.5)
        for communicator in (link, *feeds.values()):
            await communicator.disconnect()
        return seen, leaked

    response = alice.submit(deployment_payload(target={"node": online_node.pk}))
    assert response.status_code == 201
    seen, leaked = async_to_sync(scenario)()
    assert any(e.get("log") == "secret of alice" for e in seen)
    assert {e["deployment"] for e in seen} == {response.json()["id"]}
    assert not leaked


def test_a_feed_tells_an_event_that_was_stored_but_never_pushed_once_and_in_order(
    alice, online_node
):
    """A worker killed between storing an event and pushing it: the feed that hears the next
    event of that deployment sends the stored one first; its own push, if it comes, is skipped."""
    from channels.layers import get_channel_layer
    from django.utils import timezone

    from coordinator.models import JobEvent
    from coordinator.notify import user_group
    from coordinator.services import events_between

    response = alice.submit(deployment_payload(target={"node": online_node.pk}))
    job = Job.objects.get(deployment_id=response.json()["id"])
    stored = [
        JobEvent.objects.create(
            job=job, attempt=1, status=status, log=log, ts=timezone.now(), stream_id=""
        )
        for status, log in (("dispatched", ""), ("running", "start"), ("running", "end"))
    ]

    def pushed(event: JobEvent) -> dict:
        shaped = events_between(
            owner_id=alice.user.pk,
            deployment_id=job.deployment_id,
            after=event.pk - 1,
            before=event.pk + 1,
            state="running",
        )
        return {"type": "deployment.event", "event": shaped[0]}

    messages = [pushed(stored[0]), pushed(stored[2]), pushed(stored[1])]  # [1] pushed late

    async def scenario():
        feed = await open_feed(alice.user)
        for message in messages:
            await get_channel_layer().group_send(user_group(alice.user.pk), message)
        seen = await feed_frames(feed)
        await feed.disconnect()
        return seen

    seen = async_to_sync(scenario)()
    assert [e["seq"] for e in seen] == [e.pk for e in stored]
    assert [e["log"] for e in seen] == ["", "start", "end"]
    assert seen[1]["state"] == "running" and seen[1]["deployment"] == job.deployment_id


def test_an_anonymous_feed_is_closed():
    async def scenario():
        from django.contrib.auth.models import AnonymousUser

        feed = WebsocketCommunicator(DeploymentFeedConsumer.as_asgi(), "/ws/deployments/")
        feed.scope["user"] = AnonymousUser()
        connected, _ = await feed.connect()
        return connected

    assert async_to_sync(scenario)() is False


def test_the_cli_follows_with_its_api_token_and_a_wrong_token_is_refused(alice):
    from rest_framework.authtoken.models import Token

    from coordinator.ws_auth import SessionOrTokenAuth

    token = Token.objects.create(user=alice.user).key

    async def connect(header: str) -> bool:
        feed = WebsocketCommunicator(
            SessionOrTokenAuth(DeploymentFeedConsumer.as_asgi()),
            "/ws/deployments/",
            headers=[(b"authorization", header.encode())],
        )
        connected, _ = await feed.connect()
        if connected:
            await feed.disconnect()
        return connected

    assert async_to_sync(connect)(f"Token {token}") is True
    assert async_to_sync(connect)("Token not-a-real-token") is False


def test_a_hello_with_a_recased_key_is_refused(online_node):
    """The link names nodes by key hex too: only the canonical lowercase spelling is accepted."""

    async def scenario():
        link = WebsocketCommunicator(NodeLinkConsumer.as_asgi(), "/ws/node/")
        await link.connect()
        challenge = await link.receive_json_from()
        key = online_node.signing_key
        signature = key.sign(WS_CONTEXT + challenge["nonce"].encode()).signature
        await link.send_json_to(
            {"type": "hello", "key": public_key_hex(key).upper(), "sig": b64encode(signature)}
        )
        return await link.receive_output(timeout=5)

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": 4401}


def test_a_message_nested_100000_deep_gets_an_error_and_the_link_lives_on(online_node):
    """Attack: a frame nested 100,000 deep raised RecursionError inside the consumer."""

    async def scenario():
        link, welcome = await connect_node(online_node.signing_key)
        assert welcome["type"] == "websocket.send"
        await link.send_to(text_data="[" * 100_000 + "]" * 100_000)
        error = await link.receive_json_from(timeout=5)
        await link.send_to(text_data="{not json")
        error2 = await link.receive_json_from(timeout=5)
        await link.send_json_to({"type": "inventory", "workloads": []})
        await link.receive_nothing(timeout=0.3)
        await link.disconnect()
        return error, error2

    error, error2 = async_to_sync(scenario)()
    assert (error["type"], error["error"]) == ("error", "malformed_json")
    assert error2["error"] == "malformed_json"


def test_a_feed_tells_the_first_events_stored_since_it_connected_that_were_never_pushed(
    alice, online_node
):
    """A worker killed before pushing a deployment's first events after the feed connected: the
    feed, first hearing a later event of it, sends those stored events before it; events stored
    before the feed connected are not sent."""
    from channels.layers import get_channel_layer
    from django.utils import timezone

    from coordinator.models import JobEvent
    from coordinator.notify import user_group
    from coordinator.services import events_between

    response = alice.submit(deployment_payload(target={"node": online_node.pk}))
    job = Job.objects.get(deployment_id=response.json()["id"])

    def store(status: str, log: str) -> JobEvent:
        return JobEvent.objects.create(
            job=job, attempt=1, status=status, log=log, ts=timezone.now(), stream_id=""
        )

    async def scenario():
        feed = await open_feed(alice.user)
        stored = [
            await database_sync_to_async(store)(status, log)
            for status, log in (("dispatched", ""), ("accepted", ""), ("running", "start"))
        ]
        shaped = await database_sync_to_async(events_between)(
            owner_id=alice.user.pk,
            deployment_id=job.deployment_id,
            after=stored[-1].pk - 1,
            before=stored[-1].pk + 1,
            state="running",
        )
        await get_channel_layer().group_send(
            user_group(alice.user.pk), {"type": "deployment.event", "event": shaped[0]}
        )
        seen = await feed_frames(feed)
        await feed.disconnect()
        return stored, seen

    stored, seen = async_to_sync(scenario)()
    assert [e["seq"] for e in seen] == [e.pk for e in stored]
    assert [e["status"] for e in seen] == ["dispatched", "accepted", "running"]
