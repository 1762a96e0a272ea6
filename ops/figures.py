"""The grid's figures for operators, read from the database in a fixed number of queries.

Both the operator overview page and the Prometheus collector read these, at the time they are
asked (nothing is cached or counted in a process: any ASGI worker answers the same). Each
function is one aggregate query however many nodes, jobs or deployments there are; the tests
hold them to that (tests/ops/test_figures.py).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from coordinator.choices import JobState
from coordinator.links import live_q
from coordinator.models import Deployment, Job, Workload
from ledger.choices import NodeStatus
from ledger.models import Node

# Nodes whose capacity counts as the grid's: they report and may take work.
CAPACITY_STATUSES = (NodeStatus.ONLINE, NodeStatus.DEGRADED)
# Capacity as the ledger stores it (ARCHITECTURE §2) → the name operators read.
RESOURCES = {"cru": "cpu", "mru": "memory", "sru": "ssd", "hru": "hdd"}


@dataclass(frozen=True)
class Capacity:
    total: dict[str, int]
    used: dict[str, int]

    @property
    def free(self) -> dict[str, int]:
        return {name: self.total[name] - self.used[name] for name in self.total}

    def rows(self) -> list[dict]:
        """One row per resource with used, free, total and the percentage used, for tables."""
        return [
            {
                "resource": name,
                "total": total,
                "used": self.used[name],
                "free": self.free[name],
                "percent": round(100 * self.used[name] / total) if total else 0,
            }
            for name, total in self.total.items()
        ]


def nodes_by_state() -> dict[str, int]:
    counts = dict.fromkeys(NodeStatus.values, 0)
    for row in Node.objects.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


def capacity() -> Capacity:
    """Total and reserved capacity of the nodes that can take work (online or degraded)."""
    sums = {f"total_{key}": Sum(key) for key in RESOURCES} | {
        f"used_{key}": Sum(f"used_{key}") for key in RESOURCES
    }
    row = Node.objects.filter(status__in=CAPACITY_STATUSES).aggregate(**sums)
    return Capacity(
        total={name: row[f"total_{key}"] or 0 for key, name in RESOURCES.items()},
        used={name: row[f"used_{key}"] or 0 for key, name in RESOURCES.items()},
    )


def node_capacities() -> list[dict]:
    """Each approved node's capacity and use as its last report said, for per-node series."""
    fields = ["id", "farm_id", "status", *RESOURCES, *(f"used_{key}" for key in RESOURCES)]
    return list(Node.objects.exclude(status=NodeStatus.DECOMMISSIONED).values(*fields))


def by_state(model: type[Deployment] | type[Job]) -> dict[str, int]:
    field = "status" if model is Deployment else "state"
    counts = dict.fromkeys(JobState.values, 0)
    for row in model.objects.order_by().values(field).annotate(n=Count("id")):
        counts[row[field]] = row["n"]
    return counts


def live_links() -> int:
    """Nodes whose link to the coordinator answers now (coordinator.links)."""
    return Node.objects.filter(live_q()).count()


def workloads_by_kind() -> dict[str, int]:
    rows = Workload.objects.order_by().values("kind").annotate(n=Count("id"))
    return {row["kind"]: row["n"] for row in rows}


def deployments_per_hour(*, hours: int = 24, now: datetime | None = None) -> list[dict]:
    """Deployments submitted in each of the last `hours` hours, by their state now, oldest
    first: `[{"hour": datetime, "states": {state: n}, "total": n}]`, empty hours included."""
    now = now or timezone.now()
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    buckets = {start + timedelta(hours=i): dict.fromkeys(JobState.values, 0) for i in range(hours)}
    rows = (
        Deployment.objects.filter(created__gte=start)
        .annotate(hour=TruncHour("created"))
        .order_by()
        .values("hour", "status")
        .annotate(n=Count("id"))
    )
    for row in rows:
        if row["hour"] in buckets:
            buckets[row["hour"]][row["status"]] += row["n"]
    return [
        {"hour": hour, "states": states, "total": sum(states.values())}
        for hour, states in buckets.items()
    ]


def job_outcomes(*, hours: int = 24, now: datetime | None = None) -> dict[str, float | int]:
    """Of the jobs submitted in the last `hours`: how many, how many needed more than one
    attempt (retried), how many ended failed, and those as rates of all finished or started."""
    since = (now or timezone.now()) - timedelta(hours=hours)
    row = Job.objects.filter(created__gte=since).aggregate(
        jobs=Count("id"),
        retried=Count("id", filter=Q(attempt__gt=1)),
        finished=Count(
            "id", filter=Q(state__in=[JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
        ),
        failed=Count("id", filter=Q(state=JobState.FAILED)),
    )
    row["retry_rate"] = row["retried"] / row["jobs"] if row["jobs"] else 0.0
    row["failure_rate"] = row["failed"] / row["finished"] if row["finished"] else 0.0
    return row
