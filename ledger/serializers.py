"""Validation of what nodes and users send, and the shapes the API returns."""

from rest_framework import serializers

from ledger.gateways import gateway_settings
from ledger.models import AgentRelease, BootImage, EnrollmentToken, Farm, Node, UserKey
from ledger.services import NodeReport

HEALTH_FLAG_MAX = 32
MAX_INTERFACES = 64


class CapacitySerializer(serializers.Serializer):
    cru = serializers.IntegerField(min_value=0, max_value=1_000_000)
    mru = serializers.IntegerField(min_value=0, max_value=2**62)
    sru = serializers.IntegerField(min_value=0, max_value=2**62)
    hru = serializers.IntegerField(min_value=0, max_value=2**62)


class UsedCapacitySerializer(CapacitySerializer):
    cru = serializers.IntegerField(min_value=0, max_value=1_000_000, default=0)
    mru = serializers.IntegerField(min_value=0, max_value=2**62, default=0)
    sru = serializers.IntegerField(min_value=0, max_value=2**62, default=0)
    hru = serializers.IntegerField(min_value=0, max_value=2**62, default=0)


class InterfaceSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=32)
    mac = serializers.CharField(max_length=32, allow_blank=True)
    ips = serializers.ListField(child=serializers.CharField(max_length=64), max_length=64)


class RegistrationSerializer(serializers.Serializer):
    farm = serializers.IntegerField(min_value=1)
    enroll_token = serializers.CharField(max_length=128, required=False, allow_blank=True)
    capacity = CapacitySerializer()
    interfaces = InterfaceSerializer(many=True, max_length=MAX_INTERFACES)
    serial = serializers.CharField(max_length=128, allow_blank=True, default="")
    secure_boot = serializers.BooleanField(default=False)
    virtualized = serializers.BooleanField(default=False)
    agent_version = serializers.CharField(max_length=64, allow_blank=True, default="")
    image_version = serializers.CharField(max_length=64, allow_blank=True, default="")
    mycelium_address = serializers.CharField(max_length=64, allow_blank=True, default="")

    def to_report(self) -> NodeReport:
        data = dict(self.validated_data)
        for unused in ("farm", "enroll_token"):
            data.pop(unused, None)
        data["capacity"] = dict(data["capacity"])
        data["interfaces"] = [dict(i) for i in data["interfaces"]]
        return NodeReport(**data)


class UptimeSerializer(serializers.Serializer):
    uptime = serializers.IntegerField(min_value=0, max_value=2**62)
    used = UsedCapacitySerializer(required=False)
    health = serializers.ListField(
        child=serializers.RegexField(r"^[a-z][a-z0-9_]{0,63}$"),
        max_length=HEALTH_FLAG_MAX,
        default=list,
    )


class FarmSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = Farm
        fields = ["id", "name", "owner", "desired_agent_version", "created"]


class FarmCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, help_text="Unique across the grid.")


class EnrollmentTokenSerializer(serializers.ModelSerializer):
    """A token as its farmer sees it later: never the secret, only its start."""

    state = serializers.SerializerMethodField()

    class Meta:
        model = EnrollmentToken
        fields = [
            "id",
            "label",
            "prefix",
            "state",
            "uses_left",
            "expires_at",
            "created",
            "last_used_at",
            "revoked_at",
        ]

    def get_state(self, token: EnrollmentToken) -> str:
        if token.revoked_at is not None:
            return "revoked"
        if token.is_expired:
            return "expired"
        return "spent" if token.uses_left == 0 else "active"


class TokenCreateSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100, allow_blank=True, default="")
    uses = serializers.IntegerField(
        min_value=1, max_value=1000, default=1, help_text="How many nodes it may approve."
    )
    days = serializers.IntegerField(
        min_value=1, max_value=365, default=7, help_text="Days until it expires."
    )


class ReleaseChoiceSerializer(serializers.Serializer):
    agent_version = serializers.CharField(
        max_length=64,
        allow_blank=True,
        help_text='A published agent release, or "" to leave each node on what it runs.',
    )


