"""The nonce cache's Redis backend, with one connection pool per process.

Django keeps a cache object per thread, and its Redis client keeps the connection pool on that
object; under ASGI every request runs in a thread of its own, so the stock backend opened a new
Redis connection (TCP connect and HELLO) for every signed request it checked. The pool here is
shared by the process's threads (redis-py's pools are thread-safe), keyed by the server URL.
"""

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_pools: dict[str, object] = {}
_pools_lock = threading.Lock()


class SharedPoolClient(RedisCacheClient):
    def _get_connection_pool(self, write: bool):
        url = self._servers[self._get_connection_pool_index(write)]
        pool = _pools.get(url)
        if pool is None:
            with _pools_lock:
                pool = _pools.get(url)
                if pool is None:
                    pool = self._pool_class.from_url(url, **self._pool_options)
                    _pools[url] = pool
        return pool


class SharedPoolRedisCache(RedisCache):
    """`RedisCache` whose connections are reused across the process's request threads."""

    def __init__(self, server: str, params: dict) -> None:
        super().__init__(server, params)
        self._class = SharedPoolClient

    def add_each(self, keys: list[str], value: int, timeout: int) -> list[bool]:
        """`add` for many keys in one round trip (a pipeline of SET NX EX): True where the key
        was new. Stored as `add` stores them, so either may check a key the other set."""
        client = self._cache.get_client(write=True)
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(self.make_and_validate_key(key), value, nx=True, ex=timeout)
            return [bool(done) for done in pipe.execute()]
