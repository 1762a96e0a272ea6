"""Input no client should send, sent anyway: a clear 4xx (or a close code), never a 500."""

import json

import pytest

from tests.conftest import make_user
from tests.coordinator.conftest import open_feed

pytestmark = pytest.mark.django_db

BEYOND_64_BITS = "9" * 30


@pytest.fixture
def staff_client(client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    client.force_login(make_user("operator", staff=True))
    return client


def test_an_id_beyond_64_bits_in_a_path_is_404(staff_client):
    """Found by schemathesis: the driver raised OverflowError on the foreign-key lookup."""
    response = staff_client.get(f"/api/v1/users/{BEYOND_64_BITS}/keys")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_an_id_beyond_64_bits_in_a_query_is_a_400_naming_it(staff_client):
    """Found by schemathesis: GET /api/v1/workloads?node=<30 digits> was a 500."""
    response = staff_client.get(f"/api/v1/workloads?node={BEYOND_64_BITS}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert "node" in response.json()["message"]


def test_a_node_filter_that_is_not_an_id_is_refused_not_ignored(staff_client):
    response = staff_client.get("/api/v1/workloads?node=abc")
    assert response.status_code == 400
    assert staff_client.get("/api/v1/workloads?node=7").json()["results"] == []


@pytest.mark.parametrize("query", ["limit=36893488147419103233", "offset=" + BEYOND_64_BITS])
def test_a_page_bound_beyond_64_bits_is_served_not_a_500(client, query):
    """Found by schemathesis: GET /api/v1/nodes?limit=36893488147419103233 was a 500."""
    response = client.get(f"/api/v1/nodes?{query}")
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_a_page_is_at_most_the_maximum_size(client):
    from grid.pagination import MAX_LIMIT
    from ledger.models import Node
    from tests.conftest import CAPACITY, make_farm

    farm = make_farm()
    Node.objects.bulk_create(
        Node(farm=farm, public_key=f"{n:064x}", **CAPACITY) for n in range(MAX_LIMIT + 1)
    )
    page = client.get(f"/api/v1/nodes?limit={MAX_LIMIT * 10}").json()
    assert len(page["results"]) == MAX_LIMIT and page["count"] == MAX_LIMIT + 1
    assert page["next"]


# --- the node link: a compromised node sends whatever it likes --------------------------

HOSTILE_VALUES = [
    None,
    True,
    -1,
    0,
    2**70,
    1e308,
    "x" * 100_000,
    "\u0000\ud7ff",
    [],
    {"a": {"b": [1, 2, {"c": None}]}},
    json.loads("[" * 60 + "]" * 60),
]
NODE_MESSAGES = ["accepted", "rejected", "event", "inventory", "cancel_ack", "pong", "logs"]
FIELDS = ["job_id", "attempt", "id", "status", "ts", "log", "error", "result", "state"]


def _hostile_messages(job_id: str) -> list[dict]:
    """Every message type with every field hostile at once, then each field hostile alone in
    an otherwise well-formed message about a real job (so the checks past the job lookup run)."""
    messages = []
    for kind in NODE_MESSAGES:
        for value in HOSTILE_VALUES:
            messages.append(
                {"type": kind, **dict.fromkeys([*FIELDS, "workloads", "message"], value)}
            )
    well_formed = {"job_id": job_id, "attempt": 1, "id": "1-0", "status": "running", "ts": 1}
    for kind in ("accepted", "event", "cancel_ack", "rejected"):
        for field in FIELDS:
            for value in HOSTILE_VALUES:
                messages.append({"type": kind, **well_formed, field: value})
    for value in HOSTILE_VALUES:
        messages.append({"type": "inventory", "workloads": [{"kind": value, "name": value}]})
        messages.append({"type": "inventory", "workloads": [dict.fromkeys(FIELDS, value)]})
    return messages


@pytest.mark.django_db(transaction=True)
def test_a_node_sending_hostile_messages_keeps_its_link_and_breaks_nothing(settings):
    from asgiref.sync import async_to_sync

    from coordinator.models import Job
    from tests.conftest import make_farm
    from tests.coordinator.conftest import deployment_payload, make_online_node, make_tenant
    from tests.coordinator.test_node_link import connect_node

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    alice = make_tenant("alice")
    node = make_online_node(make_farm("farm-a"), linked=False)
    assert alice.submit(deployment_payload(target={"node": node.pk})).status_code == 201
    job = Job.objects.get()
    messages = _hostile_messages(str(job.uuid))

    async def scenario() -> list[str]:
        link, welcome = await connect_node(node.signing_key)
        assert welcome["type"] == "websocket.send"
        await link.receive_json_from(timeout=5)  # the dispatch
        broken = []
        for n, message in enumerate(messages):
            await link.send_json_to(message)
            # A probe the link must answer: an event (about no job) is acknowledged by id.
            probe = f"probe-{n}"
            await link.send_json_to({"type": "event", "id": probe, "status": "running"})
            while True:
                reply = await link.receive_output(timeout=10)
                if reply["type"] != "websocket.send":
                    broken.append(f"{str(message)[:200]} closed the link: {reply}")
                    return broken
                if "internal_error" in reply["text"]:  # contained, but a bug all the same
                    broken.append(f"{str(message)[:200]} failed on the server")
                if f'"{probe}"' in reply["text"]:
                    break
        await link.disconnect()
        return broken

    assert async_to_sync(scenario)() == []
    job.refresh_from_db()
    assert job.state in ("dispatched", "accepted", "running", "succeeded", "failed")


@pytest.mark.django_db(transaction=True)
def test_the_live_feed_answers_garbage_frames_with_an_error_and_stays_up(settings):
    from asgiref.sync import async_to_sync

    user = make_user("alice")
    malformed = [
        {"text_data": "not json"},
        {"text_data": "[" * 100_000},
        {"text_data": '{"type": NaN}'},
        {"bytes_data": b"\xff\xfe\x00"},
    ]
    ignored = [
        {"text_data": json.dumps({"type": "subscribe", "deployment": 2**70})},
        {"text_data": json.dumps(["a", "list"])},
    ]

    async def scenario() -> list[dict]:
        feed = await open_feed(user)
        replies = []
        for frame in malformed:
            await feed.send_to(**frame)
            replies.append(await feed.receive_output(timeout=5))
        for frame in ignored:
            await feed.send_to(**frame)
        await feed.send_to(text_data="probe")  # the next answer must be this one's
        replies.append(await feed.receive_output(timeout=5))
        await feed.disconnect()
        return replies

    replies = async_to_sync(scenario)()
    assert [r["type"] for r in replies] == ["websocket.send"] * 5  # no close among them
    assert all(json.loads(r["text"])["error"] == "malformed_json" for r in replies)
