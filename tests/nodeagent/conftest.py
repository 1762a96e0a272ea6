"""A real `redis-server` per test, in the test's tmp dir, started the way the agent starts it."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.jobstore import JobStore, connect
from nodeagent.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer(tmp_path / "redis", watch_every=0.1) as server:
        yield server


@pytest.fixture
def store(redis_server: RedisServer) -> JobStore:
    return JobStore(connect(redis_server.url))
