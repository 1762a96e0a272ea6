"""Availability per hour and day from uptime reports: counted in the database, in one query for
any number of nodes, a missing report is downtime and time before a node existed is not."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from ledger.models import Node, UptimeHour, UptimeReport
from ledger.services import record_uptime
from ledger.uptime import DAY, HOUR, count_report, uptime_history
from tests.conftest import make_farm
from tests.coordinator.conftest import make_online_node

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


def _reports(node, times: list[datetime]) -> None:
    for moment in times:
        count_report(node_id=node.pk, at=moment)


def _registered(node, moment: datetime) -> Node:
    Node.objects.filter(pk=node.pk).update(registered_at=moment)
    return Node.objects.get(pk=node.pk)


@override_settings(ZOS_UPTIME_INTERVAL=600)  # six reports an hour
def test_hours_count_reports_against_those_expected(django_assert_num_queries):
    farm = make_farm()
    steady = _registered(make_online_node(farm), NOW - timedelta(days=2))
    young = _registered(make_online_node(farm), datetime(2026, 3, 10, 11, 0, tzinfo=UTC))
    hour = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    _reports(steady, [hour + timedelta(minutes=10 * i) for i in range(6)])  # 10:00 all six
    _reports(steady, [hour + timedelta(hours=1, minutes=10 * i) for i in range(3)])  # 11:00 half
    _reports(young, [hour + timedelta(hours=1, minutes=10 * i) for i in range(6)])
    _reports(steady, [hour - timedelta(hours=5)])  # outside the span asked for

    with django_assert_num_queries(1):
        histories = uptime_history([steady, young], unit=HOUR, count=3, now=NOW)

    steady_hours = histories[steady.pk].buckets
    assert [b.start.hour for b in steady_hours] == [10, 11, 12]
    assert [b.availability for b in steady_hours] == [1.0, 0.5, 0.0]  # 12:30: three due, none
    assert steady_hours[2].expected == 3
    young_hours = histories[young.pk].buckets
    assert young_hours[0].availability is None  # not registered yet: no data, not downtime
    assert young_hours[1].availability == 1.0
    # 6 + 3 + 0 of 6 + 6 + 3 expected
    assert histories[steady.pk].availability == pytest.approx(9 / 15)


@override_settings(ZOS_UPTIME_INTERVAL=3600)
def test_days_and_a_node_reporting_too_often_is_not_above_one():
    node = _registered(make_online_node(make_farm()), NOW - timedelta(days=40))
    _reports(node, [NOW - timedelta(days=1, minutes=i) for i in range(100)])
    history = uptime_history([node], unit=DAY, count=30, now=NOW)[node.pk]
    assert len(history.buckets) == 30
    assert history.buckets[-1].start == datetime(2026, 3, 10, tzinfo=UTC)
    assert history.buckets[-2].availability == 1.0
    assert history.buckets[-3].availability == 0.0
    assert history.availability == pytest.approx(24 / (29 * 24 + 12.5))  # today: 12.5 h due


def test_every_report_a_node_sends_is_counted_into_its_hour():
    node = make_online_node(make_farm())
    for _ in range(3):
        record_uptime(node=node, uptime=10, used={}, health=[])
    assert UptimeReport.objects.filter(node=node).count() == 3
    [hour] = UptimeHour.objects.filter(node=node)
    assert hour.reports == 3
    assert hour.hour == timezone.now().replace(minute=0, second=0, microsecond=0)
