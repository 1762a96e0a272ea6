"""Who gets a farm's approving boot media, and the farm's secret boot link (docs/security.md #10).

Media stamped with the farm's boot enrollment token approve every node booted from them: they
are a credential for the farm, and farm ids are sequential. So they are served only

- at `/boot/<farm>/<file>` to a signed-in user (session or API token) who owns the farm, or staff;
- at `/boot/<farm>/<secret>/<file>` to anyone holding the farm's boot link — a machine booting
  over iPXE or a `curl | dd` has no credentials, so a farmer needs a URL that works alone.

Everyone else asking `/boot/<farm>/<file>` gets the same image without the token: its nodes
register `pending` until the owner or an operator approves them.

The link secret is HMAC(SECRET_KEY, "<farm>:<nonce>") and the database keeps only the random
nonce. A copy of the database alone therefore does not open the door (the protection a stored
hash gives tokens), while the owner can still be shown the link again, which a one-way hash
would not allow. It is compared in constant time. Rotating replaces the nonce and revokes the
boot token in one transaction, so the old link and the media made from it stop approving.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from ledger.boot import ARTEFACTS
from ledger.choices import AuditKind
from ledger.errors import LedgerError
from ledger.models import AuditEntry, EnrollmentToken, Farm, FarmBootToken, new_link_nonce

LINK_SALT = "ledger.boot_links.secret"


@dataclass(frozen=True)
class Downloader:
    """Who asks for approving media: a user, or whoever holds the farm's link."""

    actor: str  # "user:<name>" or "link", as the audit log writes it
    client_ip: str


def boot_link_secret(farm: Farm) -> str:
    """The secret of the farm's current boot link (64 hex digits)."""
    value = f"{farm.pk}:{farm.boot_link_nonce}"
    return salted_hmac(LINK_SALT, value, algorithm="sha256").hexdigest()


def boot_link_url(farm: Farm, base: str) -> str:
    """The farm's approving download folder; `<url><file>` is each file."""
    return f"{base.rstrip('/')}/boot/{farm.pk}/{boot_link_secret(farm)}/"


def describe_link(farm: Farm, base: str) -> dict:
    """What the owner is shown: the link, each file under it, whether they approve nodes."""
    url = boot_link_url(farm, base)
    return {
        "farm": farm.pk,
        "url": url,
        "files": {name: f"{url}{name}" for name in ARTEFACTS},
        "approving": farm.boot_enroll,
    }


def check_boot_link(farm: Farm, secret: str) -> None:
    """Refuse a wrong or rotated-out link as if the path did not exist (nothing to probe)."""
    if not constant_time_compare(secret, boot_link_secret(farm)):
        raise LedgerError(
            "unknown_boot_link",
            "no such boot link: it was mistyped or rotated; ask the farm's owner for the "
            "current one",
            http_status=404,
        )


def manages_farm(user, farm: Farm) -> bool:
    """The farm's owner and staff may see its link and get approving media when signed in."""
    return bool(user and user.is_authenticated and (user.is_staff or farm.owner_id == user.pk))


def rotate_boot_link(*, farm: Farm, actor: str) -> Farm:
    """A new link secret; the old link is dead and the boot token it led to is revoked.

    The next approving download mints a new boot token (ledger.boot.farm_boot_secret) and so
    new media; nodes already approved are not affected.
    """
    with transaction.atomic():
        farm = Farm.objects.select_for_update().get(pk=farm.pk)
        farm.boot_link_nonce = new_link_nonce()
        farm.save(update_fields=["boot_link_nonce"])
        current = FarmBootToken.objects.select_related("token").filter(farm=farm).first()
        revoked = None
        if current is not None:
            revoked = current.token.prefix
            EnrollmentToken.objects.filter(pk=current.token_id).update(revoked_at=timezone.now())
            current.delete()
        AuditEntry.objects.create(
            kind=AuditKind.BOOT_LINK_ROTATED,
            actor=actor,
            farm=farm,
            message=f"boot link of farm {farm} rotated"
            + (f"; boot token {revoked}… revoked" if revoked else ""),
            data={"revoked_token": revoked},
        )
    return farm


def record_approving_download(
    *, farm: Farm, name: str, downloader: Downloader, not_modified: bool
) -> None:
    """Audit one request for media that approve nodes, whether or not the body was sent."""
    AuditEntry.objects.create(
        kind=AuditKind.BOOT_DOWNLOAD,
        actor=downloader.actor,
        farm=farm,
        message=f"approving {name} of farm {farm} downloaded by {downloader.actor} "
        f"from {downloader.client_ip}" + (" (not modified)" if not_modified else ""),
        data={
            "file": name,
            "via": "link" if downloader.actor == "link" else "user",
            "ip": downloader.client_ip,
            "not_modified": not_modified,
        },
    )
