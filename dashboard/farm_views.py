"""The farmer's pages: their farms, a farm's nodes and enrollment tokens, its boot media.

Thin views over ledger/farms.py, the same services the API calls, so a page and the API offer
the same actions with the same refusals (shown here as a message). A farm or node of another
farmer is a 404, like a missing one. The confirmation before approve, drain and decommission
is farm.js (no inline script: the CSP holds).
"""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from dashboard.farm_forms import EnrollmentTokenForm, FarmForm, ReleaseForm
from ledger import boot_links, farms, services
from ledger.boot import STAMPED, image_for
from ledger.errors import LedgerError
from ledger.models import Farm, Node

NODE_ACTIONS = {
    "approve": (farms.approve, "Node {id} is approved and joins the grid."),
    "decommission": (farms.decommission, "Node {id} is decommissioned; its key is refused now."),
    "drain": (
        farms.drain,
        "Node {id} is drained: it gets no new deployments; its waiting farm jobs moved on.",
    ),
    "undrain": (farms.undrain, "Node {id} takes new deployments again."),
}
CHART_BAR, CHART_HEIGHT = 4, 24  # SVG units: one bar per hour
BOOT_FILES = {
    "usb.img": "USB disk image — write it to a stick and boot the machine from it",
    "zos.efi": "EFI file — for machines that boot an EFI application from a disk or over HTTP",
    "boot.ipxe": "iPXE script — network boot; it fetches the kernel and initrd",
}


def _farm(request: HttpRequest, farm_id: int) -> Farm:
    try:
        return farms.get_farm(request.user, farm_id)
    except LedgerError as exc:
        raise Http404(exc.message) from exc


def _node(request: HttpRequest, farm: Farm, node_id: int) -> Node:
    try:
        node = farms.get_node(request.user, node_id)
    except LedgerError as exc:
        raise Http404(exc.message) from exc
    if node.farm_id != farm.pk:
        raise Http404(f"farm {farm.pk} has no node {node_id}")
    return node


@login_required
def farm_list(request: HttpRequest) -> HttpResponse:
    """The user's farms, and a form to create one."""
    form = FarmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            farm = farms.create_farm(owner=request.user, name=form.cleaned_data["name"])
        except LedgerError as exc:
            form.add_error("name", exc.message)
        else:
            messages.success(request, f"Farm “{farm.name}” is ready: add its first node.")
            return redirect("dashboard:farm", farm_id=farm.pk)
    rows = Farm.objects.filter(owner=request.user).annotate(node_count=Count("nodes"))
    return render(request, "dashboard/farms.html", {"form": form, "farms": rows})


def _chart(hours: list[farms.UptimeHour]) -> dict:
    """An uptime chart as SVG bars: one per hour, its height the share of reports that came,
    amber when some reports carried health flags; no bar before the node registered."""
    bars = [
        {
            "x": i * CHART_BAR,
            "y": round(CHART_HEIGHT * (1 - h.share), 1),
            "height": round(CHART_HEIGHT * h.share, 1),
            "flagged": bool(h.degraded),
            "title": f"{h.start:%H}:00 UTC: {h.share:.0%}"
            + (f", {h.degraded} report(s) with health flags" if h.degraded else ""),
        }
        for i, h in enumerate(hours)
        if h.share is not None
    ]
    known = [h.share for h in hours if h.share is not None]
    share = sum(known) / len(known) if known else 0
    return {"bars": bars, "share": share, "width": CHART_BAR * len(hours)}


def _farm_page(
    request: HttpRequest, farm: Farm, *, token_form=None, secret: str | None = None
) -> HttpResponse:
    charts = farms.uptime_hours(farm)
    nodes = list(farm.nodes.order_by("id"))
    for node in nodes:
        node.chart = _chart(charts.get(node.pk, []))
    context = {
        "farm": farm,
        "nodes": nodes,
        "tokens": farms.enrollment_tokens(farm).select_related("created_by"),
        "token_form": token_form or EnrollmentTokenForm(),
        "secret": secret,
        "release_form": ReleaseForm(initial={"agent_version": farm.desired_agent_version}),
    }
    return render(request, "dashboard/farm.html", context)


