"""Node availability over time, from the uptime reports nodes send every interval.

A bucket (an hour or a day) is as available as the share of the reports expected in it that
arrived: a node reporting every ZOS_UPTIME_INTERVAL seconds sends 60 an hour at the default.
Each report is counted into its hour as it arrives (UptimeHour); the charts read those hours, or
their sums per day grouped by the database, in one query per span for any number of nodes. So a
directory of many nodes and months of reports costs a few small queries, not one per report.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from ledger.models import Node, UptimeHour

HOUR, DAY = "hour", "day"
_STEP = {HOUR: timedelta(hours=1), DAY: timedelta(days=1)}


@dataclass(frozen=True)
class Bucket:
    """One hour or day of one node: reports received against reports expected."""

    start: datetime
    reports: int
    expected: float  # under one report: before the node registered, or the hour just begun

    @property
    def availability(self) -> float | None:
        """0..1; None where not even one report was due yet (no data is not downtime)."""
        if self.expected < 1:
            return None
        return min(1.0, self.reports / self.expected)


@dataclass(frozen=True)
class History:
    """A node's buckets, oldest first, and its availability over all of them."""

    unit: str
    buckets: list[Bucket]

    @property
    def availability(self) -> float | None:
        expected = sum(b.expected for b in self.buckets)
        if expected < 1:
            return None
        return min(1.0, sum(min(b.reports, b.expected) for b in self.buckets) / expected)


def floor(moment: datetime, unit: str) -> datetime:
    """The start of the hour or day holding `moment`, in the current time zone."""
    local = timezone.localtime(moment).replace(minute=0, second=0, microsecond=0)
    return local.replace(hour=0) if unit == DAY else local


def count_report(*, node_id: int, at: datetime) -> None:
    """Count one report into its hour; the caller holds the node's row lock (record_uptime)."""
    count_reports([(node_id, at)])


def count_reports(reports: Iterable[tuple[int, datetime]], *, cursor: Any = None) -> None:
    """Count reports (node id, received at) into their hours in one statement, however many.

    An upsert that adds to the hour's count (PostgreSQL and SQLite both have `ON CONFLICT`), so
    a batch of reports from many nodes costs one round trip; the caller holds the nodes' row
    locks (ledger.services), so no two writers count the same node at once. `cursor`: the
    caller's, to run it with the caller's other statements (ledger.services._statement_cursor).
    """
    counts: dict[tuple[int, datetime], int] = {}
    for node_id, at in reports:
        key = (node_id, floor(at, HOUR))
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return
    ops, quote = connection.ops, connection.ops.quote_name
    table = quote(UptimeHour._meta.db_table)
    columns = ", ".join(quote(c) for c in ("node_id", "hour", "day", "reports"))
    params: list[object] = []
    for (node_id, hour), reports_in_hour in counts.items():
        day = ops.adapt_datefield_value(hour.date())
        params += [node_id, ops.adapt_datetimefield_value(hour), day, reports_in_hour]
    values = ", ".join(["(%s, %s, %s, %s)"] * len(counts))
    count = quote("reports")
    # Only quoted identifiers and placeholders are interpolated; the values are parameters.
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES {values} "  # noqa: S608
        f"ON CONFLICT ({quote('node_id')}, {quote('hour')}) "
        f"DO UPDATE SET {count} = {table}.{count} + EXCLUDED.{count}"
    )
    if cursor is not None:
        cursor.execute(sql, params)
        return
    with connection.cursor() as own:
        own.execute(sql, params)


def _counts(node_ids: list[int], unit: str, since: datetime) -> dict[tuple[int, object], int]:
    """Reports per node and hour (the rows as counted) or day (summed by the database)."""
    hours = UptimeHour.objects.filter(node__in=node_ids, hour__gte=since)
    if unit == HOUR:
        rows = hours.values_list("node", "hour", "reports")
    else:
        rows = hours.values_list("node", "day").annotate(Sum("reports")).order_by()
    return {(node, bucket): reports for node, bucket, reports in rows}


def uptime_history(
    nodes: Iterable[Node], *, unit: str, count: int, now: datetime | None = None
) -> dict[int, History]:
    """The last `count` hours or days (the current, partial one included) of each node.

    One query whatever the number of nodes; `nodes` need only `pk` and `registered_at`.
    """
    now = now or timezone.now()
    step, interval = _STEP[unit], settings.ZOS_UPTIME_INTERVAL
    starts = [floor(now, unit) - step * back for back in range(count - 1, -1, -1)]
    nodes = list(nodes)
    reports = _counts([n.pk for n in nodes], unit, starts[0])
    histories = {}
    for node in nodes:
        buckets = []
        for start in starts:
            begin = max(start, node.registered_at)
            end = min(start + step, now)
            expected = max(0.0, (end - begin).total_seconds() / interval)
            key = start if unit == HOUR else start.date()
            buckets.append(Bucket(start, reports.get((node.pk, key), 0), expected))
        histories[node.pk] = History(unit, buckets)
    return histories
