"""The operator's console: farms, enrollment tokens, nodes, keys and the audit log."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from ledger import boot, releases, services
from ledger.errors import LedgerError
from ledger.models import (
    AgentRelease,
    AuditEntry,
    BootImage,
    EnrollmentToken,
    Farm,
    GatewayHost,
    Node,
    UserKey,
)


def _bytes(value: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


class RolloutForm(forms.Form):
    release = forms.ModelChoiceField(
        queryset=AgentRelease.objects.order_by("-created"),
        to_field_name="version",
        required=False,
        empty_label="(none: nodes keep the agent they run)",
        help_text="Nodes of the selected farms update to it at their next uptime report.",
    )


@admin.register(Farm)
class FarmAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "owner", "desired_agent_version", "created", "boot_page"]
    list_filter = ["desired_agent_version"]
    search_fields = ["name", "owner__username"]
    actions = ["roll_out_release"]

    @admin.display(description="boot images")
    def boot_page(self, farm: Farm) -> str:
        return format_html('<a href="/boot/{}/">download</a>', farm.pk)

    @admin.action(description="Roll an agent release out to the selected farms")
    def roll_out_release(self, request: HttpRequest, queryset: QuerySet):
        """Pick the release on an intermediate page, then point every selected farm at it."""
        form = RolloutForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            release = form.cleaned_data["release"]
            version = release.version if release else ""
            count = releases.set_desired_version(farms=queryset, version=version)
            self.message_user(
                request,
                f"{count} farm(s) now run agent {version}"
                if version
                else f"{count} farm(s) no longer ask for a release",
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Roll an agent release out",
            "opts": self.model._meta,
            "farms": queryset,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/ledger/farm/roll_out_release.html", context)


class EnrollmentTokenForm(forms.ModelForm):
    valid_days = forms.IntegerField(min_value=1, max_value=365, initial=7)

    class Meta:
        model = EnrollmentToken
        fields = ["farm", "label", "uses_left"]


@admin.register(EnrollmentToken)
class EnrollmentTokenAdmin(admin.ModelAdmin):
    """Creating a token shows its secret once; only the hash is kept."""

    list_display = ["prefix", "farm", "label", "uses_left", "expires_at", "last_used_at"]
    list_filter = ["farm"]
    readonly_fields = ["prefix", "expires_at", "created_by", "created", "last_used_at"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = EnrollmentTokenForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["farm", "label", "uses_left", "valid_days"]
        return ["farm", "label", "uses_left", *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, secret = services.create_enrollment_token(
            farm=form.cleaned_data["farm"],
            uses=form.cleaned_data["uses_left"],
            ttl=timedelta(days=form.cleaned_data["valid_days"]),
            label=form.cleaned_data["label"],
            created_by=request.user,
        )
        obj.pk = token.pk
        self.message_user(
            request,
            format_html("Enrollment token (shown only now, copy it): <code>{}</code>", secret),
            messages.WARNING,
        )


# What an operator may change on a node: its farm, and whether (and how) it is a gateway.
NODE_EDITABLE_FIELDS = ("farm", "gateway_domain", "gateway_addresses", "gateway_any_backend")


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "short_key",
        "farm",
        "coloured_status",
        "capacity",
        "health",
        "last_seen",
        "agent_version",
        "gateway_domain",
    ]
    list_filter = ["status", "farm", "virtualized", "gateway_any_backend"]
    search_fields = ["public_key", "serial", "mycelium_address", "gateway_domain"]
    readonly_fields = [
        *(f.name for f in Node._meta.fields if f.name not in NODE_EDITABLE_FIELDS),
        "uptime_history",
    ]
    actions = ["approve", "decommission"]

    def has_add_permission(self, request):
        return False  # nodes register themselves

    @admin.display(description="key")
    def short_key(self, node: Node) -> str:
        return node.public_key[:12] + "…"

    class Media:
        # The status colours: a class per state, not a style attribute, which the site's
        # Content-Security-Policy (style-src 'self') would block.
        css = {"all": ["ledger/admin.css"]}

    @admin.display(description="status", ordering="status")
    def coloured_status(self, node: Node) -> str:
        return format_html(
            '<b class="node-status node-status-{}">{}</b>', node.status, node.get_status_display()
        )

    @admin.display(description="capacity (cpu / ram / ssd / hdd)")
    def capacity(self, node: Node) -> str:
        return f"{node.cru} / {_bytes(node.mru)} / {_bytes(node.sru)} / {_bytes(node.hru)}"

    @admin.display(description="uptime history (latest 20)")
    def uptime_history(self, node: Node) -> str:
        reports = node.uptime_reports.order_by("-received_at")[:20]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}s</td><td>{}</td></tr>",
            ((r.received_at, r.uptime, ", ".join(r.health) or "healthy") for r in reports),
        )
        return format_html(
            "<table><tr><th>received</th><th>uptime</th><th>health</th></tr>{}</table>", rows
        )

    @admin.action(description="Approve selected pending nodes")
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        for node in queryset:
            try:
                services.approve_node(node=node, actor=f"user:{request.user.username}")
                done += 1
            except LedgerError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        self.message_user(request, f"{done} node(s) approved")

    @admin.action(description="Decommission selected nodes")
    def decommission(self, request: HttpRequest, queryset: QuerySet) -> None:
        for node in queryset:
            services.decommission_node(node=node, actor=f"user:{request.user.username}")
        self.message_user(request, f"{queryset.count()} node(s) decommissioned")


@admin.register(GatewayHost)
class GatewayHostAdmin(admin.ModelAdmin):
    """Names reserved on gateways. Gateway nodes make them for their users; an operator may
    delete one (a squatted domain): the name then stops being reserved, and the node keeps
    serving it until its owner deletes the workload."""

    list_display = ["host", "kind", "owner", "node", "created"]
    list_filter = ["kind", "node"]
    search_fields = ["host", "owner__username"]
    readonly_fields = ["host", "kind", "owner", "node", "created"]

    def has_add_permission(self, request):
        return False  # reserved by gateway nodes for their jobs' owners


@admin.register(UserKey)
class UserKeyAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "public_key", "created", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "name", "public_key"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created", "kind", "actor", "node", "farm", "message"]
    list_filter = ["kind"]
    search_fields = ["message", "actor"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BootImage)
class BootImageAdmin(admin.ModelAdmin):
    """Uploaded builds (`manage.py build_image` or POST /api/v1/boot-images); one is current."""

    list_display = ["version", "is_current", "zos_efi_size", "uploaded_by", "created"]
    readonly_fields = ["version", "manifest", "is_current", "uploaded_by", "created"]
    actions = ["make_current"]

    def has_add_permission(self, request):
        return False  # images arrive with their files, through the API or build_image

    @admin.display(description="zos.efi")
    def zos_efi_size(self, image: BootImage) -> str:
        return _bytes(image.files.get("zos.efi", {}).get("size", 0))

    @admin.action(description="Make the selected image current")
    def make_current(self, request: HttpRequest, queryset: QuerySet) -> None:
        if queryset.count() != 1:
            self.message_user(request, "select exactly one image", messages.ERROR)
            return
        image = boot.make_current_image(queryset.get(), actor=f"user:{request.user.username}")
        self.message_user(request, f"{image.version} is now the current boot image")


@admin.register(AgentRelease)
class AgentReleaseAdmin(admin.ModelAdmin):
    """Signed agent bundles (`manage.py publish_release`); farms pick one as desired version."""

    list_display = ["version", "sha256", "size", "published_by", "created"]
    readonly_fields = ["version", "sha256", "size", "envelope", "published_by", "created"]

    def has_add_permission(self, request):
        return False  # a release is built and signed by publish_release
