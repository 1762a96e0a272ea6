"""The herodb SAL against a real redis-server: what a user gets, what they are refused, and
how a database outlives the agent and a crash."""

import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sal.herodb import DbState, HeroDB, HeroDBError, HeroDBNotFound

PASSWORD = "correct-horse-battery-staple"
PORTS = (23100, 23399)


@pytest.fixture
def herodb(tmp_path):
    """A HeroDB SAL with its own state root; every database it made is deleted afterwards."""
    sal = HeroDB(tmp_path / "state", port_range=PORTS)
    yield sal
    for info in sal.list_dbs():
        sal.delete(info.db_id)


def make_db(sal: HeroDB, tmp_path: Path, db_id: str = "db1", **spec):
    data_dir = spec.pop("data_dir", None) or tmp_path / f"data-{db_id}"
    data_dir.mkdir(exist_ok=True)
    spec = {"password": PASSWORD, "max_memory_mb": 16, "bind": "127.0.0.1", **spec}
    return sal.create(db_id, data_dir=data_dir, **spec)


def connect(info, password: str = PASSWORD) -> redis.Redis:
    return redis.Redis(
        host=info.bind,
        port=info.port,
        password=password,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),  # a refused login fails at once, not after retries
    )


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def crash(pid: int) -> None:
    """kill -9, and wait until the process is really gone (the signal is asynchronous)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} survived SIGKILL"
        time.sleep(0.02)


def test_a_database_keeps_what_its_owner_writes(herodb, tmp_path):
    info = make_db(herodb, tmp_path)
    assert info.state == DbState.RUNNING
    assert info.address == f"127.0.0.1:{info.port}"
    assert PORTS[0] <= info.port <= PORTS[1]
    client = connect(info)
    client.set("greeting", "hello")
    assert client.get("greeting") == b"hello"
    now = herodb.info("db1")
    assert now.keys == 1
    assert now.used_memory_bytes > 0
    assert now.data_bytes > 0  # the SET is in the AOF


def test_a_wrong_or_missing_password_is_refused(herodb, tmp_path):
    info = make_db(herodb, tmp_path)
    with pytest.raises(redis.AuthenticationError):
        connect(info, password="not-the-password-at-all").ping()
    with socket.create_connection(("127.0.0.1", info.port), timeout=5) as raw:
        raw.sendall(b"GET anything\r\nKEYS *\r\n")
        replies = b""
        while replies.count(b"\r\n") < 2:
            replies += raw.recv(4096)
    assert replies.count(b"-NOAUTH Authentication required.") == 2


@pytest.mark.parametrize(
    "command",
    [
        ("CONFIG", "GET", "requirepass"),
        ("CONFIG", "SET", "maxmemory", "0"),
        ("SHUTDOWN",),
        ("ACL", "SETUSER", "intruder", "on", ">pw", "+@all"),
        ("CLIENT", "KILL", "USER", "zos-admin"),
        ("MIGRATE", "127.0.0.1", "6379", "k", "0", "1000"),
        ("REPLICAOF", "127.0.0.1", "6379"),
        ("MODULE", "LOAD", "/tmp/evil.so"),
        ("DEBUG", "SLEEP", "10"),
        ("BGSAVE",),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_the_owner_cannot_run_admin_commands(herodb, tmp_path, command):
    client = connect(make_db(herodb, tmp_path))
    with pytest.raises(redis.ResponseError):
        client.execute_command(*command)
    assert client.ping()


def test_a_full_database_refuses_writes_and_evicts_nothing(herodb, tmp_path):
    info = make_db(herodb, tmp_path, max_memory_mb=8)
    client = connect(info)
    value = b"x" * 64 * 1024
    written = 0
    with pytest.raises(redis.exceptions.OutOfMemoryError, match="used memory > 'maxmemory'"):
        for written in range(1000):
            client.set(f"k{written}", value)
    assert written > 50  # several MiB fitted before the limit
    assert client.dbsize() == written
    assert client.get("k0") == value
    assert herodb.info("db1").used_memory_bytes <= 9 * 2**20


def test_create_is_idempotent_and_refuses_a_different_spec(herodb, tmp_path):
    first = make_db(herodb, tmp_path)
    again = make_db(herodb, tmp_path)
    assert (again.port, again.pid) == (first.port, first.pid)
    assert make_db(herodb, tmp_path, port=first.port).pid == first.pid
    with pytest.raises(HeroDBError, match=r"different max_memory_mb; delete it first"):
        make_db(herodb, tmp_path, max_memory_mb=32)
    with pytest.raises(HeroDBError, match=r"different password"):
        make_db(herodb, tmp_path, password="another-long-password")

    crash(first.pid)
    revived = make_db(herodb, tmp_path)  # the same request again starts a stopped database
    assert (revived.state, revived.port) == (DbState.RUNNING, first.port)
    assert [(d.db_id, d.state) for d in herodb.list_dbs()] == [("db1", DbState.RUNNING)]


def listener(port: int) -> socket.socket:
    """Something else listening on a port of the range (SO_REUSEADDR: earlier tests' ports
    may still be in TIME_WAIT)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_ports_never_collide(herodb, tmp_path):
    with listener(PORTS[0]):
        a = make_db(herodb, tmp_path, "a")
        b = make_db(herodb, tmp_path, "b")
    assert PORTS[0] not in (a.port, b.port)
    assert a.port != b.port
    with pytest.raises(HeroDBError, match=f"port {a.port} is already used by herodb 'a'"):
        make_db(herodb, tmp_path, "c", port=a.port)
    with pytest.raises(HeroDBError, match="already used by herodb 'a'"):
        make_db(herodb, tmp_path, "d", data_dir=tmp_path / "data-a")