@never_cache
@login_required
def farm(request: HttpRequest, farm_id: int) -> HttpResponse:
    """A farm's nodes with their actions, its enrollment tokens and its agent release."""
    return _farm_page(request, _farm(request, farm_id))


@never_cache
@require_POST
@login_required
def create_token(request: HttpRequest, farm_id: int) -> HttpResponse:
    """A new token; its secret is in this one response (no redirect) and never again."""
    farm = _farm(request, farm_id)
    form = EnrollmentTokenForm(request.POST)
    if not form.is_valid():
        return _farm_page(request, farm, token_form=form)
    data = form.cleaned_data
    _, secret = services.create_enrollment_token(
        farm=farm,
        uses=data["uses"],
        ttl=timedelta(days=data["days"]),
        label=data["label"],
        created_by=request.user,
    )
    return _farm_page(request, farm, secret=secret)


@require_POST
@login_required
def revoke_token(request: HttpRequest, farm_id: int, token_id: int) -> HttpResponse:
    farm = _farm(request, farm_id)
    try:
        token = farms.revoke_enrollment_token(user=request.user, farm=farm, token_id=token_id)
    except LedgerError as exc:
        raise Http404(exc.message) from exc
    messages.success(request, f"Token {token.prefix}… is revoked: it approves no more nodes.")
    return redirect("dashboard:farm", farm_id=farm.pk)


@require_POST
@login_required
def node_action(request: HttpRequest, farm_id: int, node_id: int, action: str) -> HttpResponse:
    """Approve, decommission, drain or undrain one of the farm's nodes."""
    if action not in NODE_ACTIONS:
        raise Http404(f"no node action {action!r}")
    farm = _farm(request, farm_id)
    node = _node(request, farm, node_id)
    service, done = NODE_ACTIONS[action]
    try:
        service(user=request.user, node=node)
    except LedgerError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done.format(id=node.pk))
    return redirect("dashboard:farm", farm_id=farm.pk)


@require_POST
@login_required
def set_release(request: HttpRequest, farm_id: int) -> HttpResponse:
    farm = _farm(request, farm_id)
    form = ReleaseForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the published agent releases.")
        return redirect("dashboard:farm", farm_id=farm.pk)
    version = form.cleaned_data["agent_version"]
    farms.set_release(user=request.user, farm=farm, version=version)
    messages.success(
        request,
        f"The farm's nodes will run agent {version}." if version else "Nodes keep their agent.",
    )
    return redirect("dashboard:farm", farm_id=farm.pk)


@never_cache
@login_required
def boot(request: HttpRequest, farm_id: int) -> HttpResponse:
    """The farm's boot media through its secret link, how to use them, and the link's rotation.

    The links are built from the address the farmer reached this page at, so they work from
    where the farmer is; the media's own command line names the ledger by ZOS_PUBLIC_URL.
    """
    farm = _farm(request, farm_id)
    link = boot_links.describe_link(farm, request.build_absolute_uri("/"))
    files = [(name, link["files"][name], BOOT_FILES[name]) for name in STAMPED]
    public = request.build_absolute_uri(f"/boot/{farm.pk}/")
    try:
        image = image_for(farm)
    except LedgerError:
        image = None  # the page says so; the operator publishes one
    context = {
        "farm": farm,
        "link": link,
        "files": files,
        "public": public,
        "image": image,
    }
    return render(request, "dashboard/farm_boot.html", context)


@require_POST
@login_required
def rotate_boot_link(request: HttpRequest, farm_id: int) -> HttpResponse:
    farm = _farm(request, farm_id)
    boot_links.rotate_boot_link(farm=farm, actor=f"user:{request.user.username}")
    messages.success(
        request,
        "The boot link is new: the old one and media downloaded through it no longer approve "
        "nodes. Nodes approved before are not affected.",
    )
    return redirect("dashboard:farm-boot", farm_id=farm.pk)
