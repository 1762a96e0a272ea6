"""Every state change of the ledger, as plain functions (views and admin only call these).

Each change and its audit entry are written in one transaction; a refused request writes nothing
but, where it is a security event, the audit entry saying so.
"""

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from contracts.payload_types import KEY_PROOF_TYPE
from grid import json_input
from grid.errors import signature_refused
from ledger.choices import AuditKind, NodeStatus
from ledger.errors import LedgerError
from ledger.models import (
    AuditEntry,
    EnrollmentToken,
    Farm,
    Node,
    UptimeReport,
    UserKey,
    hash_token_secret,
)
from ledger.releases import release_public_key_hex
from ledger.states import APPROVED_STATUSES
from ledger.uptime import count_report
from signing import SignatureError
from signing.dsse import verify_envelope
from signing.keys import parse_public_key, public_key_hex

log = logging.getLogger(__name__)

TOKEN_PREFIX = "zet_"  # noqa: S105  (a marker, not a secret)
DEFAULT_TOKEN_TTL = timedelta(days=7)


@dataclass(frozen=True)
class NodeReport:
    """What a node says about itself when it registers (validated by the serializer)."""

    capacity: dict[str, int]
    interfaces: list[dict[str, Any]]
    serial: str = ""
    secure_boot: bool = False
    virtualized: bool = False
    agent_version: str = ""
    image_version: str = ""
    mycelium_address: str = ""


def _audit(kind: str, message: str, *, actor: str = "system", node=None, farm=None, **data) -> None:
    AuditEntry.objects.create(
        kind=kind, actor=actor, node=node, farm=farm, message=message, data=data
    )


def create_enrollment_token(
    *,
    farm: Farm,
    uses: int = 1,
    ttl: timedelta = DEFAULT_TOKEN_TTL,
    label: str = "",
    created_by=None,
) -> tuple[EnrollmentToken, str]:
    """Return the token row and its secret; the secret is not stored and cannot be shown again."""
    if uses < 1:
        raise LedgerError("invalid", "an enrollment token needs at least one use")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = EnrollmentToken.objects.create(
            farm=farm,
            label=label,
            secret_hash=hash_token_secret(secret),
            prefix=secret[:12],
            expires_at=timezone.now() + ttl,
            uses_left=uses,
            created_by=created_by,
        )
        _audit(
            AuditKind.TOKEN_CREATED,
            f"enrollment token {token.prefix}… for farm {farm} ({uses} uses)",
            actor=f"user:{created_by}" if created_by else "system",
            farm=farm,
        )
    return token, secret


def _check_enrollment_token(farm: Farm, secret: str, *, public_key: str) -> EnrollmentToken:
    """Validate without consuming; refusals that smell of abuse are logged as security events."""
    token = (
        EnrollmentToken.objects.select_related("farm")
        .filter(secret_hash=hash_token_secret(secret))
        .first()
    )
    if token is None:
        raise LedgerError("enroll_token_invalid", "enrollment token is not known", http_status=403)
    if token.farm_id != farm.id:
        _audit(
            AuditKind.SECURITY,
            f"token {token.prefix}… of farm {token.farm} presented for farm {farm}",
            actor=f"node:{public_key}",
            farm=farm,
            token=token.prefix,
        )
        raise LedgerError(
            "enroll_token_foreign",
            f"this enrollment token belongs to another farm, not farm {farm.id}",
            http_status=403,
        )
    if token.revoked_at is not None:
        # A token is revoked by its farmer, or (the boot token) by rotating the farm's boot
        # link, because it leaked: a node still presenting it is worth the farmer's attention.
        _audit(
            AuditKind.SECURITY,
            f"revoked enrollment token {token.prefix}… presented for farm {farm}",
            actor=f"node:{public_key}",
            farm=farm,
            token=token.prefix,
        )
        raise LedgerError(
            "enroll_token_revoked",
            "this enrollment token was revoked by the farm's owner (or when the farm's boot "
            "link was rotated); use a current token or boot from media downloaded since",
            http_status=403,
        )
    if token.is_expired:
        raise LedgerError(
            "enroll_token_expired",
            f"enrollment token expired at {token.expires_at.isoformat()}; "
            "ask the farmer for a new one",
            http_status=403,
        )
    if token.uses_left == 0:
        _audit(
            AuditKind.SECURITY,
            f"reuse of spent enrollment token {token.prefix}…",
            actor=f"node:{public_key}",
            farm=farm,
            token=token.prefix,
        )
        raise LedgerError(
            "enroll_token_spent", "enrollment token has no uses left", http_status=403
        )
    return token


def _consume_enrollment_token(token: EnrollmentToken) -> None:
    consumed = EnrollmentToken.objects.filter(pk=token.pk, uses_left__gt=0).update(
        uses_left=F("uses_left") - 1, last_used_at=timezone.now()
    )
    if not consumed:
        raise LedgerError(
            "enroll_token_spent", "enrollment token has no uses left", http_status=403
        )


