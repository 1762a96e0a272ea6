"""What an account owns besides Django's user: named API tokens for the CLI and scripts."""

import hashlib

from django.conf import settings
from django.db import models


def hash_api_secret(secret: str) -> str:
    """Secrets are 256-bit random strings, so a plain sha256 is a safe lookup key."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    """One named API token; only its hash is kept, the secret is shown once at creation.

    DRF's own `authtoken.Token` allows one token per user, kept in clear; a person with a laptop,
    a CI job and a dashboard wants several, each revocable on its own.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=64)
    prefix = models.CharField(
        max_length=12, help_text="The secret's first characters, to recognise it in a list."
    )
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.user}/{self.name}"
