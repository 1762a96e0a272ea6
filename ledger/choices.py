from django.db import models


class NodeStatus(models.TextChoices):
    PENDING = "pending", "Pending approval"
    ONLINE = "online", "Online"
    DEGRADED = "degraded", "Degraded"
    OFFLINE = "offline", "Offline"
    DECOMMISSIONED = "decommissioned", "Decommissioned"


class AuditKind(models.TextChoices):
    NODE_REGISTERED = "node_registered", "Node registered"
    NODE_TRANSITION = "node_transition", "Node state change"
    TOKEN_CREATED = "token_created", "Enrollment token created"
    TOKEN_USED = "token_used", "Enrollment token used"
    SECURITY = "security", "Security event"
    KEY_CHANGED = "key_changed", "User key change"
    BOOT_DOWNLOAD = "boot_download", "Approving boot media downloaded"
    BOOT_LINK_ROTATED = "boot_link_rotated", "Boot link rotated"
    FARM_CREATED = "farm_created", "Farm created"
    TOKEN_REVOKED = "token_revoked", "Enrollment token revoked"
    NODE_DRAINED = "node_drained", "Node drained"
    NODE_UNDRAINED = "node_undrained", "Node undrained"
    RELEASE_SET = "release_set", "Farm agent release set"
    GATEWAY_HOST = "gateway_host", "Gateway host reserved or released"


class GatewayHostKind(models.TextChoices):
    NAME = "name", "<name>.<gateway domain>"
    FQDN = "fqdn", "A domain the user points at the gateway"
