"""The control plane's Prometheus metrics (docs/operations.md, "Metrics").

Two kinds, kept apart on purpose:
- Counters and histograms of things that happen in a process (requests, job acceptances and
  ends, uptime reports) live in prometheus_client's default registry. With several ASGI workers
  set PROMETHEUS_MULTIPROC_DIR (an empty directory, wiped at start) and every worker writes its
  figures there; a scrape of any worker then sums them all (prometheus_client's multiprocess
  mode). Without it each worker reports only its own, which is right for the one-process default.
- Gauges of the grid's state (nodes, deployments, jobs, links, capacity, workloads) are read from
  the database when scraped, by `GridCollector`, in a fixed number of queries (ops.figures).
  They are never counted in a process, so any worker gives the same answer.

Job timings are observed from the rows that record them (a JobEvent of state `accepted` or a
final state is created once per attempt or job), through post_save signals connected in
`OpsConfig.ready`, so no code path in the coordinator has to remember to report them; uptime
reports through the ledger's `uptime_reports_stored` (they are written in batches, without
post_save).
"""

import os
import time
from collections.abc import Callable, Iterator

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from coordinator.choices import JobState
from coordinator.models import Deployment, Job, JobEvent
from coordinator.states import FINAL_STATES
from ops import figures

REQUESTS = Counter(
    "zos_http_requests", "HTTP requests answered, by view, method and status.",
    ["view", "method", "status"],
)  # fmt: skip
REQUEST_SECONDS = Histogram(
    "zos_http_request_duration_seconds", "Time to answer an HTTP request, by view.", ["view"]
)
SUBMIT_TO_ACCEPTED = Histogram(
    "zos_job_submit_to_accepted_seconds",
    "From a deployment's submission to a node accepting (queuing) its job, per attempt.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
)
SUBMIT_TO_FINISHED = Histogram(
    "zos_job_submit_to_finished_seconds",
    "From a deployment's submission to its job's final state, by that state.",
    ["state"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600),
)
UPTIME_REPORTS = Counter("zos_uptime_reports", "Uptime reports received from nodes.")

# Scrape-time gauges go to a registry of their own so the multiprocess mode (whose registry
# holds only what the workers wrote to disk) and the default one share them.
GRID_REGISTRY = CollectorRegistry()


class GridCollector:
    """The grid's state as gauges, read from the database at each scrape."""

    def collect(self) -> Iterator[Metric]:
        nodes = GaugeMetricFamily("zos_nodes", "Nodes by ledger state.", labels=["state"])
        for state, n in figures.nodes_by_state().items():
            nodes.add_metric([state], n)
        yield nodes
        for name, what, model in (
            ("zos_deployments", "Deployments by state.", Deployment),
            ("zos_jobs", "Jobs by state.", Job),
        ):
            family = GaugeMetricFamily(name, what, labels=["state"])
            for state, n in figures.by_state(model).items():
                family.add_metric([state], n)
            yield family
        yield GaugeMetricFamily(
            "zos_node_links_connected",
            "Nodes whose WebSocket link to the coordinator answers now.",
            value=figures.live_links(),
        )
        grid = figures.capacity()
        total = GaugeMetricFamily(
            "zos_capacity_total",
            "Capacity of online and degraded nodes (cpu: logical CPUs; others: bytes).",
            labels=["resource"],
        )
        used = GaugeMetricFamily(
            "zos_capacity_used",
            "Capacity reserved by workloads on online and degraded nodes (as total).",
            labels=["resource"],
        )
        for resource in grid.total:
            total.add_metric([resource], grid.total[resource])
            used.add_metric([resource], grid.used[resource])
        yield total
        yield used
        yield from _per_node()
        workloads = GaugeMetricFamily(
            "zos_workloads", "Workloads nodes report, by kind.", labels=["kind"]
        )
        for kind, n in figures.workloads_by_kind().items():
            workloads.add_metric([kind], n)
        yield workloads


def _per_node() -> Iterator[Metric]:
    """Each node's figures from its last report: capacity and what workloads reserved."""
    labels = ["node", "farm", "resource"]
    capacity = GaugeMetricFamily(
        "zos_node_capacity",
        "A node's registered capacity (units as zos_capacity_total).",
        labels=labels,
    )
    used = GaugeMetricFamily(
        "zos_node_used", "A node's reserved capacity, from its last uptime report.", labels=labels
    )
    for node in figures.node_capacities():
        for key, resource in figures.RESOURCES.items():
            ids = [str(node["id"]), str(node["farm_id"]), resource]
            capacity.add_metric(ids, node[key])
            used.add_metric(ids, node[f"used_{key}"])
    yield capacity
    yield used


GRID_REGISTRY.register(GridCollector())


def exposition() -> bytes:
    """The text every scrape gets: this process's (or all workers') counters, then the gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry) + generate_latest(GRID_REGISTRY)


class RequestMetricsMiddleware:
    """Counts every request by the view that answered it (its URL name, never the raw path, so
    ids in URLs do not make a series each) and times it. Works for sync and async views."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        start = time.perf_counter()
        response = self.get_response(request)
        _observe(request, response, time.perf_counter() - start)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = await self.get_response(request)
        _observe(request, response, time.perf_counter() - start)
        return response


def _observe(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    match = getattr(request, "resolver_match", None)
    view = (match.view_name or match.route) if match else "<unresolved>"
    REQUESTS.labels(view, request.method, str(response.status_code)).inc()
    REQUEST_SECONDS.labels(view).observe(seconds)


def job_event_saved(sender, instance: JobEvent, created: bool, **kwargs) -> None:
    """Time from submission to acceptance or to the end, observed when that event is stored."""
    timed = instance.status == JobState.ACCEPTED or instance.status in FINAL_STATES
    if not created or not timed:
        return
    if JobEvent.job.is_cached(instance):  # stored with its job at hand: no round trip for it
        submitted = instance.job.created
    else:
        submitted = Job.objects.filter(pk=instance.job_id).values_list("created", flat=True).first()
    if submitted is None:
        return
    seconds = max(0.0, (instance.created - submitted).total_seconds())
    if instance.status == JobState.ACCEPTED:
        SUBMIT_TO_ACCEPTED.observe(seconds)
    else:
        SUBMIT_TO_FINISHED.labels(instance.status).observe(seconds)


def uptime_reports_stored(sender, count: int, **kwargs) -> None:
    UPTIME_REPORTS.inc(count)
