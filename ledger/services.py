"""Every state change of the ledger, as plain functions (views and admin only call these).

Each change and its audit entry are written in one transaction; a refused request writes nothing
but, where it is a security event, the audit entry saying so.
"""

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
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
from ledger.signals import uptime_reports_stored
from ledger.states import APPROVED_STATUSES
from ledger.uptime import count_reports
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
    existing = Node.objects.select_related("farm").filter(public_key=public_key).first()
    # A node registering again (a fleet rebooting) names its own farm: read with the node.
    if existing is not None and existing.farm_id == farm_id:
        farm = existing.farm
    else:
        farm = Farm.objects.filter(pk=farm_id).first()
    if farm is None:
        raise LedgerError("unknown_farm", f"farm {farm_id} does not exist", http_status=404)
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

    # What the node says about itself: written with the new row, or over the existing one.
    reported = {
        **{field: report.capacity[field] for field in ("cru", "mru", "sru", "hru")},
        "interfaces": report.interfaces,
        "serial": report.serial,
        "secure_boot": report.secure_boot,
        "virtualized": report.virtualized,
        "agent_version": report.agent_version,
        "image_version": report.image_version,
        "mycelium_address": report.mycelium_address,
        "last_seen": timezone.now(),
    }
    with transaction.atomic():
        node, created = Node.objects.select_for_update().get_or_create(
            public_key=public_key, defaults={"farm": farm, **reported}
        )
        status = node.status
        if created:
            _audit(
                AuditKind.NODE_REGISTERED,
                f"node {public_key[:12]}… registered in farm {farm}",
                actor=f"node:{public_key}",
                node=node,
                farm=farm,
            )
        else:
            for field, value in reported.items():
                setattr(node, field, value)
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
        # Only what registering changes (a new row was inserted with the report already).
        if not created or node.status != status:
            node.save(update_fields=[*reported, "status", "updated_at"])
    return node, created


@dataclass(frozen=True)
class UptimeIn:
    """One uptime report whose request signature was checked and whose nonce was fresh."""

    public_key: str  # the key that signed it
    path_id: str  # the node the URL names: its id or its public key
    uptime: int
    used: dict[str, int]
    health: list[str]


def record_uptime(*, node: Node, uptime: int, used: dict[str, int], health: list[str]) -> Node:
    """Store a report and move an approved node between online, degraded and offline."""
    with transaction.atomic():
        # The farm comes along for the reply's desired version; only the node's row is locked.
        node = Node.objects.select_for_update(of=("self",)).select_related("farm").get(pk=node.pk)
        report = UptimeIn(node.public_key, str(node.pk), uptime, used, health)
        with _statement_cursor() as cursor:
            _store_reports([(node, report)], cursor)
    return node


def record_uptime_batch(reports: list[UptimeIn]) -> list[tuple[Node, str] | LedgerError]:
    """Store many nodes' reports in one transaction: per report, its node and the status it
    left the node in, or why it was refused (the same refusals as the one-report API path).

    The uptime ingest (ledger/ingest.py) gathers the reports that arrive while the previous
    batch is written, so a busy control plane makes a handful of statements per batch instead
    of five per report. The nodes' rows are locked in id order, so two workers' batches and
    the ledger monitor never deadlock; a node reporting twice in a batch has both reports
    stored and counted, in arrival order.
    """
    if not reports:  # every nonce of the batch was replayed
        return []
    with transaction.atomic(), _statement_cursor() as cursor:
        nodes = _lock_reporting_nodes(cursor, {r.public_key for r in reports})
        outcomes: list[tuple[Node, str] | LedgerError | None] = []
        accepted = []
        for report in reports:
            refusal = _uptime_refusal(report, nodes.get(report.public_key))
            outcomes.append(refusal)
            if refusal is None:
                accepted.append((nodes[report.public_key], report))
        statuses = iter(_store_reports(accepted, cursor))
    return [
        (nodes[r.public_key], next(statuses)) if outcome is None else outcome
        for r, outcome in zip(reports, outcomes, strict=True)
    ]


