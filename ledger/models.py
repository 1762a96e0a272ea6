"""What the ledger keeps: farms, enrollment tokens, nodes, uptime, user keys, an audit log."""

import hashlib
import secrets
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, validate_ipv46_address
from django.db import models
from django.utils import timezone

from contracts.versions import VERSION
from ledger.choices import AuditKind, GatewayHostKind, NodeStatus
from ledger.states import check_transition


def new_link_nonce() -> str:
    """A fresh random input of a farm's boot link secret (a default, so a callable)."""
    return secrets.token_hex(16)


class Farm(models.Model):
    name = models.CharField(max_length=64, unique=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="farms"
    )
    desired_agent_version = models.CharField(
        max_length=64, blank=True, help_text="Agent version nodes of this farm should run."
    )
    created = models.DateTimeField(auto_now_add=True)
    boot_image = models.ForeignKey(
        "BootImage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pinned_farms",
        help_text="Boot image this farm's nodes get; empty: the current one.",
    )
    boot_enroll = models.BooleanField(
        default=True,
        help_text="Bake the farm's boot enrollment token into the boot images its owner "
        "downloads (signed in, or through the farm's secret boot link), so nodes booted from "
        "them are approved at once. Anonymous downloads never carry it.",
    )
    boot_link_nonce = models.CharField(
        max_length=32,
        default=new_link_nonce,
        editable=False,
        help_text="Random part of the farm's secret boot link (ledger/boot_links.py); "
        "replaced when the owner rotates the link.",
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


def hash_token_secret(secret: str) -> str:
    """Tokens are 256-bit random strings, so a plain sha256 is a safe lookup key."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class EnrollmentToken(models.Model):
    """Lets a node join its farm approved, without an operator; only the hash is stored."""

    farm = models.ForeignKey(Farm, on_delete=models.CASCADE, related_name="enrollment_tokens")
    label = models.CharField(max_length=100, blank=True)
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="Start of the secret.")
    expires_at = models.DateTimeField()
    uses_left = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set when its farmer revokes it, or, for a boot token, when the farm's boot "
        "link is rotated.",
    )

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.farm})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()


# A DNS name a gateway serves: lowercase labels of letters, digits and inner '-', dot-separated.
HOSTNAME_PATTERN = r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$"
hostname_validator = RegexValidator(
    HOSTNAME_PATTERN, "a lowercase DNS name such as gw1.example.net (letters, digits, '-', dots)"
)


def validate_ip_list(value: object) -> None:
    """A gateway's public addresses: a list of IPv4/IPv6 addresses."""
    if not isinstance(value, list):
        raise ValidationError('a list of IP addresses, e.g. ["203.0.113.7"]')
    for item in value:
        if not isinstance(item, str):
            raise ValidationError(f"{item!r} is not an IP address")
        validate_ipv46_address(item)


class Node(models.Model):
    """A machine running the ZOS image; its identity is its ed25519 public key."""

    public_key = models.CharField(max_length=64, unique=True)
    farm = models.ForeignKey(Farm, on_delete=models.PROTECT, related_name="nodes")
    status = models.CharField(
        max_length=16, choices=NodeStatus.choices, default=NodeStatus.PENDING, db_index=True
    )
    cru = models.PositiveIntegerField(default=0, help_text="Logical CPUs.")
    mru = models.PositiveBigIntegerField(default=0, help_text="RAM bytes.")
    sru = models.PositiveBigIntegerField(default=0, help_text="SSD pool bytes.")
    hru = models.PositiveBigIntegerField(default=0, help_text="HDD pool bytes.")
    used_cru = models.PositiveIntegerField(default=0)
    used_mru = models.PositiveBigIntegerField(default=0)
    used_sru = models.PositiveBigIntegerField(default=0)
    used_hru = models.PositiveBigIntegerField(default=0)
    interfaces = models.JSONField(default=list, blank=True)
    serial = models.CharField(max_length=128, blank=True)
    secure_boot = models.BooleanField(default=False)
    virtualized = models.BooleanField(default=False)
    agent_version = models.CharField(max_length=64, blank=True)
    image_version = models.CharField(max_length=64, blank=True)
    mycelium_address = models.CharField(max_length=64, blank=True)
    health = models.JSONField(default=list, blank=True, help_text="Health flags from the node.")
    uptime = models.PositiveBigIntegerField(default=0, help_text="Seconds since boot.")
    last_seen = models.DateTimeField(null=True, blank=True)
    drained_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set while the farmer drains the node: it gets no new deployments, its "
        "waiting farm jobs move to other nodes, its workloads stay (ledger/farms.py).",
    )
    gateway_domain = models.CharField(
        max_length=253,
        blank=True,
        validators=[hostname_validator],
        help_text="Set by an operator to make the node a gateway serving <name>.<this domain> "
        "(its DNS must have a wildcard record for it pointing at the public addresses). "
        "Empty: not a gateway.",
    )
    gateway_addresses = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_ip_list],
        help_text='The gateway\'s public IP addresses, e.g. ["203.0.113.7", "2001:db8::7"]: '
        "where users point the domains they forward through it.",
    )
    gateway_any_backend = models.BooleanField(
        default=False,
        help_text="Let users forward to any overlay address, not only their own VMs'.",
    )
    registered_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway_domain"],
                condition=~models.Q(gateway_domain=""),
                name="one_gateway_per_domain",
            )
        ]

    def __str__(self) -> str:
        return f"node {self.pk} ({self.public_key[:12]}…)"

    @property
    def is_gateway(self) -> bool:
        return bool(self.gateway_domain)

    @property
    def drained(self) -> bool:
        return self.drained_at is not None

    def transition_to(self, new: str, *, reason: str, actor: str = "system") -> None:
        """Change status if the table allows it, and log it; saving is the caller's."""
        if new == self.status:
            return
        check_transition(self.status, new)
        old, self.status = self.status, new
        AuditEntry.objects.create(
            kind=AuditKind.NODE_TRANSITION,
            actor=actor,
            node=self,
            farm_id=self.farm_id,
            message=f"{old} → {new}: {reason}",
            data={"from": old, "to": new, "reason": reason},
        )


