"""Publishing images: streamed, hash-checked parts, signed manifests, owner-scoped reads."""

import base64
import json
from dataclasses import replace

from contracts.image_manifest import sign_manifest
from hub import blobstore
from tests.hub.conftest import INITRD, KERNEL, manifest, publish, pushed, sha, upload


def test_a_part_is_stored_under_its_hash_and_a_second_upload_is_a_no_op(alice, blob_dir):
    first = upload(alice, KERNEL)
    assert first.status_code == 201, first.content
    assert first.json() == {"sha256": sha(KERNEL), "size": len(KERNEL)}
    path = blobstore.blob_path(sha(KERNEL))
    assert path.read_bytes() == KERNEL
    assert path.parent.parent.parent == blob_dir and path.parent.name == sha(KERNEL)[:2]
    head = alice.api.head(f"/api/v1/blobs/{sha(KERNEL)}")
    assert head.status_code == 200 and head["Content-Length"] == str(len(KERNEL))
    assert upload(alice, KERNEL).status_code == 200


def test_bytes_that_do_not_match_their_hash_are_refused_and_never_kept(alice, blob_dir):
    response = upload(alice, KERNEL + b"tampered", digest=sha(KERNEL))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "digest_mismatch" and body["expected"] == sha(KERNEL)
    assert body["got"] == sha(KERNEL + b"tampered")
    assert not blobstore.blob_path(sha(KERNEL)).exists()
    assert list((blob_dir / "tmp").iterdir()) == []  # no half-written upload left behind
    assert alice.api.head(f"/api/v1/blobs/{sha(KERNEL)}").status_code == 404


def test_a_bad_digest_in_the_path_is_a_clear_400(alice):
    response = upload(alice, KERNEL, digest="ABC")
    assert response.status_code == 400 and response.json()["error"] == "bad_digest"


def test_head_only_knows_the_callers_own_uploads(alice, mallory):
    upload(alice, KERNEL)
    # Mallory learns nothing from a hash: she must upload the bytes herself.
    assert mallory.api.head(f"/api/v1/blobs/{sha(KERNEL)}").status_code == 404
    assert upload(mallory, KERNEL).status_code == 201


def test_a_signed_manifest_is_published_with_its_parts(alice):
    image = pushed(alice)
    assert image["name"] == "tiny" and image["version"] == "1" and image["kind"] == "vm"
    assert image["public"] is False and image["owner"] == "alice"
    assert image["size"] == len(KERNEL) + len(INITRD)
    assert [p["role"] for p in image["parts"]] == ["kernel", "initrd"]
    assert image["manifest"]["cmdline"] == "quiet"


def test_a_tampered_manifest_is_refused(alice):
    for data in (KERNEL, INITRD):
        upload(alice, data)
    envelope = sign_manifest(alice.key, manifest())
    signed = json.loads(base64.b64decode(envelope["payload"]))
    signed["cmdline"] = "init=/bin/evil"
    envelope["payload"] = base64.b64encode(json.dumps(signed).encode()).decode()
    response = publish(alice, envelope=envelope)
    assert response.status_code == 403
    assert response.json()["error"] == "signature_invalid"
    assert alice.api.get("/api/v1/images").json()["count"] == 0


def test_a_manifest_signed_by_someone_elses_key_is_refused(alice, mallory):
    for data in (KERNEL, INITRD):
        upload(alice, data)
    response = publish(alice, envelope=sign_manifest(mallory.key, manifest()))
    assert response.status_code == 403 and response.json()["error"] == "signature_invalid"


def test_every_part_must_be_uploaded_with_the_stated_size(alice):
    upload(alice, KERNEL)
    missing = publish(alice)
    assert missing.status_code == 400
    assert missing.json()["error"] == "part_missing" and missing.json()["role"] == "initrd"
    upload(alice, INITRD)
    image = manifest()
    wrong = replace(image, parts=(replace(image.parts[0], size=len(KERNEL) + 1), image.parts[1]))
    response = publish(alice, wrong)
    assert response.status_code == 400 and response.json()["error"] == "part_size_mismatch"


def test_a_bad_manifest_names_the_field(alice):
    upload(alice, KERNEL)
    response = publish(alice, manifest(name="Not A Name"))
    assert response.status_code == 400
    assert response.json()["error"] == "manifest_invalid"
    assert "image name" in response.json()["message"]


def test_versions_are_never_reused(alice):
    pushed(alice)
    again = publish(alice)
    assert again.status_code == 409 and again.json()["error"] == "version_exists"
    assert publish(alice, manifest(version="2")).status_code == 201


def test_only_staff_publish_public_images(alice, operator):
    for data in (KERNEL, INITRD):
        upload(alice, data)
    refused = publish(alice, public=True)
    assert refused.status_code == 403 and refused.json()["error"] == "public_needs_staff"
    assert pushed(operator, public=True)["public"] is True


def test_a_private_image_does_not_exist_for_anyone_else(alice, mallory):
    image = pushed(alice)
    assert mallory.api.get(f"/api/v1/images/{image['id']}").status_code == 404
    assert mallory.api.delete(f"/api/v1/images/{image['id']}").status_code == 404
    assert mallory.api.get("/api/v1/images").json()["count"] == 0
    assert alice.api.get(f"/api/v1/images/{image['id']}").status_code == 200


def test_public_images_are_listed_for_everyone_but_deleted_only_by_their_owner(alice, operator):
    image = pushed(operator, public=True)
    listed = alice.api.get("/api/v1/images?name=tiny").json()["results"]
    assert [i["id"] for i in listed] == [image["id"]]
    refused = alice.api.delete(f"/api/v1/images/{image['id']}")
    assert refused.status_code == 403 and refused.json()["error"] == "not_owner"
    assert operator.api.delete(f"/api/v1/images/{image['id']}").status_code == 204
    assert alice.api.get("/api/v1/images").json()["count"] == 0


def test_listing_images_costs_the_same_queries_for_one_or_many(alice, flat_queries):
    pushed(alice)

    def more():
        for version in ("2", "3", "4"):
            assert publish(alice, manifest(version=version)).status_code == 201

    before, after = flat_queries(lambda: alice.api.get("/api/v1/images"), more, 5)
    assert before["count"] == 1 and after["count"] == 4
    assert [i["version"] for i in after["results"]] == ["4", "3", "2", "1"]
