"""`python -m image push | release` against a real ledger over HTTP (pytest-django's live server).

Builds are miniature (a few KiB, or a tiny real UKI where the farm's download is checked); the
release bundle is the real one from this checkout.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from nacl.signing import VerifyKey

from contracts.release_bundle import build_bundle
from image.__main__ import main
from image.manifest import write_manifest
from ledger.models import AgentRelease, BootImage, Farm
from signing.dsse import verify_envelope
from tests.conftest import make_farm, make_user
from tests.integration.conftest import free_port
from tests.ledger.conftest import STUB, TOOLS, make_build

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_cli_settings(monkeypatch, tmp_path):
    """Neither the developer's `zos login` nor their ZOS_* variables reach these tests."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home/.config"))
    for name in ("ZOS_LEDGER", "ZOS_URL", "ZOS_TOKEN", "ZOS_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ledger(live_server, settings, tmp_path) -> str:
    settings.ZOS_BOOT_DIR = tmp_path / "boot"
    settings.ZOS_RELEASE_DIR = tmp_path / "releases"
    settings.ZOS_RELEASE_KEY_FILE = tmp_path / "release.key"
    settings.ZOS_PUBLIC_URL = live_server.url
    return live_server.url


def token_of(user) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=user).key


@pytest.fixture
def staff_token() -> str:
    return token_of(make_user("op", staff=True))


def fake_build(out: Path, version: str = "0.1.0+fake") -> Path:
    """The shape of `python -m image build`'s output; the bytes are random."""
    out.mkdir(parents=True)
    for name, size in (("zos.efi", 5000), ("vmlinuz", 3000), ("initrd", 7000), ("usb.img", 10)):
        (out / name).write_bytes(os.urandom(size))
    (out / "boot.ipxe").write_text("#!ipxe\n")
    write_manifest(
        out,
        {"version": version, "cmdline": f"console=ttyS0 quiet zos.version={version}"},
        ["boot.ipxe", "initrd", "usb.img", "vmlinuz", "zos.efi"],
    )
    return out


def push(ledger: str, token: str, build: Path, *extra: str) -> int:
    return main(["push", "--image", str(build), "--ledger", ledger, "--token", token, *extra])


def test_push_stores_the_build_and_the_farm_downloads_it(ledger, staff_token, tmp_path, capsys):
    if missing := [t for t in TOOLS if shutil.which(t) is None] or not STUB.exists():
        pytest.skip(f"stamping needs {missing or STUB} (scripts/setup.sh installs them)")
    # An initrd over 4 MiB gets progress lines; every file is streamed from disk.
    build = make_build(tmp_path / "build", "0.5.0+push", initrd_size=5 * 2**20)
    farm = make_farm()
    assert push(ledger, staff_token, build) == 0
    out, err = capsys.readouterr()
    assert "boot image 0.5.0+push stored on" in out and "(current)" in out
    assert "initrd: 5.2 MB, sha256 matches the manifest" in err
    assert "sending initrd: " in err and "(50%)" in err and "sent initrd: 5.2 MB" in err

    manifest = json.loads((build / "manifest.json").read_text())
    image = BootImage.objects.get(version="0.5.0+push")
    assert image.is_current
    assert image.files == {n: manifest["files"][n] for n in ("zos.efi", "vmlinuz", "initrd")}
    efi = requests.get(f"{ledger}/boot/{farm.pk}/zos.efi", timeout=30)
    assert efi.status_code == 200
    assert efi.headers["X-Checksum-Sha256"] == hashlib.sha256(efi.content).hexdigest()
    from bootimage.stamp import read_cmdline

    (tmp_path / "farm.efi").write_bytes(efi.content)
    assert f"zos.farm={farm.pk}" in read_cmdline(tmp_path / "farm.efi")
    initrd = requests.get(f"{ledger}/boot/{farm.pk}/initrd", timeout=30)
    assert initrd.content == (build / "initrd").read_bytes()


def test_push_under_another_version_without_making_it_current(ledger, staff_token, tmp_path):
    build = fake_build(tmp_path / "build")
    assert push(ledger, staff_token, build) == 0
    assert push(ledger, staff_token, build, "--version", "0.1.1", "--no-current") == 0
    again = BootImage.objects.get(version="0.1.1")
    assert not again.is_current
    assert BootImage.objects.get(version="0.1.0+fake").is_current
    assert again.manifest["cmdline"] == "console=ttyS0 quiet zos.version=0.1.1"
    assert set(again.files) == {"zos.efi", "vmlinuz", "initrd"}  # the ledger makes the others


def test_the_same_version_twice_is_refused_before_sending(ledger, staff_token, tmp_path, capsys):
    build = fake_build(tmp_path / "build")
    assert push(ledger, staff_token, build) == 0
    capsys.readouterr()
    assert push(ledger, staff_token, build) == 1
    err = capsys.readouterr().err
    assert "boot image 0.1.0+fake is already on the ledger" in err
    assert "uploading" not in err


