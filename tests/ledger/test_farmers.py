"""A farmer — any signed-in user — runs their own farm through the API (ledger/farms.py).

Each action is checked for what it does, that its audit entry is written, and that another
farmer's farm or node is answered exactly like a missing one (404).
"""

import pytest
from django.test import Client

from ledger.choices import AuditKind, NodeStatus
from ledger.models import AgentRelease, AuditEntry, EnrollmentToken, Farm, Node
from tests.conftest import NodeClient, make_farm, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def farmer() -> Client:
    client = Client()
    client.force_login(make_user("fiona"))
    return client


@pytest.fixture
def stranger() -> Client:
    client = Client()
    client.force_login(make_user("mallory"))
    return client


def new_farm(client: Client, name: str = "fiona-farm") -> dict:
    response = client.post("/api/v1/farms", {"name": name}, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def pending_node(farm_id: int) -> tuple[NodeClient, int]:
    """A machine booted from the public media: it registers without a token, so it waits."""
    node = NodeClient(Client())
    reply = node.register(Farm.objects.get(pk=farm_id))
    assert reply.json()["status"] == "pending"
    return node, reply.json()["id"]


def post(client: Client, path: str, data: dict | None = None):
    return client.post(path, data or {}, content_type="application/json")


def test_any_signed_in_user_creates_a_farm_they_own(farmer):
    farm = new_farm(farmer)
    assert farm["owner"] == "fiona" and farm["name"] == "fiona-farm"
    assert AuditEntry.objects.filter(kind=AuditKind.FARM_CREATED, farm_id=farm["id"]).exists()
    taken = post(farmer, "/api/v1/farms", {"name": "fiona-farm"})
    assert taken.status_code == 409 and taken.json()["error"] == "farm_name_taken"
    blank = post(farmer, "/api/v1/farms", {"name": "  "})
    assert blank.status_code == 400 and "name" in blank.json()["fields"]
    assert post(Client(), "/api/v1/farms", {"name": "anon"}).status_code in (401, 403)
    make_farm("someone-elses")
    mine = farmer.get("/api/v1/farms?mine=true").json()["results"]
    assert [f["name"] for f in mine] == ["fiona-farm"]
    assert len(farmer.get("/api/v1/farms").json()["results"]) == 2  # the public list
    assert Client().get("/api/v1/farms?mine=true").json()["results"] == []


def test_tokens_are_created_with_the_secret_once_listed_and_revoked(farmer):
    farm = new_farm(farmer)
    url = f"/api/v1/farms/{farm['id']}/tokens"
    made = post(farmer, url, {"label": "rack 2", "uses": 3, "days": 2})
    assert made.status_code == 201, made.content
    secret, token = made.json()["secret"], made.json()["token"]
    assert secret.startswith(token["prefix"]) and token["uses_left"] == 3
    listed = farmer.get(url).json()
    assert [t["label"] for t in listed] == ["rack 2"] and "secret" not in listed[0]
    assert secret not in farmer.get(url).content.decode()
    # the secret approves a node of this farm
    node = NodeClient(Client())
    assert (
        node.register(Farm.objects.get(pk=farm["id"]), enroll_token=secret).json()["status"]
        == "online"
    )

    revoked = post(farmer, f"{url}/{token['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert AuditEntry.objects.filter(kind=AuditKind.TOKEN_REVOKED, farm_id=farm["id"]).exists()
    refused = NodeClient(Client()).register(Farm.objects.get(pk=farm["id"]), enroll_token=secret)
    assert refused.status_code == 403 and refused.json()["error"] == "enroll_token_revoked"
    bad = post(farmer, url, {"uses": 0})
    assert bad.status_code == 400 and "uses" in bad.json()["fields"]


def test_another_farmer_gets_404_for_every_farm_and_node_action(farmer, stranger):
    farm = new_farm(farmer)
    token = post(farmer, f"/api/v1/farms/{farm['id']}/tokens").json()["token"]
    _, node_id = pending_node(farm["id"])
    base = f"/api/v1/farms/{farm['id']}"
    refused = [
        stranger.get(f"{base}/tokens"),
        post(stranger, f"{base}/tokens"),
        post(stranger, f"{base}/tokens/{token['id']}/revoke"),
        stranger.get(f"{base}/nodes"),
        post(stranger, f"{base}/release", {"agent_version": ""}),
        stranger.get(f"{base}/boot-link"),
        *(
            post(stranger, f"/api/v1/nodes/{node_id}/{verb}")
            for verb in ("approve", "decommission", "drain", "undrain")
        ),
    ]
    assert [r.status_code for r in refused] == [404] * len(refused)
    assert {r.json()["error"] for r in refused} == {"unknown_farm", "unknown_node"}
    assert Node.objects.get(pk=node_id).status == NodeStatus.PENDING
    assert EnrollmentToken.objects.get(pk=token["id"]).revoked_at is None
    assert EnrollmentToken.objects.filter(farm_id=farm["id"]).count() == 1
    # a farm id that does not exist at all reads the same
    assert stranger.get("/api/v1/farms/999999/nodes").json()["error"] == "unknown_farm"


def test_the_farmer_approves_a_pending_node_and_sees_it_with_capacity(farmer):
    farm = new_farm(farmer)
    node, node_id = pending_node(farm["id"])
    approved = post(farmer, f"/api/v1/nodes/{node_id}/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "online"
    entry = AuditEntry.objects.filter(kind=AuditKind.NODE_TRANSITION, node_id=node_id).first()
    assert entry.actor == "user:fiona" and entry.data["to"] == "online"
    node.uptime(node_id, used={"cru": 1, "mru": 2**30}, health=[])
    [row] = farmer.get(f"/api/v1/farms/{farm['id']}/nodes").json()
    assert row["id"] == node_id and row["status"] == "online" and row["drained"] is False
    assert row["free"]["cru"] == row["capacity"]["cru"] - 1
    assert row["free"]["mru"] == row["capacity"]["mru"] - 2**30
    assert row["agent_version"] == "0.1.0" and row["last_seen"]
    again = post(farmer, f"/api/v1/nodes/{node_id}/approve")
    assert again.status_code == 409 and again.json()["error"] == "not_pending"
    assert "online, not pending" in again.json()["message"]


def test_drain_and_undrain_are_audited_and_refused_where_they_make_no_sense(farmer):
    farm = new_farm(farmer)
    _, node_id = pending_node(farm["id"])
    pending = post(farmer, f"/api/v1/nodes/{node_id}/drain")
    assert pending.status_code == 409 and pending.json()["error"] == "not_drainable"
    assert "approve it first" in pending.json()["message"]
    post(farmer, f"/api/v1/nodes/{node_id}/approve")
    drained = post(farmer, f"/api/v1/nodes/{node_id}/drain")
    assert drained.status_code == 200 and drained.json()["drained"] is True
    assert drained.json()["status"] == "online"  # draining is not a state change
    twice = post(farmer, f"/api/v1/nodes/{node_id}/drain")
    assert twice.status_code == 409 and twice.json()["error"] == "already_drained"
    undrained = post(farmer, f"/api/v1/nodes/{node_id}/undrain")
    assert undrained.status_code == 200 and undrained.json()["drained"] is False
    not_drained = post(farmer, f"/api/v1/nodes/{node_id}/undrain")
    assert not_drained.status_code == 409 and not_drained.json()["error"] == "not_drained"
    kinds = set(AuditEntry.objects.filter(node_id=node_id).values_list("kind", flat=True))
    assert {AuditKind.NODE_DRAINED, AuditKind.NODE_UNDRAINED} <= kinds

    gone = post(farmer, f"/api/v1/nodes/{node_id}/decommission")
    assert gone.status_code == 200 and gone.json()["status"] == "decommissioned"
    refused = post(farmer, f"/api/v1/nodes/{node_id}/drain")
    assert refused.status_code == 409 and refused.json()["error"] == "not_drainable"
    assert "decommissioned" in refused.json()["message"]
    again = post(farmer, f"/api/v1/nodes/{node_id}/decommission")
    assert again.status_code == 409 and again.json()["error"] == "node_decommissioned"


def test_the_farm_release_reaches_its_nodes_in_the_uptime_reply(farmer):
    farm = new_farm(farmer)
    AgentRelease.objects.create(version="0.2.0", sha256="0" * 64, size=1, envelope={})
    node, node_id = pending_node(farm["id"])
    post(farmer, f"/api/v1/nodes/{node_id}/approve")
    chosen = post(farmer, f"/api/v1/farms/{farm['id']}/release", {"agent_version": "0.2.0"})
    assert chosen.status_code == 200 and chosen.json()["desired_agent_version"] == "0.2.0"
    assert node.uptime(node_id).json()["desired"] == {"agent_version": "0.2.0"}
    assert AuditEntry.objects.filter(kind=AuditKind.RELEASE_SET, farm_id=farm["id"]).exists()
    unknown = post(farmer, f"/api/v1/farms/{farm['id']}/release", {"agent_version": "9.9"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_release"
    cleared = post(farmer, f"/api/v1/farms/{farm['id']}/release", {"agent_version": ""})
    assert cleared.json()["desired_agent_version"] == ""
    assert node.uptime(node_id).json()["desired"] == {"agent_version": None}


def test_staff_manage_any_farm(farmer):
    farm = new_farm(farmer)
    _, node_id = pending_node(farm["id"])
    operator = Client()
    operator.force_login(make_user("op", staff=True))
    assert post(operator, f"/api/v1/nodes/{node_id}/approve").json()["status"] == "online"
    assert operator.get(f"/api/v1/farms/{farm['id']}/nodes").status_code == 200


def test_a_farm_made_elsewhere_is_managed_by_its_owner(client):
    """Farms an operator made for someone (admin, bootstrap_local) are theirs in the API too."""
    farm = make_farm()
    client.force_login(farm.owner)
    assert client.get(f"/api/v1/farms/{farm.pk}/nodes").json() == []


def test_the_uptime_chart_counts_reports_per_hour_in_one_query(
    farmer, settings, django_assert_num_queries
):
    from datetime import timedelta

    from django.utils import timezone

    from ledger import farms
    from ledger.models import UptimeReport

    settings.ZOS_UPTIME_INTERVAL = 600  # six reports an hour is full uptime
    farm = Farm.objects.get(pk=new_farm(farmer)["id"])
    node, node_id = pending_node(farm.pk)
    post(farmer, f"/api/v1/nodes/{node_id}/approve")
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    # registered five hours before `hour`, 30 minutes into its hour
    Node.objects.filter(pk=node_id).update(registered_at=hour - timedelta(hours=5, minutes=-30))
    for _ in range(3):
        node.uptime(node_id)
    node.uptime(node_id, health=["no_disk"])
    UptimeReport.objects.filter(node_id=node_id).update(received_at=hour + timedelta(minutes=30))
    old = UptimeReport.objects.create(node_id=node_id, uptime=1, used={}, health=[])
    UptimeReport.objects.filter(pk=old.pk).update(received_at=hour - timedelta(hours=3))
    now = hour + timedelta(hours=1, minutes=20)  # 20 minutes into the current hour
    with django_assert_num_queries(2):
        chart = farms.uptime_hours(farm, now=now)[node_id]
    assert len(chart) == 24 and chart[-2].start == hour
    assert (chart[-2].share, chart[-2].degraded) == (pytest.approx(4 / 6), 1)
    assert (chart[-5].share, chart[-5].degraded) == (pytest.approx(1 / 6), 0)
    assert chart[-7].share == 0  # registered half-way through it, three reports were due
    assert [h.share for h in chart[:-7]] == [None] * 17  # before it registered: no bar
    assert chart[-1].share == 0  # the current hour: 20 minutes, two reports due, none came
