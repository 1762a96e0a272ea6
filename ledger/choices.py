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