class BootLinkSerializer(serializers.Serializer):
    """A farm's secret boot link (ledger/boot_links.py), for its owner."""

    farm = serializers.IntegerField()
    url = serializers.CharField(help_text="The folder; each file is <url><name>.")
    files = serializers.DictField(child=serializers.CharField())
    approving = serializers.BooleanField(
        help_text="Whether the media carry the farm's enrollment token (Farm.boot_enroll)."
    )


class NodeSerializer(serializers.ModelSerializer):
    capacity = serializers.SerializerMethodField()
    used = serializers.SerializerMethodField()
    gateway = serializers.SerializerMethodField(
        help_text="null, or the gateway's {domain, addresses, any_backend} (ledger/gateways.py)"
    )

    class Meta:
        model = Node
        fields = [
            "id",
            "public_key",
            "farm",
            "status",
            "capacity",
            "used",
            "interfaces",
            "serial",
            "secure_boot",
            "virtualized",
            "agent_version",
            "image_version",
            "mycelium_address",
            "gateway",
            "health",
            "uptime",
            "last_seen",
            "registered_at",
        ]

    def get_capacity(self, node: Node) -> dict[str, int]:
        return {"cru": node.cru, "mru": node.mru, "sru": node.sru, "hru": node.hru}

    def get_used(self, node: Node) -> dict[str, int]:
        return {
            "cru": node.used_cru,
            "mru": node.used_mru,
            "sru": node.used_sru,
            "hru": node.used_hru,
        }

    def get_gateway(self, node: Node) -> dict | None:
        return gateway_settings(node)


class FarmNodeSerializer(NodeSerializer):
    """A node as its farmer sees it: with what is free and whether it is drained."""

    free = serializers.SerializerMethodField()
    drained = serializers.BooleanField(read_only=True)

    class Meta(NodeSerializer.Meta):
        fields = [*NodeSerializer.Meta.fields, "free", "drained", "drained_at"]

    def get_free(self, node: Node) -> dict[str, int]:
        used = self.get_used(node)
        return {k: v - used[k] for k, v in self.get_capacity(node).items()}


class UserKeySerializer(serializers.ModelSerializer):
    public_key = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        error_messages={"invalid": "must be exactly 64 lowercase hex characters (ed25519 key)"},
    )
    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    revoked = serializers.BooleanField(read_only=True)
    proof = serializers.JSONField(
        write_only=True,
        help_text="DSSE envelope of type application/vnd.zos.key-proof.v1+json over "
        "{user, public_key, challenge, issued_at}, signed by this key (POST keys/challenge).",
    )

    class Meta:
        model = UserKey
        fields = ["id", "name", "public_key", "proof", "created", "revoked", "revoked_at"]
        read_only_fields = ["id", "created", "revoked", "revoked_at"]
        # Uniqueness is checked by the service, which answers with a specific error code.
        validators = []

    def get_unique_together_validators(self) -> list:
        return []


class BootImageSerializer(serializers.ModelSerializer):
    files = serializers.DictField(read_only=True)
    cmdline = serializers.SerializerMethodField()

    class Meta:
        model = BootImage
        fields = ["version", "is_current", "files", "cmdline", "created"]

    def get_cmdline(self, image: BootImage) -> str:
        return str(image.manifest.get("cmdline", ""))


class AgentReleaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentRelease
        fields = ["version", "sha256", "size", "envelope", "created"]


class RolloutSerializer(serializers.Serializer):
    """Which farms' nodes move to a release: a list of farm ids, or "all"."""

    farms = serializers.JSONField(help_text='a non-empty list of farm ids, or "all"')

    def validate_farms(self, value: object) -> list[int] | None:
        if value == "all":
            return None
        if (
            isinstance(value, list)
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        ):
            return value
        raise serializers.ValidationError('a non-empty list of farm ids, or "all"')
