"""Every state change of the image hub, and the visibility rules reads go through.

Visibility has one rule, applied for users and nodes alike: a user sees their own images and the
public ones; anything else does not exist for them (404). A node sees what the owner it fetches
for sees, and only for owners whose jobs the coordinator gave it, as for inventory reports.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, BinaryIO

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from nacl.signing import VerifyKey

from contracts.image_manifest import SHA256_RE, ManifestError, check_name, parse_manifest
from contracts.payload_types import IMAGE_TYPE
from coordinator.models import Job
from grid.errors import ServiceError, signature_refused
from hub import blobstore
from hub.models import Blob, Image, ImagePart
from ledger.models import Node, UserKey
from signing import SignatureError
from signing.dsse import verify_envelope

log = logging.getLogger(__name__)


class HubError(ServiceError):
    """A request the hub refuses; answered as any ServiceError."""


def check_sha256(sha256: str) -> str:
    if not SHA256_RE.match(sha256):
        raise HubError(
            "bad_digest", f"{sha256!r} is not a sha256 digest (64 lowercase hex characters)"
        )
    return sha256


def has_blob(*, owner: AbstractBaseUser, sha256: str) -> Blob | None:
    """The owner's upload of these bytes, if they made one and the bytes are still on disk."""
    blob = Blob.objects.filter(owner=owner, sha256=check_sha256(sha256)).first()
    if blob is None or not blobstore.exists(blob.sha256, blob.size):
        return None
    Blob.objects.filter(pk=blob.pk).update(touched=timezone.now())  # a push counts on it now
    return blob


def store_blob(
    *, owner: AbstractBaseUser, sha256: str, stream: BinaryIO, size: int | None, max_size: int
) -> tuple[Blob, bool]:
    """Stream an upload into the blob store, checked against its name; (blob, created).

    Bytes already on disk are received and checked all the same: the upload is how a user
    proves they hold the content, so a hash alone never lets anyone claim a blob.
    """
    check_sha256(sha256)
    if size is None:
        raise HubError(
            "length_required", "send the blob with a Content-Length header", http_status=411
        )
    if size > max_size:
        raise HubError(
            "blob_too_large",
            f"the blob is {size} bytes; this hub takes at most {max_size} (ZOS_MAX_BLOB_BYTES)",
            http_status=413,
        )
    try:
        blobstore.write(sha256, stream, size)
    except blobstore.BlobMismatch as exc:
        raise HubError(
            "digest_mismatch" if exc.what == "sha256" else "length_mismatch",
            f"the uploaded bytes do not match: {exc.what} expected {exc.expected}, got "
            f"{exc.got}; nothing was stored",
            expected=exc.expected,
            got=exc.got,
        ) from None
    blob, created = Blob.objects.update_or_create(
        owner=owner,
        sha256=sha256,
        defaults={"touched": timezone.now()},
        create_defaults={"size": size},
    )
    return blob, created


def _verify(owner: AbstractBaseUser, envelope: Any) -> tuple[bytes, UserKey]:
    keys = {k.public_key: k for k in UserKey.objects.filter(user=owner, revoked_at__isnull=True)}
    if not keys:
        raise HubError(
            "no_keys",
            "you have no active signing key; add one with `zos key register`",
            http_status=403,
        )
    try:
        payload, verify_key = verify_envelope(
            envelope, IMAGE_TYPE, [VerifyKey(bytes.fromhex(k)) for k in keys]
        )
    except SignatureError as exc:
        raise signature_refused(exc) from exc
    return payload, keys[bytes(verify_key).hex()]


def publish_image(*, owner: AbstractBaseUser, envelope: Any, public: bool = False) -> Image:
    """Verify the publisher's signature and the manifest, check every part, store the image."""
    payload, signer = _verify(owner, envelope)
    try:
        manifest = parse_manifest(payload)
    except ManifestError as exc:
        raise HubError("manifest_invalid", str(exc)) from None
    if public and not owner.is_staff:
        raise HubError(
            "public_needs_staff",
            "only staff publish public images; publish it private (without --public)",
            http_status=403,
        )
    blobs = {
        b.sha256: b
        for b in Blob.objects.filter(owner=owner, sha256__in=[p.sha256 for p in manifest.parts])
    }
    for part in manifest.parts:
        blob = blobs.get(part.sha256)
        if blob is None or not blobstore.exists(blob.sha256, blob.size):
            raise HubError(
                "part_missing",
                f"part {part.role} ({part.sha256}) was not uploaded: PUT /api/v1/blobs/"
                f"{part.sha256} first (`zos image push` does)",
                role=part.role,
                sha256=part.sha256,
            )
        if blob.size != part.size:
            raise HubError(
                "part_size_mismatch",
                f"part {part.role} ({part.sha256}) is {blob.size} bytes, the manifest says "
                f"{part.size}",
                role=part.role,
                sha256=part.sha256,
            )
    try:
        with transaction.atomic():
            image = Image.objects.create(
                owner=owner,
                name=manifest.name,
                version=manifest.version,
                kind=manifest.kind,
                public=public,
                envelope=envelope,
                payload=payload.decode("utf-8"),
                signer=signer,
                size=manifest.size,
            )
            ImagePart.objects.bulk_create(
                ImagePart(image=image, role=p.role, sha256=p.sha256, size=p.size)
                for p in manifest.parts
            )
    except IntegrityError:
        raise HubError(
            "version_exists",
            f"you already published {manifest.name} version {manifest.version}; versions are "
            "never reused: publish another version",
            http_status=409,
        ) from None
    log.info("user %s published image %s (%s)", owner.pk, image, image.kind)
    return image


