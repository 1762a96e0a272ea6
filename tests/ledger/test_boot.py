"""The bootstrap service: boot images stored with verified hashes, per-farm artefacts stamped once.

A tiny but real UKI (systemd's EFI stub with a few KiB standing in for the kernel and initrd)
goes through the same objcopy, sgdisk, mkfs.vfat and mtools steps as the real 70 MB one.
"""

import hashlib
import logging
import os
import subprocess
import threading
from pathlib import Path

import pytest

from ledger.boot import FarmArtefacts, register_build
from ledger.errors import LedgerError
from ledger.models import BootImage, EnrollmentToken, FarmBootToken, hash_token_secret
from tests.conftest import make_farm, make_user
from tests.ledger.conftest import body, cmdline_of, make_build

pytestmark = pytest.mark.django_db


def test_a_build_is_stored_with_its_hashes_and_becomes_current(image, boot_dirs):
    assert image.is_current
    for name in ("zos.efi", "vmlinuz", "initrd"):
        stored = (image.directory / name).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == image.files[name]["sha256"]
    second = register_build(make_build(boot_dirs / "build2", "0.1.0+test2"))
    assert list(BootImage.objects.filter(is_current=True)) == [second]


def test_a_file_that_differs_from_the_manifest_is_refused_and_nothing_is_kept(boot_dirs):
    build = make_build(boot_dirs / "build")
    (build / "initrd").write_bytes(b"tampered")
    with pytest.raises(LedgerError) as refused:
        register_build(build)
    assert refused.value.code == "checksum_mismatch"
    assert "initrd" in refused.value.message
    assert not BootImage.objects.exists()
    assert list((boot_dirs / "boot").iterdir()) == []


def test_efi_carries_the_farms_command_line_and_its_own_token(client, image, boot_dirs):
    farm, other = make_farm("f1"), make_farm("f2")
    client.force_login(make_user("op", staff=True))  # staff get every farm's approving files
    response = client.get(f"/boot/{farm.pk}/zos.efi")
    assert response.status_code == 200
    content = body(response)
    sha = hashlib.sha256(content).hexdigest()
    assert response["X-Checksum-Sha256"] == sha
    assert response["ETag"] == f'"{sha}"'
    assert int(response["Content-Length"]) == len(content)
    assert "zos-farm" in response["Content-Disposition"]

    words = dict(w.split("=", 1) for w in cmdline_of(content, boot_dirs).split() if "=" in w)
    assert words["zos.farm"] == str(farm.pk)
    assert words["zos.ledger"] == "http://testserver"
    assert words["zos.version"] == "0.1.0+test1"
    assert len(words["zos.release_key"]) == 64
    token = EnrollmentToken.objects.get(secret_hash=hash_token_secret(words["zos.enroll"]))
    assert token.farm == farm

    other_words = cmdline_of(body(client.get(f"/boot/{other.pk}/zos.efi")), boot_dirs)
    assert f"zos.farm={other.pk}" in other_words
    assert words["zos.enroll"] not in other_words
    assert FarmBootToken.objects.count() == 2


def test_public_url_setting_wins_over_the_request_host(client, image, boot_dirs, settings):
    settings.ZOS_PUBLIC_URL = "https://grid.example.com"
    farm = make_farm()
    assert "zos.ledger=https://grid.example.com " in cmdline_of(
        body(client.get(f"/boot/{farm.pk}/zos.efi")), boot_dirs
    )
    script = body(client.get(f"/boot/{farm.pk}/boot.ipxe")).decode()
    assert f"kernel https://grid.example.com/boot/{farm.pk}/vmlinuz" in script


def test_farm_without_boot_enrollment_gets_no_token(client, image, boot_dirs):
    farm = make_farm()
    farm.boot_enroll = False
    farm.save()
    client.force_login(farm.owner)
    assert "zos.enroll" not in cmdline_of(body(client.get(f"/boot/{farm.pk}/zos.efi")), boot_dirs)


def test_a_spent_boot_token_is_replaced_and_the_image_restamped(client, image, boot_dirs):
    farm = make_farm()
    client.force_login(farm.owner)
    first = client.get(f"/boot/{farm.pk}/zos.efi")["ETag"]
    EnrollmentToken.objects.filter(farm=farm).update(uses_left=0)
    second = client.get(f"/boot/{farm.pk}/zos.efi")["ETag"]
    assert first != second
    assert FarmBootToken.objects.get(farm=farm).token.uses_left > 0


