"""Drafts: scripts a user keeps on the server while writing them, before signing any.

A draft is never run and never signed by the server; it only spares the user from losing a
script between two browsers or two visits. Its limits are a deployment's, so any draft can be
deployed as it is, and a user's drafts are bounded so storage is too.
"""

from django.db import IntegrityError, transaction

from coordinator.models import Draft
from grid.errors import ServiceError

DRAFTS_PER_USER = 200


def save_draft(*, owner, name: str, script: str, draft: Draft | None = None) -> Draft:
    """Create a draft of `owner`, or change `draft` (already known to be theirs)."""
    if draft is None and Draft.objects.filter(owner=owner).count() >= DRAFTS_PER_USER:
        raise ServiceError(
            "too_many_drafts",
            f"you have {DRAFTS_PER_USER} drafts, the most kept; delete some first",
            http_status=409,
        )
    draft = draft or Draft(owner=owner)
    draft.name, draft.script = name, script
    try:
        with transaction.atomic():
            draft.save()
    except IntegrityError:
        raise ServiceError(
            "draft_exists",
            f"you already have a draft named {name!r}: open it, or save under another name",
            http_status=409,
            name=name,
        ) from None
    return draft