@contextmanager
def _statement_cursor() -> Iterator[Any]:
    """A cursor for the uptime statements, in the caller's transaction.

    On PostgreSQL a plain psycopg cursor on Django's connection: it binds parameters on the
    server, and psycopg prepares a statement it has run five times, so a batch's few statements
    are neither formatted in Python (Django's default client-side binding was ~7 % of a
    report's CPU in a profile) nor parsed and planned again by PostgreSQL. Wrapped as Django
    wraps its own, so errors are Django's (a lost server marks the connection unusable) and
    queries are logged where Django logs them. Elsewhere (SQLite) Django's own cursor.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    with wrap(raw) as cursor:
        yield cursor


# What a batch reads of each node: the checks, the status change, the reply (ledger/ingest.py).
# The rest of the row (interfaces, capacity, timestamps) is neither needed nor cheap to load.
# In the model's field order (Model.from_db maps the values by it).
_LOCKED_NODE_FIELDS = (
    "id",
    "public_key",
    "farm_id",
    "status",
    "gateway_domain",
    "gateway_addresses",
    "gateway_any_backend",
)


def _lock_reporting_nodes(cursor: Any, keys: set[str]) -> dict[str, Node]:
    """The nodes with these keys, their rows locked in id order, with their farm's wanted
    agent version: partial instances (as `.only()` makes), read by one statement without the
    ORM building it each batch."""
    quote = connection.ops.quote_name
    node_table, farm_table = quote(Node._meta.db_table), quote(Farm._meta.db_table)
    columns = ", ".join(f"n.{quote(name)}" for name in _LOCKED_NODE_FIELDS)
    if connection.vendor == "postgresql":
        match, lock = "= ANY(%s)", "FOR UPDATE OF n"  # one statement text for any batch size
        params: list[Any] = [list(keys)]
    else:  # SQLite: its write lock is the whole database's, taken by the transaction
        match, lock, params = f"IN ({', '.join(['%s'] * len(keys))})", "", list(keys)
    cursor.execute(
        f"SELECT {columns}, f.{quote('desired_agent_version')} "  # noqa: S608 (names only)
        f"FROM {node_table} n JOIN {farm_table} f ON f.{quote('id')} = n.{quote('farm_id')} "
        f"WHERE n.{quote('public_key')} {match} ORDER BY n.{quote('id')} {lock}",
        params,
    )
    addresses = Node._meta.get_field("gateway_addresses")
    nodes = {}
    for *values, desired in cursor.fetchall():
        values[5] = addresses.from_db_value(values[5], None, connection)
        values[6] = bool(values[6])  # SQLite answers 0 or 1
        node = Node.from_db(connection.alias, _LOCKED_NODE_FIELDS, values)
        farm = [values[2], desired]
        node.farm = Farm.from_db(connection.alias, ("id", "desired_agent_version"), farm)
        nodes[node.public_key] = node
    return nodes


def _uptime_refusal(report: UptimeIn, node: Node | None) -> LedgerError | None:
    # As the DRF path answers them (ledger/node_auth.py, ledger/views.py), server time included.
    now = int(time.time())
    if node is None:
        return LedgerError(
            "unknown_node", "no node is registered with this key", http_status=403, server_time=now
        )
    if node.status == NodeStatus.DECOMMISSIONED:
        return LedgerError(
            "node_decommissioned", "this node was decommissioned", http_status=403, server_time=now
        )
    path_id = report.path_id.lower()
    if path_id in (str(node.pk), node.public_key):
        return None
    field = "pk" if path_id.isdigit() else "public_key"
    if not Node.objects.filter(**{field: path_id}).exists():
        return LedgerError("not_found", "Not found.", http_status=404)
    return LedgerError(
        "node_mismatch",
        "a node may only report for itself; the signing key belongs to another node",
        http_status=403,
        server_time=now,
    )


def _store_reports(reports: list[tuple[Node, UptimeIn]], cursor: Any) -> list[str]:
    """Write locked nodes' reports, their hours and the nodes' new state; each report's status.

    One INSERT of the reports, one upsert of their hours, one UPDATE of the nodes (the two
    prepared statements run for every row at once: psycopg pipelines an `executemany` into one
    round trip), plus an audit entry for each status change, whatever the number of reports.
    Written as SQL, not `bulk_create`/`bulk_update`: building those statements in Python was
    most of a batch's CPU (docs/performance.md).
    """
    if not reports:
        return []
    now, statuses, changed = timezone.now(), [], {}
    _insert_rows(
        cursor,
        UptimeReport,
        ["node", "received_at", "uptime", "used", "health"],
        [[n.pk, now, r.uptime, r.used, r.health] for n, r in reports],
    )
    uptime_reports_stored.send(UptimeReport, count=len(reports))
    count_reports(((n.pk, now) for n, _ in reports), cursor=cursor)
    for node, report in reports:
        node.uptime = report.uptime
        node.health = report.health
        node.last_seen = now
        node.updated_at = now
        for field in ("cru", "mru", "sru", "hru"):
            setattr(node, f"used_{field}", report.used.get(field, 0))
        if node.status in APPROVED_STATUSES:
            target = NodeStatus.DEGRADED if report.health else NodeStatus.ONLINE
            flags = ", ".join(report.health)
            reason = f"health flags: {flags}" if report.health else "reporting, healthy"
            node.transition_to(target, reason=reason, actor=f"node:{node.pk}")
        statuses.append(node.status)
        changed[node.pk] = node
    _update_reported_fields(cursor, list(changed.values()))
    return statuses


def _insert_rows(cursor: Any, model: type, names: list[str], rows: list[list]) -> None:
    """One prepared INSERT of `model`'s fields `names`, run for every row."""
    fields = [model._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
    prepared = [
        [f.get_db_prep_value(value, connection) for f, value in zip(fields, row, strict=True)]
        for row in rows
    ]
    cursor.executemany(sql, prepared)


_UPTIME_FIELDS = [
    "uptime",
    "health",
    "last_seen",
    "updated_at",
    "status",
    "used_cru",
    "used_mru",
    "used_sru",
    "used_hru",
]


def _update_reported_fields(cursor: Any, nodes: list[Node]) -> None:
    """One prepared UPDATE run for every node. Not `bulk_update`: its CASE WHEN per field and
    node was a quarter of the ingest's CPU in a profile, more than the rest of the batch's
    statements together."""
    fields = [Node._meta.get_field(name) for name in _UPTIME_FIELDS]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    table = quote(Node._meta.db_table)
    sql = f"UPDATE {table} SET {assignments} WHERE {quote('id')} = %s"  # noqa: S608 (names only)
    rows = [
        [f.get_db_prep_value(getattr(node, f.attname), connection) for f in fields] + [node.pk]
        for node in nodes
    ]
    cursor.executemany(sql, rows)


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
