"""Deployments, their jobs, and the events nodes report about them."""

import logging
import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from coordinator.choices import JobState
from coordinator.states import FINAL_STATES, InvalidJobTransition, can_transition
from ledger.models import Farm, Node, UserKey

log = logging.getLogger(__name__)


class Deployment(models.Model):
    """A user's signed script, kept exactly as verified so it can be re-sent and audited."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deployments"
    )
    name = models.CharField(max_length=63)
    envelope = models.JSONField(help_text="The DSSE envelope as the user signed it.")
    payload = models.TextField(help_text="The verified payload bytes (UTF-8 JSON).")
    signer = models.ForeignKey(UserKey, on_delete=models.PROTECT, related_name="deployments")
    script_sha256 = models.CharField(max_length=64)
    nonce = models.CharField(max_length=64)
    target_node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    target_farm = models.ForeignKey(
        Farm, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resources = models.JSONField(default=dict, blank=True)
    expires_at = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=JobState.choices, default=JobState.QUEUED, db_index=True
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "nonce"], name="deployment_nonce_once")
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk} ({self.status})"

    @property
    def target(self) -> dict:
        if self.target_node_id:
            return {"node": self.target_node_id}
        return {"farm": self.target_farm_id}


class Job(models.Model):
    """One deployment's execution; retried in place (same uuid, attempt + 1)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    deployment = models.OneToOneField(Deployment, on_delete=models.CASCADE, related_name="job")
    node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    attempt = models.PositiveIntegerField(default=1)
    max_attempts = models.PositiveIntegerField(default=3)
    state = models.CharField(
        max_length=16, choices=JobState.choices, default=JobState.QUEUED, db_index=True
    )
    timeout = models.PositiveIntegerField(default=300, help_text="Seconds a run may take.")
    deadline = models.DateTimeField(null=True, blank=True, db_index=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When the owner cancelled; re-sent until the node acks."
    )
    cancel_acked_at = models.DateTimeField(
        null=True, blank=True, help_text="When the node confirmed it heard of the cancel."
    )
    waiting_since = models.DateTimeField(
        null=True, blank=True, help_text="Held, without spending attempts, for its node's link."
    )
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["node", "state"])]

    def __str__(self) -> str:
        return f"job {self.uuid.hex[:8]} attempt {self.attempt} ({self.state})"

    def transition_to(self, new: str, *, reason: str = "", now: datetime | None = None) -> None:
        """Change state if JOB_TRANSITIONS allows it, and log it with its reason.

        The deployment's status mirrors the job's (a deployment has one job), and a final state
        closes the books here, so no caller can forget to: the job is finished now and has no
        deadline left to watch. The caller saves and writes the event owners see, with the
        reason as its log line or error (coordinator.services._end_job for final states).
        """
        if new == self.state:
            return
        if not can_transition(self.state, new):
            raise InvalidJobTransition(self.state, new)
        log.info(
            "job %s attempt %s: %s -> %s%s",
            self.uuid.hex[:8],
            self.attempt,
            self.state,
            new,
            f": {reason}" if reason else "",
        )
        self.state = new
        self.deployment.status = new
        if new in FINAL_STATES:
            self.finished_at = now or timezone.now()
            self.deadline = None


class JobEvent(models.Model):
    """An ordered log line or state change; `id` is the cursor clients page with."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    attempt = models.PositiveIntegerField()
    status = models.CharField(max_length=16)
    stream_id = models.CharField(max_length=40, blank=True, help_text="Node outbox id.")
    log = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    ts = models.DateTimeField(help_text="When it happened, by the reporter's clock.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "attempt", "stream_id"],
                condition=~models.Q(stream_id=""),
                name="event_once_per_stream_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.job} {self.status} {self.log[:40]}"


class Workload(models.Model):
    """A VM, volume or database as its node last reported it (the node's inventory is the truth;
    this is the coordinator's copy, so owners and the dashboard can see what runs where)."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="workloads")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workloads"
    )
    kind = models.CharField(max_length=16)
    name = models.CharField(max_length=63)
    state = models.CharField(max_length=16)
    reserved = models.JSONField(default=dict, help_text="Capacity held: cru, mru, sru, hru.")
    details = models.JSONField(default=dict, help_text="Addresses, ports, console: as reported.")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["node_id", "kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["node", "owner", "kind", "name"], name="workload_once_per_node_owner"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} on node {self.node_id}"


class NodeLink(models.Model):
    """A node's WebSocket as the coordinator processes know it (docs/deployments.md §8).

    The ASGI process holding the link writes it: up at `welcome`, `seen_at` refreshed while the
    node answers pings, `lost_at` when the link closes or the node stops answering. A process that
    dies cannot write `lost_at`, so a `seen_at` older than the ping interval plus timeout also
    means down. `session` names the connection, so a late close of an old one is ignored.
    """

    node = models.OneToOneField(
        Node, primary_key=True, on_delete=models.CASCADE, related_name="link"
    )
    session = models.CharField(max_length=32)
    connected_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    lost_at = models.DateTimeField(null=True, blank=True)
    lost_reason = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"link of node {self.node_id} ({'down' if self.lost_at else 'up'})"


class Draft(models.Model):
    """A script its owner is still writing: a deployment not yet signed nor submitted.

    Kept on the server so a draft follows its owner to another browser; it is never run.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="drafts"
    )
    name = models.CharField(max_length=63)
    script = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="draft_name_once_per_owner")
        ]

    def __str__(self) -> str:
        return f"draft {self.name} of {self.owner}"