def test_a_file_that_differs_from_the_manifest_is_refused_before_upload(
    ledger, staff_token, tmp_path, capsys
):
    build = fake_build(tmp_path / "build")
    (build / "vmlinuz").write_bytes(b"changed after the build")
    assert push(ledger, staff_token, build) == 1
    err = capsys.readouterr().err
    assert f"{build}/vmlinuz: sha256 " in err and "differs from the manifest's" in err
    assert "uploading" not in err

    (build / "vmlinuz").unlink()
    assert push(ledger, staff_token, build) == 1
    assert f"{build}/vmlinuz is missing (the manifest lists it)" in capsys.readouterr().err
    assert push(ledger, staff_token, tmp_path / "nothing") == 1
    assert "no manifest.json in" in capsys.readouterr().err
    assert not BootImage.objects.exists()


def test_a_non_staff_or_unknown_token_gets_a_clear_refusal(ledger, tmp_path, capsys):
    build = fake_build(tmp_path / "build")
    assert push(ledger, token_of(make_user("alice")), build) == 1
    err = capsys.readouterr().err
    assert "error: permission_denied (HTTP 403)" in err
    assert "uploads need a staff account's API token" in err

    assert push(ledger, "0" * 40, build) == 1
    # DRF answers 403 (not 401) because session authentication comes first.
    assert "error: authentication_failed (HTTP 401): Invalid token." in capsys.readouterr().err
    assert not BootImage.objects.exists()


def test_the_ledger_and_token_come_from_the_environment_or_zos_login(
    ledger, staff_token, tmp_path, monkeypatch
):
    from client.config import write_config_value

    build = fake_build(tmp_path / "build")
    monkeypatch.setenv("ZOS_LEDGER", ledger)
    monkeypatch.setenv("ZOS_TOKEN", staff_token)
    assert main(["push", "--image", str(build)]) == 0

    monkeypatch.delenv("ZOS_LEDGER")
    monkeypatch.delenv("ZOS_TOKEN")
    config = tmp_path / "home/.config/zos/config.toml"
    write_config_value(config, "url", ledger)  # what `zos login` stores
    write_config_value(config, "token", staff_token)
    assert main(["push", "--image", str(build), "--version", "0.2"]) == 0
    assert BootImage.objects.count() == 2


def test_release_publishes_a_signed_bundle_and_rolls_it_out(ledger, staff_token, capsys):
    from contracts.payload_types import RELEASE_TYPE
    from ledger.releases import release_public_key_hex

    farm, other = make_farm("f1"), make_farm("f2")
    argv = ["release", "--ledger", ledger, "--token", staff_token, "--version", "7.0"]
    assert main([*argv, "--farm", str(farm.pk)]) == 0
    out = capsys.readouterr().out
    assert f"desired by farm(s) {farm.pk}" in out

    release = AgentRelease.objects.get(version="7.0")
    assert release.sha256 == hashlib.sha256(build_bundle(ROOT, "7.0")).hexdigest()
    key = VerifyKey(bytes.fromhex(release_public_key_hex()))
    statement = json.loads(verify_envelope(release.envelope, RELEASE_TYPE, [key])[0])
    assert statement == {"version": "7.0", "sha256": release.sha256, "size": release.size}
    assert "signed by release key" in out
    assert Farm.objects.get(pk=farm.pk).desired_agent_version == "7.0"
    assert Farm.objects.get(pk=other.pk).desired_agent_version == ""

    argv[-1] = "7.1"
    assert main([*argv, "--farm", "all"]) == 0
    assert set(Farm.objects.values_list("desired_agent_version", flat=True)) == {"7.1"}


def test_release_refusals_publish_nothing(ledger, staff_token, capsys):
    def release(version: str, token: str, *extra: str) -> int:
        return main(["release", "--ledger", ledger, "--token", token, "--version", version, *extra])

    assert release("8.0", staff_token, "--farm", "999") == 1
    assert "there is no farm 999" in capsys.readouterr().err
    assert release("8.0", token_of(make_user("alice"))) == 1
    assert "permission_denied (HTTP 403)" in capsys.readouterr().err
    assert release("bad/version", staff_token) == 1
    assert "a version is letters, digits" in capsys.readouterr().err
    assert not AgentRelease.objects.exists()


def test_an_unreachable_ledger_is_a_clear_error_and_a_failing_exit(tmp_path):
    build = fake_build(tmp_path / "build")
    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "ZOS_LEDGER": url, "ZOS_TOKEN": "x" * 40}
    for argv in (["push", "--image", str(build)], ["release", "--version", "1.0"]):
        done = subprocess.run(
            [sys.executable, "-m", "image", *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert f"unreachable: cannot connect to {url}" in done.stderr
        assert f"is the ledger running at {url}? Set --ledger or ZOS_LEDGER" in done.stderr
