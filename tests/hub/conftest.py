"""A publisher with a registered key and an image directory's worth of parts (real bytes)."""

import hashlib

import pytest

from contracts.image_manifest import Manifest, Part, sign_manifest
from tests.coordinator.conftest import Tenant, make_tenant


@pytest.fixture(autouse=True)
def blob_dir(settings, tmp_path):
    settings.ZOS_BLOB_DIR = tmp_path / "blobs"
    return settings.ZOS_BLOB_DIR


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


KERNEL = b"\x7fELF a tiny kernel " * 1000
INITRD = b"070701 an initramfs " * 500


def upload(tenant: Tenant, data: bytes, digest: str | None = None):
    return tenant.api.put(
        f"/api/v1/blobs/{digest or sha(data)}", data, content_type="application/octet-stream"
    )


def manifest(name: str = "tiny", version: str = "1", **extra) -> Manifest:
    fields = {
        "name": name,
        "version": version,
        "kind": "vm",
        "parts": (
            Part("kernel", sha(KERNEL), len(KERNEL)),
            Part("initrd", sha(INITRD), len(INITRD)),
        ),
        "cmdline": "quiet",
        **extra,
    }
    return Manifest(**fields)


def publish(tenant: Tenant, image: Manifest | None = None, *, public: bool = False, envelope=None):
    envelope = envelope or sign_manifest(tenant.key, image or manifest())
    return tenant.api.post(
        "/api/v1/images", {"envelope": envelope, "public": public}, content_type="application/json"
    )


def pushed(tenant: Tenant, image: Manifest | None = None, *, public: bool = False) -> dict:
    """Upload the parts and publish: what `zos image push` does."""
    for data in (KERNEL, INITRD):
        assert upload(tenant, data).status_code in (200, 201)
    response = publish(tenant, image, public=public)
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def alice(db) -> Tenant:
    return make_tenant("alice")


@pytest.fixture
def mallory(db) -> Tenant:
    return make_tenant("mallory")


@pytest.fixture
def operator(db) -> Tenant:
    tenant = make_tenant("operator")
    tenant.user.is_staff = tenant.user.is_superuser = True
    tenant.user.save()
    return tenant
