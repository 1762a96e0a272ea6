from rest_framework import serializers

from coordinator.choices import JobState
from coordinator.models import Deployment, Draft, Job, JobEvent, Workload
from coordinator.states import AWAITING_DELIVERY

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
SCRIPT_MAX_CHARS = 64 * 1024  # a deployment's script, and so a draft's


class ResourcesSerializer(serializers.Serializer):
    cru = serializers.IntegerField(min_value=0, max_value=1_000_000, default=0)
    mru = serializers.IntegerField(min_value=0, max_value=2**62, default=0)
    sru = serializers.IntegerField(min_value=0, max_value=2**62, default=0)
    hru = serializers.IntegerField(min_value=0, max_value=2**62, default=0)


class TargetSerializer(serializers.Serializer):
    node = serializers.IntegerField(min_value=1, required=False)
    farm = serializers.IntegerField(min_value=1, required=False)

    def validate(self, attrs: dict) -> dict:
        if len(attrs) != 1:
            raise serializers.ValidationError('target must be {"node": id} or {"farm": id}')
        return attrs


class DeploymentPayloadSerializer(serializers.Serializer):
    """The signed payload of a deployment envelope (docs/deployments.md §1)."""

    script = serializers.CharField(max_length=SCRIPT_MAX_CHARS, trim_whitespace=False)
    target = TargetSerializer()
    nonce = serializers.RegexField(r"^[0-9a-f]{16,64}$")
    issued_at = serializers.IntegerField(min_value=0)
    expires_at = serializers.IntegerField(min_value=0)
    name = serializers.RegexField(NAME_PATTERN)
    resources = ResourcesSerializer(required=False)
    timeout = serializers.IntegerField(min_value=1, max_value=24 * 3600, required=False)


class SubmitSerializer(serializers.Serializer):
    envelope = serializers.JSONField()


class ScriptSerializer(serializers.Serializer):
    script = serializers.CharField(max_length=SCRIPT_MAX_CHARS, trim_whitespace=False)


class JobSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="uuid.hex", read_only=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "state",
            "attempt",
            "max_attempts",
            "node",
            "deadline",
            "next_attempt_at",
            "result",
            "error",
            "finished_at",
            "cancel_requested_at",
            "cancel_acked_at",
            "waiting_since",
        ]


def status_detail(job: Job | None) -> str:
    """What the status alone does not say: a cancel not yet confirmed, a job held for its node."""
    if job is None:
        return ""
    if job.state == JobState.CANCELLING:
        return "cancel requested; the node will stop the job when it hears of it"
    if job.waiting_since is not None and job.state in AWAITING_DELIVERY:
        return f"waiting for node {job.node_id} to reconnect"
    return ""


class DeploymentSerializer(serializers.ModelSerializer):
    job = JobSerializer(read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    detail = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = [
            "id",
            "name",
            "owner",
            "status",
            "target",
            "resources",
            "script_sha256",
            "expires_at",
            "created",
            "updated",
            "job",
            "detail",
        ]

    def get_detail(self, deployment: Deployment) -> str:
        return status_detail(getattr(deployment, "job", None))


class JobEventSerializer(serializers.ModelSerializer):
    seq = serializers.IntegerField(source="id", read_only=True)

    class Meta:
        model = JobEvent
        fields = ["seq", "attempt", "status", "log", "result", "error", "ts", "created"]


class WorkloadSerializer(serializers.ModelSerializer):
    class Meta:
        model = Workload
        fields = ["id", "node", "kind", "name", "state", "reserved", "details", "updated"]


class DraftSerializer(serializers.ModelSerializer):
    """A draft as its owner edits it: any name a deployment may have, a script up to the size
    a deployment accepts (so every draft can be deployed as it is)."""

    name = serializers.RegexField(
        NAME_PATTERN,
        max_length=63,
        error_messages={"invalid": "1-63 lowercase letters, digits or '-', not starting with '-'"},
    )
    script = serializers.CharField(
        max_length=SCRIPT_MAX_CHARS, allow_blank=True, trim_whitespace=False
    )

    class Meta:
        model = Draft
        fields = ["id", "name", "script", "created", "updated"]
        read_only_fields = ["id", "created", "updated"]