def delete_image(*, owner: AbstractBaseUser, image: Image) -> None:
    """Remove one version. Nodes that cached it keep their copy until they evict it; blobs stay
    for a re-push."""
    if image.owner_id != owner.pk:
        raise HubError(
            "not_owner",
            f"image {image.name}:{image.version} is not yours to delete",
            http_status=403,
        )
    image.delete()


def visible_images(owner_id: int) -> QuerySet[Image]:
    return Image.objects.filter(Q(owner_id=owner_id) | Q(public=True))


def _check_node_serves(node: Node, owner: object) -> int:
    try:
        owner_id = int(owner)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise HubError("invalid", "owner must be the user id the node fetches for") from None
    if not Job.objects.filter(node=node, deployment__owner_id=owner_id).exists():
        raise HubError(
            "owner_not_on_node",
            f"node {node.pk} runs no job of user {owner_id}, so it may not fetch for them",
            http_status=403,
        )
    return owner_id


def image_for_node(*, node: Node, owner: object, name: str) -> Image:
    """The image `name` as the owner sees it: their own newest version, else the newest public."""
    owner_id = _check_node_serves(node, owner)
    try:
        check_name(name)
    except ManifestError as exc:
        raise HubError("invalid", str(exc)) from None
    found = visible_images(owner_id).filter(name=name)
    image = found.filter(owner_id=owner_id).first() or found.filter(public=True).first()
    if image is None:
        raise HubError(
            "unknown_image", f"no image {name!r} that user {owner_id} may use", http_status=404
        )
    return image


def blob_for_node(*, node: Node, owner: object, sha256: str) -> ImagePart:
    """A part of an image the owner may use, or 404: a node never reads any other blob."""
    owner_id = _check_node_serves(node, owner)
    part = (
        ImagePart.objects.filter(sha256=check_sha256(sha256))
        .filter(Q(image__owner_id=owner_id) | Q(image__public=True))
        .first()
    )
    if part is None or not blobstore.exists(part.sha256, part.size):
        raise HubError(
            "unknown_blob", f"no blob {sha256} in an image user {owner_id} may use", http_status=404
        )
    return part


@dataclass(frozen=True)
class Pruned:
    rows: int  # uploads forgotten
    files: int  # blob files and abandoned upload files deleted
    bytes: int  # disk space freed


def prune_blobs(*, grace: timedelta, dry_run: bool = False) -> Pruned:
    """Forget uploads no image uses and free their bytes (`manage.py prune_blobs`).

    Deleting an image keeps its parts, so publishing it again is instant; this is what finally
    frees them. An upload is unused when no image of its uploader names its bytes, and it is
    forgotten only once untouched for `grace`, because a push uploads its parts first and
    publishes after. A file goes when no upload names it any more and it is older than `grace`
    too (an upload of the same bytes in the meantime rewrites it, so it is spared).
    """
    cutoff = timezone.now() - grace
    used = ImagePart.objects.filter(sha256=OuterRef("sha256"), image__owner=OuterRef("owner"))
    unused = Blob.objects.filter(touched__lt=cutoff).exclude(Exists(used))
    doomed = set(unused.values_list("pk", flat=True))
    rows = len(doomed) if dry_run else unused.filter(pk__in=doomed).delete()[0]
    named = set(Blob.objects.exclude(pk__in=doomed).values_list("sha256", flat=True))
    older_than = cutoff.timestamp()
    files = freed = 0
    unnamed = [path for path in blobstore.stored() if path.name not in named]
    for path in [*unnamed, *blobstore.upload_files()]:
        size = blobstore.size_if_older(path, older_than)
        if size is None:
            continue
        if not dry_run:
            path.unlink(missing_ok=True)
        files += 1
        freed += size
    log.info(
        "pruned blobs: %d uploads, %d files, %d bytes%s",
        rows,
        files,
        freed,
        " (dry run)" if dry_run else "",
    )
    return Pruned(rows=rows, files=files, bytes=freed)