def test_conditional_get_answers_304_without_a_body(client, image):
    farm = make_farm()
    etag = client.get(f"/boot/{farm.pk}/zos.efi")["ETag"]
    again = client.get(f"/boot/{farm.pk}/zos.efi", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again["ETag"] == etag
    assert client.get(f"/boot/{farm.pk}/zos.efi", HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_usb_image_holds_the_stamped_efi_as_the_default_loader(client, image, boot_dirs):
    farm = make_farm()
    efi = body(client.get(f"/boot/{farm.pk}/zos.efi"))
    response = client.get(f"/boot/{farm.pk}/usb.img")
    assert response.status_code == 200
    disk = boot_dirs / "usb.img"
    disk.write_bytes(body(response))
    assert hashlib.sha256(disk.read_bytes()).hexdigest() == response["X-Checksum-Sha256"]
    subprocess.run(
        ["mcopy", "-i", f"{disk}@@1M", "::/EFI/BOOT/BOOTX64.EFI", boot_dirs / "copy.efi"],
        check=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    )
    assert (boot_dirs / "copy.efi").read_bytes() == efi


def test_ipxe_script_kernel_and_initrd(client, image):
    farm = make_farm()
    client.force_login(farm.owner)
    script = client.get(f"/boot/{farm.pk}/boot.ipxe")
    assert script["Content-Type"].startswith("text/plain")
    text = body(script).decode()
    assert text.startswith("#!ipxe")
    assert f"http://testserver/boot/{farm.pk}/vmlinuz" in text
    assert f"zos.farm={farm.pk}" in text and "zos.enroll=zet_" in text
    for name in ("vmlinuz", "initrd"):
        response = client.get(f"/boot/{farm.pk}/{name}")
        assert response["X-Checksum-Sha256"] == image.files[name]["sha256"]
        assert body(response) == (image.directory / name).read_bytes()


def test_artefacts_are_made_once_even_under_concurrent_requests(image, caplog):
    farm = make_farm()
    artefacts = FarmArtefacts(image, farm, "http://ledger.test")
    caplog.set_level(logging.INFO, logger="ledger.boot")
    results, errors = [], []

    def fetch() -> None:
        try:
            results.append(artefacts.get("usb.img"))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len({r.sha256 for r in results}) == 1
    stamped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stamped")]
    assert len([m for m in stamped if m.startswith("stamped usb.img")]) == 1
    assert len([m for m in stamped if m.startswith("stamped zos.efi")]) == 1
    assert not [p for p in artefacts.directory.iterdir() if p.name.endswith(".tmp")]
    # A new request object for the same farm, image and command line reuses the files.
    caplog.clear()
    FarmArtefacts(image, farm, "http://ledger.test").get("usb.img")
    assert not [r for r in caplog.records if r.getMessage().startswith("stamped")]


def test_no_image_unknown_farm_and_unknown_file_are_json_404s(client, boot_dirs):
    farm = make_farm()
    response = client.get(f"/boot/{farm.pk}/usb.img")
    assert response.status_code == 404
    assert response.json()["error"] == "no_boot_image"
    assert "build_image" in response.json()["message"]
    assert client.get("/boot/9999/zos.efi").json()["error"] == "unknown_farm"
    assert client.get(f"/boot/{farm.pk}/secrets.txt").status_code == 404


def test_farm_page_shows_each_visitor_what_they_may_download(client, image):
    from ledger.boot_links import boot_link_url

    owner = make_user("owner")
    farm = make_farm(owner=owner)
    link = boot_link_url(farm, "http://testserver")
    public = f"http://testserver/boot/{farm.pk}/"
    for visitor in (None, make_user("mallory")):
        if visitor:
            client.force_login(visitor)
        text = client.get(f"/boot/{farm.pk}/").content.decode()
        assert f"curl -fL {public}usb.img | sudo dd of=/dev/sdX" in text
        assert "wait until the farm's owner or an operator approves them" in text
        assert link not in text and "zos.enroll" not in text
        assert client.get(f"/boot/{farm.pk}/usb.img")["X-Checksum-Sha256"] in text

    client.force_login(owner)
    page = client.get(f"/boot/{farm.pk}/")
    assert page.status_code == 200
    assert page["Cache-Control"].startswith("max-age=0") and "private" in page["Cache-Control"]
    text = page.content.decode()
    assert f"curl -fL {link}usb.img | sudo dd of=/dev/sdX" in text
    assert f"chain {link}boot.ipxe" in text
    assert "approved at once" in text and 'name="csrfmiddlewaretoken"' in text
    assert "zos.enroll=(set)" in text  # the token itself stays in the files
    assert client.get(f"/boot/{farm.pk}/usb.img")["X-Checksum-Sha256"] in text
    assert image.version in text

    client.force_login(make_user("op", staff=True))
    assert link in client.get(f"/boot/{farm.pk}/").content.decode()


def _upload(client, build: Path, *, version: str, corrupt: str | None = None):
    from django.core.files.uploadedfile import SimpleUploadedFile

    files = [
        SimpleUploadedFile(name, b"not it" if name == corrupt else (build / name).read_bytes())
        for name in ("zos.efi", "vmlinuz", "initrd")
    ]
    manifest = (build / "manifest.json").read_text()
    return client.post(
        "/api/v1/boot-images", {"version": version, "manifest": manifest, "files": files}
    )


def test_staff_upload_a_build_verified_against_its_manifest(client, boot_dirs):
    # Larger than both the body limit and Django's in-memory upload size: it goes via a temp file.
    build = make_build(boot_dirs / "build", "0.2.0+up", initrd_size=3 * 2**20)
    client.force_login(make_user("alice"))
    assert _upload(client, build, version="0.2.0+up").status_code == 403

    client.force_login(make_user("op", staff=True))
    refused = _upload(client, build, version="0.2.0+up", corrupt="vmlinuz")
    assert refused.status_code == 400
    assert refused.json()["error"] == "checksum_mismatch"

    created = _upload(client, build, version="0.2.0+up")
    assert created.status_code == 201, created.content
    assert created.json()["is_current"] is True
    assert set(created.json()["files"]) == {"zos.efi", "vmlinuz", "initrd"}
    assert client.get("/api/v1/boot-images").json()["results"][0]["version"] == "0.2.0+up"
    again = _upload(client, build, version="0.2.0+up")
    assert again.status_code == 409


def test_making_an_image_current_through_the_api_and_pinning_per_farm(client, boot_dirs):
    old = register_build(make_build(boot_dirs / "b1", "1.0"))
    new = register_build(make_build(boot_dirs / "b2", "2.0"))
    farm = make_farm()
    client.force_login(make_user("op", staff=True))
    assert client.post("/api/v1/boot-images/1.0/current").json()["is_current"] is True
    assert "zos.version=1.0" in cmdline_of(body(client.get(f"/boot/{farm.pk}/zos.efi")), boot_dirs)
    farm.boot_image = new
    farm.save()
    assert "zos.version=2.0" in cmdline_of(body(client.get(f"/boot/{farm.pk}/zos.efi")), boot_dirs)
    old.refresh_from_db()
    assert old.is_current


def test_admin_lists_images_and_makes_one_current(client, boot_dirs):
    old = register_build(make_build(boot_dirs / "b1", "1.0"))
    register_build(make_build(boot_dirs / "b2", "2.0"))
    client.force_login(make_user("op", staff=True))
    page = client.get("/admin/ledger/bootimage/")
    assert b"2.0" in page.content and b"1.0" in page.content
    client.post(
        "/admin/ledger/bootimage/", {"action": "make_current", "_selected_action": [old.pk]}
    )
    assert BootImage.objects.get(is_current=True) == old


def test_farm_list_links_each_farm_to_its_boot_page(client, boot_dirs):
    farm = make_farm()
    client.force_login(make_user("op", staff=True))
    assert f'href="/boot/{farm.pk}/"'.encode() in client.get("/admin/ledger/farm/").content


def _stamped_dirs(boot_dirs, farm, variant: str = "pending") -> list[Path]:
    folder = boot_dirs / "boot" / ".farms" / str(farm.pk) / variant
    return [p for p in folder.iterdir() if p.is_dir()]


def test_the_host_header_does_not_choose_the_stamped_url_or_fill_the_disk(client, image, boot_dirs):
    """Attack: ten Host ports gave ten stamped copies of zos.efi, each naming the attacker's URL."""
    farm = make_farm()
    for port in range(8001, 8011):
        response = client.get(f"/boot/{farm.pk}/zos.efi", HTTP_HOST=f"localhost:{port}")
        assert response.status_code == 200
        words = cmdline_of(body(response), boot_dirs)
        assert "zos.ledger=http://testserver " in words
    assert len(_stamped_dirs(boot_dirs, farm)) == 1


def test_old_stamped_copies_are_evicted(client, image, boot_dirs, settings):
    settings.ZOS_BOOT_STAMPED_KEEP = 2
    farm = make_farm()
    client.force_login(farm.owner)
    for _ in range(4):  # each spent token means a new command line, so a new stamped copy
        client.get(f"/boot/{farm.pk}/zos.efi")
        EnrollmentToken.objects.filter(farm=farm).update(uses_left=0)
    assert len(_stamped_dirs(boot_dirs, farm, "enroll")) == 2


def test_without_zos_public_url_the_default_is_the_run_commands_url(monkeypatch):
    """Never the request's Host: unset, the URL is the one scripts/up serves on."""
    import importlib

    import grid.settings

    monkeypatch.delenv("ZOS_PUBLIC_URL", raising=False)
    monkeypatch.setenv("ZOS_PORT", "8123")
    try:
        assert importlib.reload(grid.settings).ZOS_PUBLIC_URL == "http://127.0.0.1:8123"
    finally:
        monkeypatch.undo()
        importlib.reload(grid.settings)
