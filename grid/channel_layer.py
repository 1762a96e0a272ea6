"""The Redis channel layer with a connection pool that waits instead of failing.

channels_redis gives redis-py's default pool, which holds at most 100 connections and raises
`MaxConnectionsError` at the 101st concurrent command. In a reconnect storm a worker takes
hundreds of node links at once, each joining its node's group (a Redis command) at hello: on the
production profile a worker killed under 2,000 links sent 1,000 of them to the other worker, and
26 of their hellos died on that error (docs/performance.md). With a blocking pool a command waits
for a free connection (at most `timeout` seconds) and the number of connections stays bounded.
"""

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class BlockingPoolRedisChannelLayer(RedisChannelLayer):
    def create_pool(self, index: int) -> BlockingConnectionPool:
        host = dict(self.hosts[index])
        return BlockingConnectionPool.from_url(host.pop("address"), **host)
