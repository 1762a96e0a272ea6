from django.contrib import admin

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


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "owner", "status", "target_node", "target_farm", "created"]
    list_filter = ["status"]
    search_fields = ["name", "owner__username", "script_sha256"]
    readonly_fields = [f.name for f in Deployment._meta.fields]
    inlines = [JobInline]

    def has_add_permission(self, request):
        return False  # deployments arrive signed, through the API


@admin.register(JobEvent)
class JobEventAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "attempt", "status", "log", "error", "ts"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in JobEvent._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Workload)
class WorkloadAdmin(admin.ModelAdmin):
    list_display = ["id", "node", "owner", "kind", "name", "state", "updated"]
    list_filter = ["kind", "state"]
    search_fields = ["name", "owner__username"]
    readonly_fields = [f.name for f in Workload._meta.fields]

    def has_add_permission(self, request):
        return False  # nodes report workloads; they are never made here


@admin.register(NodeLink)
class NodeLinkAdmin(admin.ModelAdmin):
    """Which nodes the coordinator can reach now, and why a link went down (read only: the ASGI
    processes holding the links write these rows)."""

    list_display = ["node", "connected_at", "seen_at", "lost_at", "lost_reason"]
    readonly_fields = [f.name for f in NodeLink._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Draft)
class DraftAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "updated"]
    search_fields = ["name", "owner__username"]
