"""Who gets boot media that approve nodes (docs/security.md finding 10, "an open door").

The attack: `/boot/<farm>/usb.img` was public and carried the farm's auto-approving enrollment
token, farm ids are sequential, so anyone could add approved nodes to anyone's farm. Now only
the owner (signed in) or the holder of the farm's secret boot link get that token.
"""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from rest_framework.authtoken.models import Token

from ledger.boot_links import boot_link_url
from ledger.choices import AuditKind
from ledger.models import AuditEntry, EnrollmentToken, Farm, hash_token_secret
from tests.conftest import NodeClient, make_farm, make_user
from tests.ledger.conftest import body, cmdline_of

pytestmark = pytest.mark.django_db


def enroll_word(client, path: str, tmp_path, **headers) -> str | None:
    """Download a UKI and return the enrollment token its command line carries, if any."""
    response = client.get(path, **headers)
    assert response.status_code == 200, response.content
    words = dict(w.split("=", 1) for w in cmdline_of(body(response), tmp_path).split() if "=" in w)
    return words.get("zos.enroll")


def register_from(client, farm, token: str | None):
    """A new machine booted from media carrying `token` registers (what the agent does)."""
    extra = {"enroll_token": token} if token else {}
    return NodeClient(client).register(farm, **extra)


def link_of(client, farm) -> str:
    response = client.get(f"/api/v1/farms/{farm.pk}/boot-link")
    assert response.status_code == 200, response.content
    return response.json()["url"]


def test_an_anonymous_download_carries_no_token_and_its_node_waits(client, image, boot_dirs):
    """The reported attack: download /boot/<farm>/zos.efi, boot it, get an approved node."""
    farm = make_farm()
    token = enroll_word(client, f"/boot/{farm.pk}/zos.efi", boot_dirs)
    assert token is None
    assert "zos.enroll" not in body(client.get(f"/boot/{farm.pk}/boot.ipxe")).decode()
    node = register_from(client, farm, token)
    assert node.status_code == 201 and node.json()["status"] == "pending"
    assert not AuditEntry.objects.filter(kind=AuditKind.BOOT_DOWNLOAD).exists()


def test_the_owner_signed_in_gets_approving_media(client, image, boot_dirs):
    farm = make_farm()
    client.force_login(farm.owner)
    token = enroll_word(client, f"/boot/{farm.pk}/zos.efi", boot_dirs)
    assert EnrollmentToken.objects.get(secret_hash=hash_token_secret(token)).farm == farm
    assert register_from(Client(), farm, token).json()["status"] == "online"

    api = Token.objects.create(user=farm.owner)
    by_token = enroll_word(
        Client(), f"/boot/{farm.pk}/zos.efi", boot_dirs, HTTP_AUTHORIZATION=f"Token {api.key}"
    )
    assert by_token == token
    wrong = Client().get(f"/boot/{farm.pk}/zos.efi", HTTP_AUTHORIZATION="Token nope")
    # refused (401: the token scheme is the first authenticator), never served the pending file
    # as if no token had been sent
    assert wrong.status_code == 401 and wrong.json()["error"] == "authentication_failed"


def test_another_signed_in_user_gets_the_pending_variant_and_no_link(client, image, boot_dirs):
    farm = make_farm()
    client.force_login(make_user("mallory"))
    assert enroll_word(client, f"/boot/{farm.pk}/zos.efi", boot_dirs) is None
    for method in (client.get, client.post):
        refused = method(f"/api/v1/farms/{farm.pk}/boot-link")
        assert refused.status_code == 404 and refused.json()["error"] == "unknown_farm"
    assert client.post(f"/boot/{farm.pk}/").status_code == 403
    guessed = client.get(f"/boot/{farm.pk}/{'0' * 64}/zos.efi")
    assert guessed.status_code == 404 and guessed.json()["error"] == "unknown_boot_link"
    assert Client().get(f"/api/v1/farms/{farm.pk}/boot-link").status_code in (401, 403)


def test_the_link_works_alone_and_rotation_kills_it_and_its_token(client, image, boot_dirs):
    farm = make_farm()
    client.force_login(farm.owner)
    old_link = link_of(client, farm)
    assert old_link == boot_link_url(farm, "http://testserver")
    assert old_link.startswith(f"http://testserver/boot/{farm.pk}/")
    old_path = old_link.removeprefix("http://testserver")
    stranger = Client()
    old_token = enroll_word(stranger, f"{old_path}zos.efi", boot_dirs)
    assert old_token is not None
    approved = NodeClient(Client())
    assert approved.register(farm, enroll_token=old_token).json()["status"] == "online"

    rotated = client.post(f"/api/v1/farms/{farm.pk}/boot-link")
    assert rotated.status_code == 200
    new_path = rotated.json()["url"].removeprefix("http://testserver")
    assert new_path != old_path and link_of(client, farm).endswith(new_path)

    dead = stranger.get(f"{old_path}zos.efi")
    assert dead.status_code == 404 and dead.json()["error"] == "unknown_boot_link"
    # The old media stop approving: a new machine booted from them is refused outright.
    refused = register_from(Client(), farm, old_token)
    assert refused.status_code == 403 and refused.json()["error"] == "enroll_token_revoked"
    assert AuditEntry.objects.filter(kind=AuditKind.SECURITY, farm=farm).exists()
    # Nodes approved before are not affected.
    assert approved.register(farm, enroll_token=old_token).json()["status"] == "online"

    new_token = enroll_word(stranger, f"{new_path}zos.efi", boot_dirs)
    assert new_token not in (None, old_token)
    assert register_from(Client(), farm, new_token).json()["status"] == "online"
    assert enroll_word(client, f"/boot/{farm.pk}/zos.efi", boot_dirs) == new_token


