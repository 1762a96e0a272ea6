"""Uptime reports drive online ⇄ degraded; silence drives offline."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ledger.choices import NodeStatus
from ledger.models import Node, UptimeReport
from ledger.services import approve_node, mark_offline_nodes
from tests.conftest import NodeClient, make_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def approved(node: NodeClient, farm) -> int:
    return node.register(farm, enroll_token=make_token(farm)).json()["id"]


def test_report_is_stored_and_reply_carries_interval_and_desired_version(node, farm, approved):
    farm.desired_agent_version = "0.2.0"
    farm.save()
    used = {"cru": 1, "mru": 2**30, "sru": 0, "hru": 0}
    response = node.uptime(approved, uptime=1234, used=used)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "online"
    assert body["interval"] == 60
    assert body["desired"] == {"agent_version": "0.2.0"}
    row = Node.objects.get()
    assert row.uptime == 1234
    assert (row.used_cru, row.used_mru) == (1, 2**30)
    assert UptimeReport.objects.get().uptime == 1234


def test_node_can_report_by_public_key_too(node, approved):
    assert node.uptime(node.public_key).status_code == 200


def test_health_flags_degrade_and_recovery_brings_back_online(node, approved):
    assert node.uptime(approved, health=["no_disk"]).json()["status"] == "degraded"
    assert Node.objects.get().health == ["no_disk"]
    assert node.uptime(approved).json()["status"] == "online"


def test_pending_node_keeps_reporting_but_stays_pending(node, farm):
    node_id = node.register(farm).json()["id"]
    assert node.uptime(node_id, health=["no_disk"]).json()["status"] == "pending"
    assert UptimeReport.objects.count() == 1


def test_silent_node_goes_offline_after_three_intervals_and_back_on_report(node, approved):
    now = timezone.now()
    Node.objects.update(last_seen=now - timedelta(seconds=3 * 60 - 5))
    assert mark_offline_nodes(now=now) == []
    Node.objects.update(last_seen=now - timedelta(seconds=3 * 60 + 5))
    assert [n.pk for n in mark_offline_nodes(now=now)] == [approved]
    assert Node.objects.get().status == NodeStatus.OFFLINE
    assert node.uptime(approved).json()["status"] == "online"


def test_approved_silent_node_is_then_taken_offline_by_the_monitor(node, farm):
    node.register(farm)
    Node.objects.update(last_seen=timezone.now() - timedelta(hours=1))
    assert approve_node(node=Node.objects.get(), actor="user:op").status == NodeStatus.ONLINE
    assert len(mark_offline_nodes()) == 1


def test_monitor_command_runs_one_pass(node, approved):
    from django.core.management import call_command

    Node.objects.update(last_seen=timezone.now() - timedelta(hours=1))
    call_command("ledger_monitor", "--once")
    assert Node.objects.get().status == NodeStatus.OFFLINE
