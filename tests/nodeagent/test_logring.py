"""The node's log ring: secrets never leave the node, the ring stays bounded, tails page on."""

import logging
import time

import pytest

from nodeagent import logring
from nodeagent.jobstore import connect
from nodeagent.logring import (
    LOG_STREAM,
    REDACTED,
    DeferredRingHandler,
    RingHandler,
    redact,
    tail,
)

SEED = "9f" * 32


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("registering with zos.enroll=zet_AbC123dEf456_gh farm=3", "zet_AbC123dEf456_gh"),
        ("refused token zet_AbC123dEf456_gh (expired)", "zet_AbC123dEf456_gh"),
        ("herodb created with password=hunter2hunter2", "hunter2hunter2"),
        ('spec {"name": "db", "password": "s3cr3t-pw"}', "s3cr3t-pw"),
        ("spec {'name': 'db', 'passwd': 's3cr3t-pw'}", "s3cr3t-pw"),
        ("api_key: abcdef0123456789", "abcdef0123456789"),
        ("node seed=" + SEED, SEED),
        ("GET /x Authorization: ZOS-Ed25519 key=ab,ts=1,nonce=cd,sig=QUJD", "sig=QUJD"),
        ('headers {"Authorization": "Token 0123456789abcdef0123"}', "0123456789abcdef0123"),
        ("calling with Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("redis at redis://:p4ssw0rd@127.0.0.1:6379/0", "p4ssw0rd"),
        (
            "key -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n"
            "-----END OPENSSH PRIVATE KEY----- done",
            "b3BlbnNzaC1rZXktdjE",
        ),
    ],
)
def test_redact_removes_the_secret_and_keeps_the_rest(line: str, secret: str) -> None:
    out = redact(line)
    assert secret not in out
    assert REDACTED in out
    assert out.split()[0] == line.split()[0]  # the line still says what happened


def test_redact_removes_known_values_wherever_they_appear() -> None:
    assert redact("cmdline said xyz-secret-123 here", ["xyz-secret-123"]) == (
        f"cmdline said {REDACTED} here"
    )


def test_redact_leaves_ordinary_lines_alone() -> None:
    line = "job 1a2b3c4d attempt 2 queued on node " + "ab" * 32
    assert redact(line) == line


def test_ring_handler_redacts_bounds_and_tails_with_a_cursor(redis_server) -> None:
    handler = RingHandler(redis_server.url, source="runner-1", maxlen=50)
    logger = logging.getLogger("test.logring")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("vm created with password=hunter2hunter2")
        for i in range(300):
            logger.info("line %d", i)
    finally:
        logger.removeHandler(handler)
        handler.close()
    client = connect(redis_server.url)
    assert client.xlen(LOG_STREAM) < 300  # capped (MAXLEN ~ is approximate, never unbounded)
    assert "hunter2" not in "".join(v for _, f in client.xrange(LOG_STREAM) for v in f.values())

    last = tail(client, lines=5)
    assert [entry["line"].rsplit(" ", 1)[1] for entry in last["lines"]] == [
        "295",
        "296",
        "297",
        "298",
        "299",
    ]
    assert last["lines"][0]["source"] == "runner-1"
    assert tail(client, after=last["cursor"]) == {"lines": [], "cursor": last["cursor"]}
    client.xadd(LOG_STREAM, {"source": "agent", "line": "enroll with zet_plantedSecret99"})
    new = tail(client, after=last["cursor"], known=["plantedSecret99"])
    assert len(new["lines"]) == 1 and "plantedSecret99" not in new["lines"][0]["line"]


def test_a_node_without_redis_drops_lines_quickly_instead_of_blocking(tmp_path) -> None:
    handler = RingHandler(f"unix://{tmp_path}/no-redis.sock", source="agent")
    tries = []
    real_xadd = handler._redis.xadd
    handler._redis.xadd = lambda *a, **k: tries.append(1) or real_xadd(*a, **k)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    for _ in range(50):
        handler.handle(record)
    handler.close()
    assert handler.dropped == 50
    assert len(tries) == 1  # the first line failed; the rest were dropped without trying


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("nodeagent.launcher", logging.INFO, __file__, 1, message, None, None)


def wait_for_lines(client, count: int) -> list[dict]:
    deadline = time.monotonic() + 20
    while len(found := tail(client, lines=100)["lines"]) < count:
        assert time.monotonic() < deadline, f"the ring has {found}, expected {count} lines"
        time.sleep(0.05)
    return found


def test_launcher_lines_wait_until_the_agent_names_a_redis_then_arrive_in_order(
    redis_server,
) -> None:
    """The launcher logs before the agent started Redis: nothing is lost, nothing is leaked."""
    where: list[str | None] = [None]
    handler = DeferredRingHandler(lambda: where[0], source="launcher", flush_every=0.05)
    try:
        handler.handle(record("starting agent built-in"))
        handler.handle(record("agent exited with code 1; enroll=zet_plantedSecret99"))
        client = connect(redis_server.url)
        assert client.xlen(LOG_STREAM) == 0
        where[0] = redis_server.url  # the agent wrote its state file; no new line is logged
        lines = wait_for_lines(client, 2)
    finally:
        handler.close()
    assert [(e["source"], e["line"].split(": ", 1)[1]) for e in lines] == [
        ("launcher", "starting agent built-in"),
        ("launcher", "agent exited with code 1; enroll=[REDACTED]"),
    ]


def test_launcher_lines_are_kept_while_redis_is_down_up_to_the_buffer(
    redis_server, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(logring, "PAUSE_AFTER_FAILURE", 0.1)
    where = [f"unix://{tmp_path}/agent-is-down.sock"]
    handler = DeferredRingHandler(lambda: where[0], source="launcher", buffer=3, flush_every=0.05)
    try:
        for i in range(5):
            handler.handle(record(f"n{i}"))
        assert handler.dropped == 2  # the two oldest made room
        where[0] = redis_server.url  # the agent is back, with its Redis
        lines = wait_for_lines(connect(redis_server.url), 3)
    finally:
        handler.close()
    assert [e["line"].rsplit(" ", 1)[1] for e in lines] == ["n2", "n3", "n4"]
