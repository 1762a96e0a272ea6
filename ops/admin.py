"""The node's admin page as an operator needs it: workloads, health history, link, agent log,
and the drain/undrain actions.

The ledger's NodeAdmin is extended here, not edited there, because these views join the
coordinator's rows (workloads, the node link) and the ledger's admin must not depend on the
coordinator. Draining moves the node's waiting farm jobs in the coordinator, so its actions live
here too; they call the same service as the farmer's page (ledger.farms), audited the same way.
The agent log panel is in templates/admin/ledger/node/change_form.html (ops/static/ops/nodelog.js).
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from coordinator.models import Workload
from ledger import farms
from ledger.admin import NodeAdmin
from ledger.errors import LedgerError
from ledger.models import Node

HEALTH_REPORTS = 200  # reports read for the health history (a few hours at the default interval)


class WorkloadInline(admin.TabularInline):
    model = Workload
    fields = ["kind", "name", "owner", "state", "reserved", "updated"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # nodes report their workloads


# The admin's front page links to the grid overview (/operator/).
admin.site.index_template = "ops/admin_index.html"

admin.site.unregister(Node)


@admin.register(Node)
class OperatorNodeAdmin(NodeAdmin):
    inlines = [WorkloadInline]
    list_filter = [*NodeAdmin.list_filter, "link__lost_at", "drained_at"]
    search_fields = [*NodeAdmin.search_fields, "farm__name", "agent_version"]
    readonly_fields = [*NodeAdmin.readonly_fields, "link_state", "health_history"]
    actions = [*NodeAdmin.actions, "drain", "undrain"]
    list_display = [*NodeAdmin.list_display, "drained_at"]

    def _each(self, request: HttpRequest, queryset: QuerySet, change, done: str) -> None:
        """Apply `change` to every selected node; a refusal names its node, the rest go on."""
        changed = 0
        for node in queryset.select_related("farm"):
            try:
                change(user=request.user, node=node)
                changed += 1
            except LedgerError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        self.message_user(request, f"{changed} node(s) {done}")

    @admin.action(description="Drain selected nodes (no new deployments; waiting farm jobs move)")
    def drain(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, farms.drain, "drained")

    @admin.action(description="Undrain selected nodes (they take new deployments again)")
    def undrain(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, farms.undrain, "undrained")

    @admin.display(description="coordinator link")
    def link_state(self, node: Node) -> str:
        link = getattr(node, "link", None)
        if link is None:
            return "never connected"
        if link.lost_at:
            return f"down since {link.lost_at:%Y-%m-%d %H:%M:%S} ({link.lost_reason})"
        since = f"{link.connected_at:%Y-%m-%d %H:%M:%S}"
        return f"up since {since}, last answer {link.seen_at:%H:%M:%S}"

    @admin.display(description=f"health history (changes in the last {HEALTH_REPORTS} reports)")
    def health_history(self, node: Node) -> str:
        """Only the reports where the node's health flags changed: what an operator looks for
        (when did it degrade, when did it recover) without scrolling through every minute."""
        reports = list(
            node.uptime_reports.order_by("-received_at").values_list("received_at", "health")[
                :HEALTH_REPORTS
            ]
        )
        changes = []
        for i, (received_at, health) in enumerate(reversed(reports)):
            if i == 0 or sorted(health) != sorted(changes[-1][1]):
                changes.append((received_at, health))
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td></tr>",
            ((at, ", ".join(flags) or "healthy") for at, flags in reversed(changes)),
        )
        return format_html("<table><tr><th>since</th><th>health</th></tr>{}</table>", rows)
