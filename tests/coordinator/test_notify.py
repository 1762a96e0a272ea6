"""Channel-layer messages announce committed changes: a layer that is down must not turn a stored
change into an error for the caller (the catch-up poll and stored events carry it instead)."""

import logging

import pytest
from asgiref.sync import async_to_sync
from channels_redis.core import RedisChannelLayer
from django.utils import timezone

from box.grid import free_port
from coordinator import notify, services
from coordinator.models import Job, JobEvent
from tests.coordinator.conftest import deployment_payload, feed_frames, open_feed


def test_messages_the_channel_layer_cannot_take_are_logged_not_raised(monkeypatch, caplog):
    down = RedisChannelLayer(hosts=[{"address": f"redis://127.0.0.1:{free_port()}/0"}])
    monkeypatch.setattr(notify, "get_channel_layer", lambda: down)
    caplog.set_level(logging.WARNING, logger="coordinator.notify")
    async_to_sync(notify.send_all)([("node-1", {"type": "link.wake"}), ("user-1", {"type": "x"})])
    assert "channel layer unavailable" in caplog.text
    assert "2 message(s) left to the catch-up poll" in caplog.text


@pytest.mark.django_db
def test_a_batchs_events_for_one_owner_reach_the_feed_each_once_and_in_order(alice, online_node):
    """A link's batch announces its events together; they travel as one channel message per
    owner (fewer Redis round trips in a burst) and the feed still tells each, in order."""
    response = alice.submit(deployment_payload(target={"node": online_node.pk}))
    job = Job.objects.get(deployment_id=response.json()["id"])
    dispatched = job.events.latest("id")
    stored = [
        JobEvent.objects.create(job=job, attempt=1, status=status, log=log, ts=timezone.now())
        for status, log in (("accepted", ""), ("running", "start"), ("succeeded", "end"))
    ]
    shaped = services.events_between(
        owner_id=alice.user.pk,
        deployment_id=job.deployment_id,
        after=dispatched.pk,
        before=stored[-1].pk + 1,
        state="running",
    )
    group = notify.user_group(alice.user.pk)
    messages = [(group, {"type": "deployment.event", "event": event}) for event in shaped]
    messages.insert(1, (notify.node_group(online_node.pk), {"type": "link.wake"}))

    async def scenario():
        feed = await open_feed(alice.user)
        await notify.send_all(messages)
        seen = await feed_frames(feed)
        await feed.disconnect()
        return seen

    seen = async_to_sync(scenario)()
    assert [e["seq"] for e in seen] == [e.pk for e in stored]
    assert [e["log"] for e in seen] == ["", "start", "end"]
