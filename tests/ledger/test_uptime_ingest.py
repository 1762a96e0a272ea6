"""Uptime reports through the ASGI application, as a worker serves them (ledger/ingest.py).

The ingest in front of Django must store and answer a report exactly as the DRF view does,
batch concurrent reports without losing, doubling or mis-attributing any, refuse replays, and
leave every request it does not take (bad signature, odd body) to Django's own answer.
"""

import asyncio
import json
import shutil
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from nacl.signing import SigningKey

from grid.redis_cache import SharedPoolRedisCache
from ledger.choices import NodeStatus
from ledger.models import AuditEntry, Node, UptimeHour, UptimeReport
from ledger.services import UptimeIn, decommission_node, record_uptime_batch
from nodeagent.redis_server import RedisServer
from ops import metrics
from signing.keys import public_key_hex
from signing.node_request import sign_request
from tests.conftest import NodeClient, make_farm, make_token, registration
from tests.ledger.asgi_client import AsgiClient, asgi_answer

# The ingest writes from its own thread: its rows must be committed to be seen.
pytestmark = pytest.mark.django_db(transaction=True)

REPORT = {"uptime": 3600, "used": {"cru": 1, "mru": 2**30}, "health": []}


def asgi_post(path: str, body: bytes, headers: dict[str, str]) -> dict:
    """One HTTP request through grid.asgi: status, headers and the JSON body."""
    return asyncio.run(_many([(path, body, headers)]))[0]


async def _one(path: str, body: bytes, headers: dict[str, str]) -> dict:
    return await asgi_answer("POST", path, body, headers)


async def _many(requests: list[tuple[str, bytes, dict[str, str]]]) -> list[dict]:
    return await asyncio.gather(*(_one(*r) for r in requests))


def signed(key: SigningKey, path: str, payload=REPORT, *, body: bytes | None = None, **sign):
    body = json.dumps(payload).encode() if body is None else body
    headers = {
        "Host": "127.0.0.1",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Authorization": sign_request(key, "POST", path, body, **sign),
    }
    return path, body, headers


@pytest.fixture
def approved(client, farm) -> tuple[SigningKey, int]:
    node = NodeClient(client)
    return node.key, node.register(farm, enroll_token=make_token(farm)).json()["id"]


def test_report_is_stored_and_answered_as_the_api_does(client, farm, approved):
    farm.desired_agent_version = "0.2.0"
    farm.save()
    key, node_id = approved
    answer = asgi_post(*signed(key, f"/api/v1/nodes/{node_id}/uptime"))
    assert answer["status"] == 200
    assert answer["headers"][b"content-type"] == b"application/json"
    assert b"allow" not in answer["headers"]  # DRF's header: answered by the ingest, not DRF
    body = answer["json"]
    assert body.pop("server_time") > 0
    assert body == {
        "id": node_id,
        "status": "online",
        "interval": 60,
        "desired": {"agent_version": "0.2.0"},
        "gateway": None,
    }
    row = Node.objects.get()
    assert (row.uptime, row.used_cru, row.used_mru, row.used_sru) == (3600, 1, 2**30, 0)
    assert row.last_seen is not None
    assert UptimeReport.objects.get().used == {"cru": 1, "mru": 2**30, "sru": 0, "hru": 0}
    assert UptimeHour.objects.get().reports == 1
    # The DRF path gives the same answer for the same node.
    same = NodeClient(client, key).uptime(node_id, uptime=3600, used=REPORT["used"]).json()
    assert {k: v for k, v in same.items() if k != "server_time"} == body


def test_concurrent_reports_from_many_nodes_are_each_stored_once(client, farm):
    nodes = []
    for _ in range(5):
        node = NodeClient(client)
        nodes.append((node.key, node.register(farm, enroll_token=make_token(farm)).json()["id"]))
    requests = [
        signed(key, f"/api/v1/nodes/{node_id}/uptime", {**REPORT, "uptime": 100 + i})
        for i in range(8)
        for key, node_id in nodes
    ]
    answers = asyncio.run(_many(requests))
    assert [a["status"] for a in answers] == [200] * 40
    assert [a["json"]["id"] for a in answers] == [node_id for _ in range(8) for _, node_id in nodes]
    assert UptimeReport.objects.count() == 40
    assert sorted(UptimeHour.objects.values_list("node_id", "reports")) == sorted(
        (node_id, 8) for _, node_id in nodes
    )
    for _, node_id in nodes:
        assert Node.objects.get(pk=node_id).status == NodeStatus.ONLINE
        assert UptimeReport.objects.filter(node_id=node_id).count() == 8


