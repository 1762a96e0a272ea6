"""Staff pages and endpoints: the grid overview, a node's log tail, and /metrics.

Staff only, and said in one place each: the overview redirects anyone else to the admin's
sign-in (Django's staff_member_required), the node-log endpoint answers 404 to non-staff (it is
JSON for the admin page's script; a stranger learns nothing, not even that the node exists), and
/metrics takes a bearer token instead, since Prometheus has no session.
"""

import hmac

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from coordinator import nodelogs
from coordinator.choices import JobState
from coordinator.models import Deployment
from grid.errors import ServiceError
from ledger.models import Node
from ops import charts, figures, metrics


@staff_member_required
@never_cache
def overview(request: HttpRequest) -> HttpResponse:
    hourly = figures.deployments_per_hour()
    chart = charts.stacked_bars(
        [(f"{row['hour']:%H}", row["states"]) for row in hourly],
        states=list(JobState.values),
        title="Deployments submitted per hour (UTC), by state now",
    )
    context = {
        **admin.site.each_context(request),
        "title": "Grid overview",
        "nodes": figures.nodes_by_state(),
        "capacity": figures.capacity().rows(),
        "deployments": figures.by_state(Deployment),
        "hourly_total": sum(row["total"] for row in hourly),
        "chart": chart,
        "links": figures.live_links(),
        "outcomes": figures.job_outcomes(),
        "workloads": figures.workloads_by_kind(),
    }
    return render(request, "ops/overview.html", context)


@require_GET
@never_cache
async def node_logs(request: HttpRequest, node_id: int) -> JsonResponse:
    """The node's agent log tail, fetched over its link; `after` (a cursor) for what is new."""
    user = await request.auser()
    if not user.is_staff or not await Node.objects.filter(pk=node_id).aexists():
        raise ServiceError("not_found", "no such node", http_status=404)
    try:
        lines = int(request.GET.get("lines", nodelogs.DEFAULT_LINES))
    except ValueError:
        raise ServiceError(
            "invalid_lines", f"lines must be a whole number, not {request.GET['lines']!r}"
        ) from None
    reply = await nodelogs.fetch_node_logs(
        node_id, lines=lines, after=request.GET.get("after", "")[:40]
    )
    return JsonResponse(reply)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition, for a bearer of ZOS_METRICS_TOKEN; off when none is set."""
    token = settings.ZOS_METRICS_TOKEN
    if not token:
        raise ServiceError(
            "metrics_disabled",
            "the metrics endpoint is off: set ZOS_METRICS_TOKEN in the control plane's "
            "environment and give Prometheus the same value as its bearer token",
            http_status=404,
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        response = JsonResponse(
            {
                "error": "not_authenticated",
                "message": "send 'Authorization: Bearer <ZOS_METRICS_TOKEN>'",
            },
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
