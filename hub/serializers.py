"""The hub's API shapes: what a publish request carries and how an image is shown."""

import json

from rest_framework import serializers

from hub.models import Image, ImagePart
from signing.keys import key_id


class PublishSerializer(serializers.Serializer):
    envelope = serializers.JSONField(help_text="DSSE envelope of the signed image manifest.")
    public = serializers.BooleanField(default=False, help_text="Staff only: visible to everyone.")


class PartSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImagePart
        fields = ["role", "sha256", "size"]


class ImageSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    parts = PartSerializer(many=True, read_only=True)
    signer = serializers.SerializerMethodField()
    manifest = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = [
            "id",
            "owner",
            "name",
            "version",
            "kind",
            "public",
            "size",
            "parts",
            "signer",
            "manifest",
            "created",
        ]

    def get_signer(self, image: Image) -> str:
        """The signing key's id (first 16 hex of its sha256), as `zos key list` shows it."""
        return key_id(bytes.fromhex(image.signer.public_key))

    def get_manifest(self, image: Image) -> dict:
        return json.loads(image.payload)


class NodeImageSerializer(serializers.ModelSerializer):
    """What a node needs to verify and fetch an image: the envelope and who signed it."""

    publisher = serializers.IntegerField(source="owner_id", read_only=True)

    class Meta:
        model = Image
        fields = ["id", "name", "version", "kind", "public", "publisher", "envelope"]