def register_node(
    *, public_key: str, farm_id: int, enroll_token: str | None, report: NodeReport
) -> tuple[Node, bool]:
    """Idempotent upsert keyed by public key; returns (node, created)."""
    farm = Farm.objects.filter(pk=farm_id).first()
    if farm is None:
        raise LedgerError("unknown_farm", f"farm {farm_id} does not exist", http_status=404)
    existing = Node.objects.filter(public_key=public_key).first()
    if existing is not None:
        if existing.status == NodeStatus.DECOMMISSIONED:
            raise LedgerError(
                "node_decommissioned", "this node was decommissioned", http_status=403
            )
        if existing.farm_id != farm.id:
            raise LedgerError(
                "farm_mismatch",
                f"node is registered in farm {existing.farm_id}; an operator must move it",
                http_status=409,
            )
    wants_approval = existing is None or existing.status == NodeStatus.PENDING
    token = (
        _check_enrollment_token(farm, enroll_token, public_key=public_key)
        if enroll_token and wants_approval
        else None
    )

    with transaction.atomic():
        node, created = Node.objects.select_for_update().get_or_create(
            public_key=public_key, defaults={"farm": farm}
        )
        for field in ("cru", "mru", "sru", "hru"):
            setattr(node, field, report.capacity[field])
        node.interfaces = report.interfaces
        node.serial = report.serial
        node.secure_boot = report.secure_boot
        node.virtualized = report.virtualized
        node.agent_version = report.agent_version
        node.image_version = report.image_version
        node.mycelium_address = report.mycelium_address
        node.last_seen = timezone.now()
        if created:
            _audit(
                AuditKind.NODE_REGISTERED,
                f"node {public_key[:12]}… registered in farm {farm}",
                actor=f"node:{public_key}",
                node=node,
                farm=farm,
            )
        if token is not None and node.status == NodeStatus.PENDING:
            _consume_enrollment_token(token)
            _audit(
                AuditKind.TOKEN_USED,
                f"enrollment token {token.prefix}… approved node {node.pk}",
                actor=f"node:{public_key}",
                node=node,
                farm=farm,
            )
            node.transition_to(
                NodeStatus.ONLINE,
                reason=f"approved by enrollment token {token.prefix}…",
                actor=f"node:{public_key}",
            )
        node.save()
    return node, created


def record_uptime(*, node: Node, uptime: int, used: dict[str, int], health: list[str]) -> Node:
    """Store a report and move an approved node between online, degraded and offline."""
    with transaction.atomic():
        # The farm comes along for the reply's desired version; only the node's row is locked.
        node = Node.objects.select_for_update(of=("self",)).select_related("farm").get(pk=node.pk)
        report = UptimeReport.objects.create(node=node, uptime=uptime, used=used, health=health)
        count_report(node_id=node.pk, at=report.received_at)
        node.uptime = uptime
        node.health = health
        node.last_seen = timezone.now()
        for field in ("cru", "mru", "sru", "hru"):
            setattr(node, f"used_{field}", used.get(field, 0))
        if node.status in APPROVED_STATUSES:
            target = NodeStatus.DEGRADED if health else NodeStatus.ONLINE
            reason = f"health flags: {', '.join(health)}" if health else "reporting, healthy"
            node.transition_to(target, reason=reason, actor=f"node:{node.pk}")
        node.save()
    return node


def _offline_cutoff(now: datetime) -> datetime:
    return now - timedelta(
        seconds=settings.ZOS_UPTIME_INTERVAL * settings.ZOS_OFFLINE_AFTER_INTERVALS
    )


def approve_node(*, node: Node, actor: str) -> Node:
    with transaction.atomic():
        node = Node.objects.select_for_update().get(pk=node.pk)
        if node.status != NodeStatus.PENDING:
            raise LedgerError(
                "not_pending", f"node {node.pk} is {node.status}, not pending", http_status=409
            )
        # A silent node is then taken offline by the monitor, like any other.
        target = NodeStatus.DEGRADED if node.health else NodeStatus.ONLINE
        node.transition_to(target, reason="approved by operator", actor=actor)
        node.save()
    return node


def decommission_node(
    *, node: Node, actor: str, reason: str = "decommissioned by operator"
) -> Node:
    with transaction.atomic():
        node = Node.objects.select_for_update().get(pk=node.pk)
        if node.status == NodeStatus.DECOMMISSIONED:
            return node
        node.transition_to(NodeStatus.DECOMMISSIONED, reason=reason, actor=actor)
        node.save()
    return node


