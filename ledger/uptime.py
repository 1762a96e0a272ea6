"""Node availability over time, from the uptime reports nodes send every interval.

A bucket (an hour or a day) is as available as the share of the reports expected in it that
arrived: a node reporting every ZOS_UPTIME_INTERVAL seconds sends 60 an hour at the default.
Counting happens in the database (one grouped query for any number of nodes), so a directory of
many nodes and months of reports costs one query per chart span, not one per node or report.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from ledger.models import Node, UptimeReport

HOUR, DAY = "hour", "day"
_STEP = {HOUR: timedelta(hours=1), DAY: timedelta(days=1)}
_TRUNC = {HOUR: TruncHour, DAY: TruncDay}


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
        if expected <= 0:
            return None
        return min(1.0, sum(min(b.reports, b.expected) for b in self.buckets) / expected)


def _floor(moment: datetime, unit: str) -> datetime:
    local = timezone.localtime(moment)
    local = local.replace(minute=0, second=0, microsecond=0)
    return local.replace(hour=0) if unit == DAY else local


def uptime_history(
    nodes: Iterable[Node], *, unit: str, count: int, now: datetime | None = None
) -> dict[int, History]:
    """The last `count` hours or days (the current, partial one included) of each node.

    One query whatever the number of nodes; `nodes` need only `pk` and `registered_at`.
    """
    now = now or timezone.now()
    step, interval = _STEP[unit], settings.ZOS_UPTIME_INTERVAL
    starts = [_floor(now, unit) - step * back for back in range(count - 1, -1, -1)]
    nodes = list(nodes)
    counted = (
        UptimeReport.objects.filter(node__in=[n.pk for n in nodes], received_at__gte=starts[0])
        .annotate(bucket=_TRUNC[unit]("received_at"))
        .values_list("node_id", "bucket")
        .annotate(reports=Count("id"))
        .order_by()
    )
    reports = {(node_id, bucket): n for node_id, bucket, n in counted}
    histories = {}
    for node in nodes:
        buckets = []
        for start in starts:
            begin = max(start, node.registered_at)
            end = min(start + step, now)
            expected = max(0.0, (end - begin).total_seconds() / interval)
            buckets.append(Bucket(start, reports.get((node.pk, start), 0), expected))
        histories[node.pk] = History(unit, buckets)
    return histories
