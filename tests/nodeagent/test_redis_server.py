"""The agent's own redis-server: durable settings, restart after a crash, clear start errors."""

import os
import signal
import time
from pathlib import Path

import pytest

from nodeagent.jobstore import connect
from nodeagent.redis_server import RedisServer, RedisStartError


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_runs_with_aof_and_noeviction_on_a_unix_socket(redis_server: RedisServer):
    client = connect(redis_server.url)
    assert redis_server.url.startswith("unix://")
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert client.config_get("port") == {"port": "0"}


def test_a_long_data_path_falls_back_to_loopback_tcp(tmp_path: Path):
    deep = tmp_path / ("d" * 90)
    with RedisServer(deep) as server:
        assert server.url.startswith("redis://127.0.0.1:")
        assert connect(server.url).ping()


def test_restarted_after_a_crash_with_its_data(redis_server: RedisServer):
    client = connect(redis_server.url)
    client.set("kept", "yes")
    time.sleep(1.2)  # appendfsync everysec
    old = redis_server.process.pid
    os.kill(old, signal.SIGKILL)
    _wait(lambda: redis_server.restarts == 1 and not redis_server.down)
    assert redis_server.process.pid != old
    assert client.get("kept") == "yes"


def test_stop_shuts_the_server_down(tmp_path: Path):
    server = RedisServer(tmp_path / "r").start()
    process = server.process
    server.stop()
    assert process.poll() is not None
    assert not server.down


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path: Path):
    server = RedisServer(tmp_path / "r")
    server._config = lambda: "appendonly yes\nno-such-directive 1\n"  # type: ignore[method-assign]
    with pytest.raises(RedisStartError, match=r"no-such-directive|Bad directive"):
        server.start()


def test_a_missing_binary_is_a_clear_error(tmp_path: Path):
    with pytest.raises(RedisStartError, match="cannot run 'no-redis-here'"):
        RedisServer(tmp_path / "r", binary="no-redis-here").start()


def test_the_agent_runs_its_redis_and_runners_and_stops_them_on_sigterm(tmp_path: Path):
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    data = tmp_path / "node"
    agent = subprocess.Popen(
        [
            *(sys.executable, "-m", "nodeagent", "run", "--ledger", "http://127.0.0.1:9"),
            *("--farm", "1", "--data", str(data), "--runners", "3"),
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait(
            lambda: (
                (data / "agent-state.json").exists() and (data / "redis" / "redis.sock").exists()
            )
        )
        status = subprocess.run(
            [sys.executable, "-m", "nodeagent", "status", "--data", str(data)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        shown = json.loads(status.stdout)
        assert shown["redis"].startswith("unix://")
        assert shown["jobs"] == {"queued": 0, "running": 0, "outbox": 0, "dead": 0}
        children = subprocess.run(
            ["pgrep", "-P", str(agent.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(children) >= 4  # redis-server, 3 runners (and multiprocessing's tracker)
    finally:
        agent.send_signal(signal.SIGTERM)
        output = agent.communicate(timeout=30)[0]
    assert agent.returncode == 0, output
    _wait(lambda: not any(_alive(pid) for pid in children))


def _alive(pid: str) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
