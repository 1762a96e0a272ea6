"""The nodes directory through Django's test client: farms, nodes with state, capacity and both
uptime charts as inline SVG, open to signed-in users only, queries flat in nodes and reports."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from ledger.choices import NodeStatus
from ledger.models import Node
from ledger.uptime import count_report
from tests.conftest import make_farm
from tests.coordinator.conftest import make_online_node, make_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def hourly_reports(settings):
    """Nodes report once an hour here, so a few rows make a full chart."""
    settings.ZOS_UPTIME_INTERVAL = 3600


def _node_with_reports(farm, *, hours: int = 3, **fields) -> Node:
    node = make_online_node(farm, used_cru=1, used_mru=2 * 2**30, agent_version="1.2.3", **fields)
    now = timezone.now()
    # Registered at the start of the day before yesterday (UTC): three days with reports due.
    # Two days before now fell in a day's last hour from 23:00, with no report due that day.
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    Node.objects.filter(pk=node.pk).update(
        registered_at=day_start - timedelta(days=2), last_seen=now - timedelta(seconds=30)
    )
    for back in range(hours + 1):
        count_report(node_id=node.pk, at=now - timedelta(hours=back))
    return node


def test_the_directory_needs_a_session(client):
    assert client.get("/nodes")["Location"].startswith("/sign-in")
    assert client.get("/nodes/1")["Location"].startswith("/sign-in")


def test_the_directory_shows_farms_nodes_capacity_and_both_charts():
    farm = make_farm("north")
    up = _node_with_reports(farm)
    down = make_online_node(farm, linked=False)
    Node.objects.filter(pk=down.pk).update(status=NodeStatus.OFFLINE)
    make_farm("empty")
    page = make_tenant("ann").api.get("/nodes").content.decode()
    assert "north" in page and "empty" in page and "1 of 2" in page  # one of two online
    card = page[page.index(f'id="node-{up.pk}"') : page.index(f'id="node-{down.pk}"')]
    assert "Online" in card and "agent 1.2.3" in card
    assert 'aria-label="Cores: 1 of 4 used, 3 free"' in card
    assert 'aria-label="Memory: 2.0 GiB of 8.0 GiB used, 6.0 GiB free"' in card
    assert 'aria-label="SSD: 0 B of 100.0 GiB used, 100.0 GiB free"' in card
    assert "HDD" not in card  # it has none
    assert card.count('class="uptime-chart"') == 2
    # 24 hourly bars, the last three full (the current hour counts what was due so far)
    hours = re.search(r"Last 24 hours.*?</svg>", card, re.S).group(0)
    assert hours.count("<rect") == 24 and hours.count('class="up"') >= 3
    days = re.search(r"Last 30 days.*?</svg>", card, re.S).group(0)
    # The 27 days before it existed; in a day's first hour no report is due yet today either.
    empty = 27 + (timezone.now().hour == 0)
    assert days.count("<rect") == 30 and days.count('class="none"') == empty
    assert "Offline" in page[page.index(f'id="node-{down.pk}"') :]


def test_a_node_page_has_its_facts_and_both_charts():
    node = _node_with_reports(make_farm())
    ann = make_tenant("ann")
    page = ann.api.get(f"/nodes/{node.pk}").content.decode()
    assert node.public_key in page and page.count('class="uptime-chart"') == 2
    assert ann.api.get("/nodes/999999").status_code == 404


def test_the_directory_costs_the_same_queries_for_one_node_or_many(django_assert_num_queries):
    farm = make_farm()
    _node_with_reports(farm, hours=1)
    ann = make_tenant("ann")
    # session, user, farms, node count, the page of nodes, hourly and daily report counts
    with django_assert_num_queries(7):
        first = ann.api.get("/nodes")
    for _ in range(12):
        _node_with_reports(farm, hours=1)
    with django_assert_num_queries(7):
        many = ann.api.get("/nodes")
    cards = b'class="card node"'
    assert many.content.count(cards) == 10 > first.content.count(cards)  # a full page
    assert b"Page 1 of 2" in many.content
