"""The nodes and farms directory: every farm, its nodes' state, capacity and uptime.

Open to every signed-in user (the same facts the public nodes API gives). A page costs a fixed
number of queries however many nodes and reports there are: the farms with their counts, a page
of nodes, and one grouped count of uptime reports per chart span (ledger/uptime.py).
"""

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from dashboard.charts import Chart, Gauge, capacity_gauges, uptime_chart
from ledger.choices import NodeStatus
from ledger.models import Farm, Node
from ledger.uptime import DAY, HOUR, uptime_history

NODES_PAGE = 10  # cards with two charts each: a page renders within the 50 ms target
DAY_HOURS, MONTH_DAYS = 24, 30
SMALL_CHART, LARGE_CHART = 240, 720  # SVG widths in user units
NODE_FIELDS = (
    "farm__name",
    "status",
    "cru",
    "mru",
    "sru",
    "hru",
    "used_cru",
    "used_mru",
    "used_sru",
    "used_hru",
    "agent_version",
    "image_version",
    "health",
    "uptime",
    "last_seen",
    "registered_at",
)


@dataclass(frozen=True)
class NodeRow:
    node: Node
    gauges: list[Gauge]
    charts: list[Chart]


def _charts(nodes: list[Node], *, width: int) -> dict[int, list[Chart]]:
    """Each node's last 24 hours and last 30 days, two queries for all of them."""
    spans = (
        ("Last 24 hours", uptime_history(nodes, unit=HOUR, count=DAY_HOURS)),
        ("Last 30 days", uptime_history(nodes, unit=DAY, count=MONTH_DAYS)),
    )

    return {
        n.pk: [uptime_chart(spans_of[n.pk], title=title, width=width) for title, spans_of in spans]
        for n in nodes
    }


@login_required
def nodes(request: HttpRequest) -> HttpResponse:
    """Farms with their node counts, then their nodes a page at a time."""
    farms = Farm.objects.annotate(
        node_count=Count("nodes"),
        online_count=Count("nodes", filter=Q(nodes__status=NodeStatus.ONLINE)),
    ).only("name")
    rows = Node.objects.select_related("farm").only(*NODE_FIELDS).order_by("farm_id", "id")
    page = Paginator(rows, NODES_PAGE).get_page(request.GET.get("page"))
    listed = list(page.object_list)
    charts = _charts(listed, width=SMALL_CHART)
    context = {
        "farms": farms,
        "page": page,
        "rows": [NodeRow(n, capacity_gauges(n), charts[n.pk]) for n in listed],
    }
    return render(request, "dashboard/nodes.html", context)


@login_required
def node(request: HttpRequest, node_id: int) -> HttpResponse:
    """One node: its facts, capacity and both uptime charts drawn wide."""
    found = get_object_or_404(Node.objects.select_related("farm"), pk=node_id)
    context = {
        "row": NodeRow(found, capacity_gauges(found), _charts([found], width=LARGE_CHART)[found.pk])
    }
    return render(request, "dashboard/node.html", context)