def test_health_flags_degrade_the_node_and_the_change_is_audited(approved):
    key, node_id = approved
    path = f"/api/v1/nodes/{node_id}/uptime"
    answer = asgi_post(*signed(key, path, {"uptime": 5, "health": ["no_disk"]}))
    assert answer["json"]["status"] == "degraded"
    assert Node.objects.get().health == ["no_disk"]
    assert AuditEntry.objects.filter(node_id=node_id, message__contains="degraded").exists()
    assert asgi_post(*signed(key, path, {"uptime": 6}))["json"]["status"] == "online"


def test_a_replayed_request_is_refused_once_stored(approved):
    key, node_id = approved
    request = signed(key, f"/api/v1/nodes/{node_id}/uptime")
    assert asgi_post(*request)["status"] == 200
    again = asgi_post(*request)
    assert again["status"] == 401
    assert again["json"]["error"] == "nonce_replayed"
    assert UptimeReport.objects.count() == 1


def test_the_same_request_twice_in_one_batch_is_stored_once(approved):
    key, node_id = approved
    request = signed(key, f"/api/v1/nodes/{node_id}/uptime")
    answers = asyncio.run(_many([request, request]))
    assert sorted(a["status"] for a in answers) == [200, 401]
    assert UptimeReport.objects.count() == 1
    assert UptimeHour.objects.get().reports == 1


def test_refusals_match_the_apis(client, farm, approved):
    key, node_id = approved
    other = NodeClient(client)
    other_id = other.register(farm).json()["id"]
    stranger = SigningKey.generate()

    mismatch = asgi_post(*signed(key, f"/api/v1/nodes/{other_id}/uptime"))
    assert (mismatch["status"], mismatch["json"]["error"]) == (403, "node_mismatch")
    missing = asgi_post(*signed(key, "/api/v1/nodes/999999/uptime"))
    assert (missing["status"], missing["json"]["error"]) == (404, "not_found")
    unknown = asgi_post(*signed(stranger, f"/api/v1/nodes/{node_id}/uptime"))
    assert (unknown["status"], unknown["json"]["error"]) == (403, "unknown_node")
    decommission_node(node=Node.objects.get(pk=node_id), actor="test")
    gone = asgi_post(*signed(key, f"/api/v1/nodes/{node_id}/uptime"))
    assert (gone["status"], gone["json"]["error"]) == (403, "node_decommissioned")
    assert UptimeReport.objects.count() == 0


def test_requests_it_does_not_take_get_djangos_answer(approved):
    key, node_id = approved
    path = f"/api/v1/nodes/{node_id}/uptime"
    # Signed for another body: Django's signature error, and the nonce stays unspent.
    request_path, _body, headers = signed(key, path)
    tampered = json.dumps({**REPORT, "uptime": 1}).encode()
    bad = asgi_post(request_path, tampered, {**headers, "Content-Length": str(len(tampered))})
    assert (bad["status"], bad["json"]["error"]) == (401, "signature_invalid")
    assert asgi_post(request_path, _body, headers)["status"] == 200
    # A body the serializer refuses, and one only its leniency accepts.
    invalid = asgi_post(*signed(key, path, {"uptime": -1}))
    assert (invalid["status"], invalid["json"]["error"]) == (400, "invalid")
    lenient = asgi_post(*signed(key, path, {"uptime": "42"}))
    assert lenient["status"] == 200
    assert Node.objects.get().uptime == 42
    unsigned = asgi_post(path, b"{}", {"Host": "127.0.0.1", "Content-Type": "application/json"})
    assert (unsigned["status"], unsigned["json"]["error"]) == (401, "missing_signature")
    assert UptimeReport.objects.count() == 2


def test_a_batch_stores_two_reports_of_one_node_in_order(approved):
    key, node_id = approved
    public_key = public_key_hex(key)
    outcomes = record_uptime_batch(
        [
            UptimeIn(public_key, str(node_id), 10, {}, ["no_disk"]),
            UptimeIn(public_key, public_key, 11, {}, []),
        ]
    )
    assert [status for _node, status in outcomes] == ["degraded", "online"]
    assert Node.objects.get().uptime == 11
    assert UptimeHour.objects.get().reports == 2


