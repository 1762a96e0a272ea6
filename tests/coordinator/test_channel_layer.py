"""The production channel layer under a burst of joins larger than its connection pool, against
a real redis-server: every link of a reconnect storm joins its node's group at hello."""

import asyncio
import shutil
from pathlib import Path

import pytest

from grid.channel_layer import BlockingPoolRedisChannelLayer
from nodeagent.redis_server import RedisServer

POOL = 3
LINKS = 60


@pytest.fixture
def redis_url(tmp_path: Path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer(tmp_path / "redis", watch_every=0.1) as server:
        yield server.url


def test_a_burst_of_joins_beyond_the_pool_waits_for_connections_and_all_succeed(redis_url):
    async def storm() -> list[dict]:
        layer = BlockingPoolRedisChannelLayer(
            hosts=[{"address": redis_url, "max_connections": POOL, "timeout": 30}]
        )
        channels = [await layer.new_channel() for _ in range(LINKS)]
        await asyncio.gather(
            *(layer.group_add(f"node.{i}", name) for i, name in enumerate(channels))
        )
        await asyncio.gather(
            *(layer.group_send(f"node.{i}", {"type": "link.wake", "i": i}) for i in range(LINKS))
        )
        received = [await layer.receive(name) for name in channels]
        await layer.flush()
        return received

    received = asyncio.run(storm())
    assert [m["i"] for m in received] == list(range(LINKS))