def mark_offline_nodes(*, now: datetime | None = None) -> list[Node]:
    """Nodes silent for OFFLINE_AFTER_INTERVALS report intervals go offline."""
    now = now or timezone.now()
    cutoff = _offline_cutoff(now)
    changed = []
    with transaction.atomic():
        stale = (
            Node.objects.select_for_update(skip_locked=True)
            .filter(status__in=[NodeStatus.ONLINE, NodeStatus.DEGRADED])
            .filter(Q(last_seen__lt=cutoff) | Q(last_seen__isnull=True))
        )
        for node in stale:
            silent = int((now - node.last_seen).total_seconds()) if node.last_seen else None
            node.transition_to(
                NodeStatus.OFFLINE,
                reason=f"no uptime report for {silent}s" if silent else "never reported",
            )
            node.save(update_fields=["status", "updated_at"])
            changed.append(node)
    return changed


KEY_CHALLENGE_TTL = 300  # seconds a key-registration challenge stays valid


def _challenge_cache_key(user, challenge: str) -> str:
    return f"key-challenge:{user.pk}:{challenge}"


def issue_key_challenge(*, user) -> dict:
    """A fresh single-use challenge the user's new key must sign (ARCHITECTURE §4, key-proof).

    Kept in the replay cache (shared by every process, never culled while live), bound to the
    user by its cache key; registering with it deletes it, so it works once.
    """
    challenge = secrets.token_hex(32)
    caches["nonces"].set(_challenge_cache_key(user, challenge), 1, KEY_CHALLENGE_TTL)
    return {
        "user": user.pk,
        "challenge": challenge,
        "expires_at": int(time.time()) + KEY_CHALLENGE_TTL,
        "payload_type": KEY_PROOF_TYPE,
    }


def _reserved_keys() -> set[str]:
    """Keys no user may claim: signing with them must only ever mean the grid itself."""
    from coordinator.keys import coordinator_signing_key

    return {public_key_hex(coordinator_signing_key()), release_public_key_hex()}


def _check_key_proof(*, user, public_key: str, proof: object) -> None:
    """The proof must be signed by the key itself, for this user, over a live challenge."""
    payload, _ = verify_envelope(proof, KEY_PROOF_TYPE, [parse_public_key(public_key)])
    try:
        data = json_input.loads(payload)
    except json_input.MalformedJSON as exc:
        raise LedgerError("proof_invalid", f"the proof's payload: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"user", "public_key", "challenge", "issued_at"}:
        raise LedgerError(
            "proof_invalid", "the proof's payload must be {user, public_key, challenge, issued_at}"
        )
    if data["user"] != user.pk or data["public_key"] != public_key:
        raise LedgerError("proof_invalid", "the proof was made for another user or key")
    issued_at = data["issued_at"]
    if not isinstance(issued_at, int) or abs(time.time() - issued_at) > KEY_CHALLENGE_TTL:
        raise LedgerError(
            "proof_invalid",
            f"the proof's issued_at is more than {KEY_CHALLENGE_TTL}s from server time",
        )
    challenge = data["challenge"]
    if not isinstance(challenge, str) or not caches["nonces"].delete(
        _challenge_cache_key(user, challenge)
    ):
        raise LedgerError(
            "challenge_invalid",
            "the challenge is unknown, expired, already used or another user's; "
            "ask POST /api/v1/keys/challenge for a new one",
        )


def register_user_key(*, user, name: str, public_key: str, proof: object) -> UserKey:
    """A user adds a key they hold: proof of possession first, then the usual checks.

    Without the proof anyone could register a public key they merely saw (another user's, the
    coordinator's) and have deployments or nodes attribute signatures to the wrong owner.
    """
    try:
        parse_public_key(public_key)
        if public_key in _reserved_keys():
            raise LedgerError(
                "key_reserved",
                "this key belongs to the grid itself and cannot be registered",
                http_status=409,
            )
        _check_key_proof(user=user, public_key=public_key, proof=proof)
        return add_user_key(user=user, name=name, public_key=public_key)
    except SignatureError as exc:
        raise signature_refused(exc) from exc


def add_user_key(*, user, name: str, public_key: str) -> UserKey:
    """Store a key; callers have established that the user holds it (register_user_key)."""
    parse_public_key(public_key)  # canonical spelling only: the hex is the key's unique name
    if UserKey.objects.filter(public_key=public_key).exists():
        raise LedgerError("key_exists", "this public key is already registered", http_status=409)
    if UserKey.objects.filter(user=user, name=name).exists():
        raise LedgerError(
            "key_name_taken", f"you already have a key named {name!r}", http_status=409
        )
    with transaction.atomic():
        key = UserKey.objects.create(user=user, name=name, public_key=public_key)
        _audit(AuditKind.KEY_CHANGED, f"key {name} added for {user}", actor=f"user:{user}")
    return key


def revoke_user_key(*, key: UserKey) -> UserKey:
    if key.revoked_at is None:
        with transaction.atomic():
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            _audit(
                AuditKind.KEY_CHANGED,
                f"key {key.name} of {key.user} revoked",
                actor=f"user:{key.user}",
            )
    return key