@pytest.fixture
def redis_nonces(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer(tmp_path / "redis", watch_every=0.1) as server:
        yield SharedPoolRedisCache(server.url, {})


def test_redis_nonce_batch_agrees_with_add(redis_nonces):
    assert redis_nonces.add("nonce:a", 1, 60)
    assert redis_nonces.add_each(["nonce:a", "nonce:b", "nonce:b"], 1, 60) == [False, True, False]
    assert not redis_nonces.add("nonce:b", 1, 60)
    assert caches["nonces"] is not redis_nonces  # the suite's own cache is left alone


def test_a_batch_costs_the_same_statements_for_any_number_of_nodes(client, farm):
    def batch_of(count: int) -> int:
        reports = []
        for _ in range(count):
            node = NodeClient(client)
            node_id = node.register(farm, enroll_token=make_token(farm)).json()["id"]
            reports.append(UptimeIn(node.public_key, str(node_id), 1, {}, []))
            # Online already, so no status change (an audit row each) in the batch measured.
            record_uptime_batch([UptimeIn(node.public_key, str(node_id), 1, {}, [])])
        with CaptureQueriesContext(connection) as queries:
            outcomes = record_uptime_batch(reports)
        assert [status for _node, status in outcomes] == ["online"] * count
        return len(queries)

    assert batch_of(2) == batch_of(7)


def test_stored_reports_are_counted_in_the_metrics(approved):
    key, node_id = approved
    before = metrics.UPTIME_REPORTS._value.get()
    requests = [signed(key, f"/api/v1/nodes/{node_id}/uptime") for _ in range(3)]
    assert [a["status"] for a in asyncio.run(_many(requests))] == [200] * 3
    assert metrics.UPTIME_REPORTS._value.get() == before + 3


# Registration: the ingest answers a plainly valid one in front of Django; tests/ledger/
# test_registration.py runs every registration case through both paths.

_VARYING = ("id", "public_key", "last_seen", "registered_at")


def _comparable(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in _VARYING}


def test_registration_is_answered_in_front_of_django_as_the_api_does(client, farm):
    through_ingest = NodeClient(AsgiClient()).register(farm, enroll_token=make_token(farm))
    through_drf = NodeClient(client).register(farm, enroll_token=make_token(farm))
    assert "Allow" not in through_ingest.headers  # DRF's header: the ingest answered
    assert "Allow" in through_drf.headers
    assert through_ingest.status_code == through_drf.status_code == 201
    assert _comparable(through_ingest.json()) == _comparable(through_drf.json())
    assert through_ingest.json()["status"] == "online"
    assert through_ingest.headers["Content-Type"] == "application/json"
    for answer in (through_ingest, through_drf):
        kinds = AuditEntry.objects.filter(node_id=answer.json()["id"]).values_list("kind")
        assert sorted(k for (k,) in kinds) == ["node_registered", "node_transition", "token_used"]


def test_registration_refusals_match_the_apis(client, farm):
    expired = make_token(farm, ttl=timedelta(seconds=-1))
    for token in ("zet_unknown", expired, make_token(make_farm("farm2"))):
        ingest = NodeClient(AsgiClient()).register(farm, enroll_token=token)
        drf = NodeClient(client).register(farm, enroll_token=token)
        assert "Allow" not in ingest.headers
        assert (ingest.status_code, ingest.json()) == (drf.status_code, drf.json())
        assert ingest.status_code == 403
    assert not Node.objects.exists()
    assert AuditEntry.objects.filter(kind="security").count() == 2  # the foreign token, twice


def test_a_replayed_registration_is_refused(farm):
    node = NodeClient(AsgiClient())
    body = json.dumps(registration(farm)).encode()
    authorization = sign_request(node.key, "POST", "/api/v1/nodes", body)
    assert node.send("POST", "/api/v1/nodes", body, authorization).status_code == 201
    again = node.send("POST", "/api/v1/nodes", body, authorization)
    assert (again.status_code, again.json()["error"]) == (401, "nonce_replayed")


def test_registrations_it_does_not_take_get_djangos_answer(farm):
    node = NodeClient(AsgiClient())
    # Only DRF's leniency takes a number as text, or a field it does not know (and ignores).
    lenient = node.register(farm, capacity={"cru": "4", "mru": 1, "sru": 1, "hru": 0})
    assert lenient.status_code == 201
    assert "Allow" in lenient.headers
    assert Node.objects.get().cru == 4
    assert "Allow" in node.register(farm, extra_field=1).headers
    invalid = node.register(farm, capacity={"cru": -1, "mru": 1, "sru": 1, "hru": 0})
    assert (invalid.status_code, invalid.json()["error"]) == (400, "invalid")
    padded = node.register(farm, serial=" SN-1 ")  # DRF trims text
    assert "Allow" in padded.headers
    assert Node.objects.get().serial == "SN-1"


def test_a_registration_while_redis_is_down_gets_the_apis_503(client, farm, tmp_path, settings):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer(tmp_path / "redis", watch_every=0.1) as server:
        gone = server.url  # stopped on leaving: nothing listens there any more
    nonces = {"BACKEND": "grid.redis_cache.SharedPoolRedisCache", "LOCATION": gone}
    settings.CACHES = {**settings.CACHES, "nonces": nonces}
    ingest = NodeClient(AsgiClient()).register(farm)
    drf = NodeClient(client).register(farm)
    assert "Allow" not in ingest.headers
    assert ingest.status_code == drf.status_code == 503
    assert ingest.json() == drf.json()
    assert ingest.json()["error"] == "unavailable"
    assert ingest.headers["Retry-After"] == drf.headers["Retry-After"]
    assert not Node.objects.exists()
