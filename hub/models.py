"""Published workload images and the content-addressed blobs their parts are.

A blob's bytes live once on disk, named by sha256 (hub/blobstore.py); a `Blob` row says that
one user uploaded those bytes. Rows are per owner on purpose: a user may only name in a manifest
the parts they uploaded themselves, so knowing the hash of someone else's private part gives
neither its existence (HEAD) nor its content (a node fetch for your image).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from ledger.models import UserKey


class ImageKind(models.TextChoices):
    VM = "vm", "VM"
    CONTAINER = "container", "container"


class Blob(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    created = models.DateTimeField(auto_now_add=True)
    touched = models.DateTimeField(
        default=timezone.now,
        help_text="Last upload or HEAD; pruning spares blobs touched within its grace.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "sha256"], name="blob_once_per_owner")
        ]

    def __str__(self) -> str:
        return f"{self.sha256[:12]} ({self.size} bytes, user {self.owner_id})"


class Image(models.Model):
    """One version of a named image, kept as the publisher signed it (envelope and payload)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="images"
    )
    name = models.CharField(max_length=48)
    version = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=ImageKind.choices)
    public = models.BooleanField(
        default=False, help_text="Visible to every user; only staff may publish public images."
    )
    envelope = models.JSONField(help_text="The DSSE envelope as the publisher signed it.")
    payload = models.TextField(help_text="The verified manifest bytes (UTF-8 JSON).")
    signer = models.ForeignKey(UserKey, on_delete=models.PROTECT, related_name="+")
    size = models.BigIntegerField(help_text="All parts together, in bytes.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-created", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name", "version"], name="image_version_once")
        ]
        indexes = [models.Index(fields=["name", "public"])]

    def __str__(self) -> str:
        return f"{self.name}:{self.version} ({'public' if self.public else 'private'})"


class ImagePart(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="parts")
    role = models.CharField(max_length=16)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "role"], name="image_part_role_once")
        ]

    def __str__(self) -> str:
        return f"{self.image} {self.role} {self.sha256[:12]}"