def test_concurrent_creates_from_several_agents_get_distinct_ports(herodb, tmp_path):
    agents = [herodb, HeroDB(tmp_path / "state", port_range=PORTS)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        infos = list(pool.map(lambda i: make_db(agents[i % 2], tmp_path, f"db{i}"), range(6)))
    assert len({info.port for info in infos}) == 6
    for info in infos:
        assert connect(info).ping()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"db_id": "../etc"}, "invalid herodb id"),
        ({"db_id": ""}, "invalid herodb id"),
        ({"password": "short"}, "16-128 characters long"),
        ({"password": "has a space in the middle"}, "no spaces, quotes or backslashes"),
        ({"password": "quote'quote'quote'quote"}, "no spaces, quotes or backslashes"),
        ({"max_memory_mb": 1}, "between 8 and"),
        ({"max_memory_mb": "64"}, "whole number"),
        ({"port": 80}, "outside this node's herodb range"),
        ({"bind": "0.0.0.0"}, "not a wildcard"),
        ({"bind": "::"}, "not a wildcard"),
        ({"bind": "node.example"}, "not an IP address"),
        ({"data_dir": "relative/dir"}, "must be an absolute path"),
        ({"data_dir": "/nonexistent/herodb"}, "does not exist"),
    ],
)
def test_invalid_requests_are_refused_clearly(herodb, tmp_path, change, message):
    spec = {
        "db_id": "db1",
        "password": PASSWORD,
        "max_memory_mb": 16,
        "data_dir": tmp_path,
        "bind": "127.0.0.1",
        **change,
    }
    with pytest.raises(HeroDBError, match=message):
        herodb.create(**spec)
    assert herodb.list_dbs() == []


def test_a_server_that_cannot_start_says_why(herodb, tmp_path):
    with (
        listener(PORTS[1]),
        pytest.raises(HeroDBError, match=r"(?s)exited while starting.*in use"),
    ):
        make_db(herodb, tmp_path, port=PORTS[1])
    assert herodb.list_dbs() == []
    assert not (tmp_path / "state" / "db1").exists()


def test_a_restarted_agent_adopts_servers_and_data_survives_a_kill(herodb, tmp_path):
    info = make_db(herodb, tmp_path)
    assert os.getsid(info.pid) == info.pid  # its own session: the agent's signals miss it
    connect(info).set("survivor", "yes")

    agent_after_restart = HeroDB(tmp_path / "state", port_range=PORTS)
    adopted = agent_after_restart.adopt()
    assert [(d.db_id, d.pid, d.keys) for d in adopted] == [("db1", info.pid, 1)]

    crash(info.pid)
    assert agent_after_restart.info("db1").state == DbState.STOPPED
    assert agent_after_restart.adopt() == []

    restarted = agent_after_restart.ensure_running()
    assert [(d.db_id, d.port, d.state) for d in restarted] == [("db1", info.port, DbState.RUNNING)]
    assert restarted[0].pid != info.pid
    assert connect(info).get("survivor") == b"yes"
    assert agent_after_restart.ensure_running() == []


def test_a_database_whose_volume_is_gone_is_reported_by_ensure_running(herodb, tmp_path):
    info = make_db(herodb, tmp_path)
    crash(info.pid)
    (tmp_path / "data-db1" / "appendonlydir").rename(tmp_path / "moved-away")
    (tmp_path / "data-db1").rmdir()
    with pytest.raises(HeroDBError, match=r"'db1'.*data directory .* is missing"):
        herodb.ensure_running()


def test_delete_leaves_no_process_no_state_and_no_port(herodb, tmp_path):
    info = make_db(herodb, tmp_path)
    herodb.delete("db1")
    assert not alive(info.pid)
    assert not (tmp_path / "state" / "db1").exists()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", info.port)):
        pass
    with pytest.raises(HeroDBNotFound):
        herodb.info("db1")
    herodb.delete("db1")  # unknown id: nothing to do
    assert herodb.list_dbs() == []


def test_a_database_listens_on_an_ipv6_address(herodb, tmp_path):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    info = make_db(herodb, tmp_path, bind="::1")
    assert info.address == f"[::1]:{info.port}"
    client = connect(info)
    client.set("v6", "ok")
    assert client.get("v6") == b"ok"


def test_data_lives_on_a_quota_subvolume_and_a_full_quota_refuses_writes(btrfs_pool, herodb):
    """The node puts each database on its own subvolume; the quota, not the node's disk, is
    what a user can fill. Redis refuses further writes (MISCONF) and keeps serving reads."""
    volume = btrfs_pool.create_subvolume("herodb-db1", limit=8 * 2**20)
    # Memory far above the quota, so the quota is what stops the writes: with appendfsync
    # everysec Redis acknowledges writes while a background fsync runs and only then meets
    # the full quota, so how many writes fit varies with the machine's load.
    info = herodb.create("db1", PASSWORD, 256, volume, "127.0.0.1")
    assert (volume / "appendonlydir").is_dir()
    client = connect(info)
    value = b"v" * 64 * 1024
    written = 0
    with pytest.raises(redis.ResponseError, match="MISCONF Errors writing to the AOF file"):
        for written in range(3500):
            client.set(f"k{written}", value)
    assert written > 64  # several MiB fitted before the quota was full
    assert client.get("k0") == value
    assert client.dbsize() == written
    assert herodb.info("db1").data_bytes <= 8 * 2**20

    herodb.delete("db1")
    btrfs_pool.delete_subvolume("herodb-db1")  # the caller's part of deleting a database
    assert not volume.exists()
