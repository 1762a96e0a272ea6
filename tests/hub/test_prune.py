"""`manage.py prune_blobs`: deleted images' parts are freed once no image uses them, while a push
in progress and every published image keep theirs."""

import os
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from hub import blobstore
from hub.models import Blob
from tests.hub.conftest import INITRD, KERNEL, pushed, sha, upload

DAY = timedelta(days=1)


def age(*, days: float) -> None:
    """Every upload and blob file as if last touched `days` ago."""
    Blob.objects.update(touched=timezone.now() - timedelta(days=days))
    then = time.time() - days * 86400
    for path in [*blobstore.stored(), *blobstore.upload_files()]:
        os.utime(path, (then, then))


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_blobs", *args, stdout=out)
    return out.getvalue()


def delete_image(tenant, image: dict) -> None:
    assert tenant.api.delete(f"/api/v1/images/{image['id']}").status_code == 204


def test_a_deleted_images_parts_are_freed_after_the_grace_time_and_not_before(alice):
    delete_image(alice, pushed(alice))
    assert "freed 0.0 MiB: 0 unused uploads forgotten, 0 files deleted" in prune()
    age(days=2)
    assert prune("--dry-run").startswith(f"would free {(len(KERNEL) + len(INITRD)) / 2**20:.1f}")
    assert len(list(blobstore.stored())) == 2 and Blob.objects.count() == 2
    assert "2 unused uploads forgotten, 2 files deleted" in prune()
    assert list(blobstore.stored()) == [] and Blob.objects.count() == 0
    assert alice.api.head(f"/api/v1/blobs/{sha(KERNEL)}").status_code == 404


def test_published_images_keep_their_parts_however_old(alice):
    pushed(alice)
    age(days=30)
    assert "0 unused uploads forgotten, 0 files deleted" in prune()
    assert alice.api.head(f"/api/v1/blobs/{sha(KERNEL)}").status_code == 200


def test_bytes_another_user_still_publishes_stay_on_disk(alice, mallory):
    delete_image(alice, pushed(alice))
    pushed(mallory)  # the same kernel and initrd, uploaded by mallory too
    age(days=2)
    assert "2 unused uploads forgotten, 0 files deleted" in prune()
    assert alice.api.head(f"/api/v1/blobs/{sha(KERNEL)}").status_code == 404
    assert mallory.api.head(f"/api/v1/blobs/{sha(KERNEL)}").status_code == 200


def test_a_push_that_asked_for_an_old_part_keeps_it_until_it_publishes(alice):
    delete_image(alice, pushed(alice))
    age(days=2)
    assert alice.api.head(f"/api/v1/blobs/{sha(KERNEL)}").status_code == 200  # zos image push
    assert upload(alice, INITRD).status_code == 200  # uploaded again: touched, file rewritten
    assert "0 unused uploads forgotten, 0 files deleted" in prune()


def test_an_upload_that_died_before_its_rename_is_cleaned_up(alice, blob_dir):
    upload(alice, KERNEL)
    (blob_dir / "tmp" / "abandoned-upload").write_bytes(b"half a kernel")
    age(days=2)
    Blob.objects.update(touched=timezone.now())  # the finished upload is recent
    assert "0 unused uploads forgotten, 1 files deleted" in prune()
    assert not (blob_dir / "tmp" / "abandoned-upload").exists()
    assert blobstore.exists(sha(KERNEL), len(KERNEL))


def test_a_negative_grace_is_refused():
    with pytest.raises(CommandError, match="must be 0 or more"):
        prune("--grace-hours", "-1")
