"""Channel-layer messages announce committed changes: a layer that is down must not turn a stored
change into an error for the caller (the catch-up poll and stored events carry it instead)."""

import logging

from asgiref.sync import async_to_sync
from channels_redis.core import RedisChannelLayer

from box.grid import free_port
from coordinator import notify


def test_messages_the_channel_layer_cannot_take_are_logged_not_raised(monkeypatch, caplog):
    down = RedisChannelLayer(hosts=[{"address": f"redis://127.0.0.1:{free_port()}/0"}])
    monkeypatch.setattr(notify, "get_channel_layer", lambda: down)
    caplog.set_level(logging.WARNING, logger="coordinator.notify")
    async_to_sync(notify.send_all)([("node-1", {"type": "link.wake"}), ("user-1", {"type": "x"})])
    assert "channel layer unavailable" in caplog.text
    assert "2 message(s) left to the catch-up poll" in caplog.text