class UptimeReport(models.Model):
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="uptime_reports")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    uptime = models.PositiveBigIntegerField()
    used = models.JSONField(default=dict)
    health = models.JSONField(default=list)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.node} up {self.uptime}s at {self.received_at:%Y-%m-%d %H:%M:%S}"


class UptimeHour(models.Model):
    """How many uptime reports a node sent in one hour: the rollup the uptime charts read.

    Counted as each report arrives (ledger.uptime.count_report), so a chart of 30 days reads
    at most 720 rows per node instead of the ~43,000 reports a node sends in that time.
    """

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="uptime_hours")
    hour = models.DateTimeField(help_text="Start of the hour.")
    day = models.DateField(help_text="The hour's day, so days are summed by a plain GROUP BY.")
    reports = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["node_id", "hour"]
        constraints = [
            models.UniqueConstraint(fields=["node", "hour"], name="uptime_hour_once_per_node")
        ]

    def __str__(self) -> str:
        return f"{self.node}: {self.reports} reports in {self.hour:%Y-%m-%d %H}:00"


class UserKey(models.Model):
    """A user's ed25519 public key; deployments must be signed by a non-revoked one."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="keys"
    )
    name = models.CharField(max_length=64)
    public_key = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="unique_key_name")]

    def __str__(self) -> str:
        return f"{self.user}/{self.name}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class AuditEntry(models.Model):
    """Append-only record of state changes and security events."""

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=32, choices=AuditKind.choices, db_index=True)
    actor = models.CharField(max_length=100, default="system")
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.SET_NULL)
    farm = models.ForeignKey(Farm, null=True, blank=True, on_delete=models.SET_NULL)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.kind}: {self.message}"


# A version is a path component on disk and in URLs: no slashes, no leading dot.
VERSION_PATTERN = VERSION.pattern  # one rule for images, releases and their URLs
version_validator = RegexValidator(
    rf"^{VERSION_PATTERN}$", "a version is letters, digits and . _ + - (not first), up to 64"
)


class BootImage(models.Model):
    """One build of the node image: its manifest, and its files in ZOS_BOOT_DIR/<version>/.

    The files never change after upload; per-farm copies are stamped from them (ledger/boot.py).
    At most one image is current: farms without a pinned `Farm.boot_image` boot that one.
    """

    version = models.CharField(max_length=64, unique=True, validators=[version_validator])
    manifest = models.JSONField(default=dict, help_text="The build's manifest.json.")
    is_current = models.BooleanField(default=False, db_index=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_current"],
                condition=models.Q(is_current=True),
                name="one_current_boot_image",
            )
        ]

    def __str__(self) -> str:
        return self.version

    @property
    def directory(self) -> Path:
        return Path(settings.ZOS_BOOT_DIR) / self.version

    @property
    def files(self) -> dict[str, dict]:
        """{name: {"sha256", "size"}} of the files stored with this image."""
        return dict(self.manifest.get("files", {}))


class FarmBootToken(models.Model):
    """The enrollment token baked into a farm's boot images as `zos.enroll=`.

    Unlike other tokens its secret is kept: every approving image stamped for the farm must carry
    it. It is replaced by a new one when it expires or runs out of uses (which re-stamps the
    farm's images), and revoked when the owner rotates the farm's boot link.
    """

    farm = models.OneToOneField(Farm, on_delete=models.CASCADE, related_name="boot_token")
    token = models.OneToOneField(EnrollmentToken, on_delete=models.CASCADE, related_name="+")
    secret = models.CharField(max_length=128)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"boot token {self.token.prefix}… of {self.farm}"


class AgentRelease(models.Model):
    """A node agent bundle (tar.gz of the node-side packages) signed by the ledger.

    `envelope` is a DSSE envelope signed with the release key over
    `{"version", "sha256", "size"}`; nodes verify it, then the bundle's hash, before unpacking.
    """

    version = models.CharField(max_length=64, unique=True, validators=[version_validator])
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    envelope = models.JSONField()
    published_by = models.CharField(max_length=100, default="system")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"agent {self.version}"

    @property
    def bundle_path(self) -> Path:
        return Path(settings.ZOS_RELEASE_DIR) / f"{self.version}.tar.gz"


class GatewayHost(models.Model):
    """A host name served by a gateway node, reserved for one user: first come, first served.

    `<name>.<gateway domain>` names and the FQDNs users point at a gateway share this one table,
    so a host is unique across the grid. Rows are made and removed by the gateway node asking
    for the job's owner (coordinator/gateways.py), never by a user directly.
    """

    host = models.CharField(max_length=253, unique=True, validators=[hostname_validator])
    kind = models.CharField(max_length=8, choices=GatewayHostKind.choices)
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="gateway_hosts")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gateway_hosts"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["host"]

    def __str__(self) -> str:
        return f"{self.host} ({self.owner}, node {self.node_id})"
