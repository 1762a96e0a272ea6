from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from coordinator import services
from coordinator.models import Deployment, Draft, Job, JobEvent, NodeLink, Workload


class JobInline(admin.StackedInline):
    model = Job
    can_delete = False
    readonly_fields = [
        "uuid",
        "node",
        "attempt",
        "max_attempts",
        "state",
        "timeout",
        "deadline",
        "next_attempt_at",
        "dispatched_at",
        "finished_at",
        "cancel_requested_at",
        "cancel_acked_at",
        "waiting_since",
        "result",
        "error",
    ]
    fields = readonly_fields


def _each(modeladmin, request: HttpRequest, queryset: QuerySet, verb: str, service) -> None:
    """Run one coordinator service per selected deployment; say what was done and what not."""
    done = 0
    for deployment in queryset:
        try:
            service(deployment=deployment, by=f"operator {request.user.username}")
            done += 1
        except services.DeploymentRejected as exc:
            modeladmin.message_user(request, f"#{deployment.pk}: {exc.message}", messages.ERROR)
    if done:
        modeladmin.message_user(request, f"{done} deployment(s) {verb}")


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "owner",
        "status",
        "attempt",
        "target_node",
        "target_farm",
        "created",
    ]
    list_filter = ["status", "target_farm", "created"]
    list_select_related = ["owner", "job", "target_node", "target_farm"]
    search_fields = ["name", "owner__username", "owner__email", "script_sha256", "job__uuid"]
    readonly_fields = [f.name for f in Deployment._meta.fields]
    inlines = [JobInline]
    actions = ["cancel", "retry"]

    def has_add_permission(self, request):
        return False  # deployments arrive signed, through the API

    @admin.display(description="attempt")
    def attempt(self, deployment: Deployment) -> str:
        return f"{deployment.job.attempt}/{deployment.job.max_attempts}"

    @admin.action(description="Cancel selected deployments (durable: sent until the node acks)")
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        _each(self, request, queryset, "cancelled", services.cancel_deployment)

    @admin.action(description="Retry selected deployments now (next attempt)")
    def retry(self, request: HttpRequest, queryset: QuerySet) -> None:
        _each(self, request, queryset, "retried", services.retry_deployment)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Jobs across all deployments: where an operator looks for what is stuck or failing."""

    list_display = ["uuid", "deployment", "node", "state", "attempt", "error", "updated"]
    list_filter = ["state", "node__farm"]
    list_select_related = ["deployment", "node"]
    search_fields = [
        "uuid",
        "deployment__name",
        "deployment__owner__username",
        "node__public_key",
        "error",
    ]
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(JobEvent)
class JobEventAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "attempt", "status", "log", "error", "ts"]
    list_filter = ["status"]
    search_fields = ["job__uuid", "log", "error"]
    readonly_fields = [f.name for f in JobEvent._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Workload)
class WorkloadAdmin(admin.ModelAdmin):
    list_display = ["id", "node", "owner", "kind", "name", "state", "updated"]
    list_filter = ["kind", "state", "node__farm"]
    search_fields = ["name", "owner__username"]
    readonly_fields = [f.name for f in Workload._meta.fields]

    def has_add_permission(self, request):
        return False  # nodes report workloads; they are never made here


@admin.register(NodeLink)
class NodeLinkAdmin(admin.ModelAdmin):
    """Which nodes the coordinator can reach now, and why a link went down (read only: the ASGI
    processes holding the links write these rows)."""

    list_display = ["node", "connected_at", "seen_at", "lost_at", "lost_reason"]
    list_filter = ["lost_at", "node__farm"]
    readonly_fields = [f.name for f in NodeLink._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Draft)
class DraftAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "updated"]
    search_fields = ["name", "owner__username"]
