"""The node's log ring: secrets never leave the node, the ring stays bounded, tails page on."""

import logging

import pytest

from nodeagent.jobstore import connect
from nodeagent.logring import LOG_STREAM, REDACTED, RingHandler, redact, tail

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