def test_approving_downloads_and_rotations_are_audited(client, image, boot_dirs):
    farm = make_farm()
    client.force_login(farm.owner)
    link = link_of(client, farm).removeprefix("http://testserver")
    client.get(f"/boot/{farm.pk}/zos.efi", REMOTE_ADDR="192.0.2.7")
    Client().get(f"{link}usb.img", REMOTE_ADDR="198.51.100.9")
    Client().get(f"/boot/{farm.pk}/zos.efi")  # the pending variant: nothing to audit
    Client().get(f"{link}vmlinuz")  # the same for every farm: carries no token

    downloads = AuditEntry.objects.filter(kind=AuditKind.BOOT_DOWNLOAD).order_by("id")
    assert [(d.actor, d.farm, d.data["file"], d.data["via"], d.data["ip"]) for d in downloads] == [
        (f"user:{farm.owner.username}", farm, "zos.efi", "user", "192.0.2.7"),
        ("link", farm, "usb.img", "link", "198.51.100.9"),
    ]
    client.post(f"/api/v1/farms/{farm.pk}/boot-link")
    rotation = AuditEntry.objects.get(kind=AuditKind.BOOT_LINK_ROTATED)
    assert rotation.actor == f"user:{farm.owner.username}" and rotation.farm == farm
    assert (
        EnrollmentToken.objects.get(farm=farm, revoked_at__isnull=False).prefix
        == (rotation.data["revoked_token"])
    )


def test_the_page_rotates_the_link_by_post_with_csrf(image, boot_dirs):
    farm = make_farm()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(farm.owner)
    before = boot_link_url(farm, "http://testserver")
    page = browser.get(f"/boot/{farm.pk}/")
    assert browser.post(f"/boot/{farm.pk}/").status_code == 403  # no CSRF token
    csrf = page.cookies["csrftoken"].value
    done = browser.post(f"/boot/{farm.pk}/", {"csrfmiddlewaretoken": csrf})
    assert done.status_code == 302 and done["Location"] == f"/boot/{farm.pk}/"
    farm.refresh_from_db()
    after = boot_link_url(farm, "http://testserver")
    assert after != before
    text = browser.get(f"/boot/{farm.pk}/").content.decode()
    assert after in text and before not in text and "New boot link made" in text
    assert Client().post(f"/boot/{farm.pk}/").status_code == 403


def test_the_two_variants_are_cached_apart_and_each_bounded(client, image, boot_dirs, settings):
    settings.ZOS_BOOT_STAMPED_KEEP = 1
    farm = make_farm()
    farm_dir = boot_dirs / "boot" / ".farms" / str(farm.pk)
    legacy = farm_dir / "0.0.1-0123456789abcdef"  # stamped before the variants existed
    legacy.mkdir(parents=True)
    anonymous = Client().get(f"/boot/{farm.pk}/zos.efi")["ETag"]
    client.force_login(farm.owner)
    owner = client.get(f"/boot/{farm.pk}/zos.efi")["ETag"]
    assert anonymous != owner
    assert Client().get(f"/boot/{farm.pk}/zos.efi")["ETag"] == anonymous  # not evicted
    for _ in range(3):  # rotations give new tokens, so new approving copies
        client.post(f"/api/v1/farms/{farm.pk}/boot-link")
        client.get(f"/boot/{farm.pk}/zos.efi")
    assert sorted(p.name for p in farm_dir.iterdir()) == ["enroll", "pending"]
    assert [len(list((farm_dir / v).glob("*/zos.efi"))) for v in ("enroll", "pending")] == [1, 1]


@pytest.mark.django_db(transaction=True)
def test_a_farm_made_before_the_migration_keeps_its_media_working(image, boot_dirs):
    """A farm and boot token written by the old schema: after migrating, the owner and the new
    link serve media with the same token, which still approves."""
    executor = MigrationExecutor(connection)
    before = [("ledger", "0002_boot_images_and_releases")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    owner = old.get_model("auth", "User").objects.create(username="old-owner")
    farm = old.get_model("ledger", "Farm").objects.create(name="old", owner_id=owner.pk)
    secret = "zet_made-by-the-old-code"
    token = old.get_model("ledger", "EnrollmentToken").objects.create(
        farm_id=farm.pk,
        secret_hash=hash_token_secret(secret),
        prefix=secret[:12],
        expires_at="2999-01-01T00:00:00Z",
        uses_left=1000,
    )
    old.get_model("ledger", "FarmBootToken").objects.create(
        farm_id=farm.pk, token_id=token.pk, secret=secret
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    farm = Farm.objects.get(pk=farm.pk)
    assert farm.boot_link_nonce
    link = boot_link_url(farm, "http://testserver").removeprefix("http://testserver")
    assert enroll_word(Client(), f"{link}zos.efi", boot_dirs) == secret
    owner_client = Client()
    owner_client.force_login(farm.owner)
    assert enroll_word(owner_client, f"/boot/{farm.pk}/zos.efi", boot_dirs) == secret
    assert register_from(Client(), farm, secret).json()["status"] == "online"
