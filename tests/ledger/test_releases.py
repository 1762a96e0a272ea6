"""Agent releases in the ledger: the release key, signed bundles, and the desired version."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from nacl.signing import VerifyKey

from contracts.payload_types import RELEASE_TYPE
from contracts.release_bundle import build_bundle
from ledger.models import AgentRelease, Farm
from signing.dsse import verify_envelope
from tests.conftest import make_farm, make_user

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def release_dirs(settings, tmp_path):
    settings.ZOS_RELEASE_DIR = tmp_path / "releases"
    settings.ZOS_RELEASE_KEY_FILE = tmp_path / "release.key"
    return tmp_path


def names_in(bundle: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        return tar.getnames()


def test_the_release_key_is_published_stable_and_kept_0400(client, release_dirs):
    first = client.get("/api/v1/releases/key").json()
    assert client.get("/api/v1/releases/key").json() == first
    assert len(first["public_key"]) == 64
    assert first["payload_type"] == RELEASE_TYPE
    assert oct((release_dirs / "release.key").stat().st_mode & 0o777) == "0o400"


def test_a_bundle_holds_the_node_packages_stamped_with_its_version_and_is_reproducible():
    bundle = build_bundle(ROOT, "9.9.9")
    assert bundle == build_bundle(ROOT, "9.9.9")
    names = names_in(bundle)
    assert {n.split("/")[0] for n in names} == {"nodeagent", "contracts", "signing", "rhai", "sal"}
    assert "nodeagent/updater.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        init = tar.extractfile("nodeagent/__init__.py").read().decode()
    assert '__version__ = "9.9.9"' in init


def test_publish_release_signs_stores_and_points_farms_at_it(client, capsys):
    farm, untouched = make_farm("f1"), make_farm("f2")
    call_command("publish_release", "--version", "0.2.0", "--farm", str(farm.pk))
    assert "desired by 1 farm" in capsys.readouterr().out
    assert Farm.objects.get(pk=farm.pk).desired_agent_version == "0.2.0"
    assert Farm.objects.get(pk=untouched.pk).desired_agent_version == ""

    release = client.get("/api/v1/releases/0.2.0").json()
    key = VerifyKey(bytes.fromhex(client.get("/api/v1/releases/key").json()["public_key"]))
    payload, _ = verify_envelope(release["envelope"], RELEASE_TYPE, [key])
    statement = json.loads(payload)
    assert statement == {"version": "0.2.0", "sha256": release["sha256"], "size": release["size"]}

    bundle = client.get("/api/v1/releases/0.2.0/bundle")
    content = b"".join(bundle.streaming_content)
    assert hashlib.sha256(content).hexdigest() == release["sha256"]
    assert bundle["X-Checksum-Sha256"] == release["sha256"]
    assert bundle["ETag"] == f'"{release["sha256"]}"'
    assert (
        client.get("/api/v1/releases/0.2.0/bundle", HTTP_IF_NONE_MATCH=bundle["ETag"]).status_code
        == 304
    )
    assert [r["version"] for r in client.get("/api/v1/releases").json()["results"]] == ["0.2.0"]


def test_the_uptime_reply_carries_the_version_publish_release_chose(node, farm):
    call_command("publish_release", "--version", "0.3.0", "--farm", "all")
    node_id = node.register(farm).json()["id"]
    from ledger.models import Node
    from ledger.services import approve_node

    approve_node(node=Node.objects.get(pk=node_id), actor="test")
    assert node.uptime(node_id).json()["desired"] == {"agent_version": "0.3.0"}


def test_a_version_published_twice_or_for_an_unknown_farm_set_is_refused():
    call_command("publish_release", "--version", "1.0")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="exists"):
        call_command("publish_release", "--version", "1.0")
    assert AgentRelease.objects.count() == 1


def test_staff_upload_a_bundle_whose_agent_must_say_the_same_version(client):
    bundle = build_bundle(ROOT, "2.0")

    def upload(version: str):
        return client.post(
            "/api/v1/releases",
            {"version": version, "bundle": SimpleUploadedFile("b.tar.gz", bundle)},
        )

    client.force_login(make_user("alice"))
    assert upload("2.0").status_code == 403
    client.force_login(make_user("op", staff=True))
    mismatch = upload("2.1")
    assert mismatch.status_code == 400
    assert mismatch.json()["error"] == "invalid_bundle"
    created = upload("2.0")
    assert created.status_code == 201, created.content
    assert created.json()["sha256"] == hashlib.sha256(bundle).hexdigest()
    assert upload("2.0").status_code == 409
    not_a_bundle = client.post(
        "/api/v1/releases", {"version": "3.0", "bundle": SimpleUploadedFile("b", b"junk")}
    )
    assert not_a_bundle.json()["error"] == "invalid_bundle"


def test_node_and_ledger_agree_on_the_release_payload_type():
    from contracts.release_bundle import BUNDLE_PACKAGES as LEDGER_PACKAGES
    from nodeagent.updater import BUNDLE_PACKAGES
    from nodeagent.updater import RELEASE_TYPE as NODE_TYPE

    assert NODE_TYPE == RELEASE_TYPE
    assert BUNDLE_PACKAGES == LEDGER_PACKAGES


def test_staff_roll_a_release_out_to_named_farms_or_all_of_them(client):
    call_command("publish_release", "--version", "4.0")
    first, second = make_farm("f1"), make_farm("f2")

    def rollout(farms, version: str = "4.0"):
        return client.post(
            f"/api/v1/releases/{version}/rollout", {"farms": farms}, content_type="application/json"
        )

    client.force_login(make_user("alice"))
    assert rollout([first.pk]).status_code == 403
    client.force_login(make_user("op", staff=True))
    assert rollout([first.pk]).json() == {"version": "4.0", "farms": [first.pk]}
    assert Farm.objects.get(pk=second.pk).desired_agent_version == ""
    assert rollout("all").json()["farms"] == [first.pk, second.pk]
    assert Farm.objects.get(pk=second.pk).desired_agent_version == "4.0"

    unknown = rollout([first.pk, 999])
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "unknown_farm", "message": "no farm 999"}
    for bad in ([], "some", [True], ["1"]):
        assert rollout(bad).json()["error"] == "invalid", bad
    assert rollout([first.pk], version="9.9").status_code == 404


def test_publish_release_refuses_an_unknown_farm_instead_of_skipping_it():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no farm 999"):
        call_command("publish_release", "--version", "5.0", "--farm", "999")
    assert not AgentRelease.objects.filter(version="5.0").exists()


def test_a_release_whose_bundle_left_the_disk_is_a_clear_404_not_a_500(client):
    """Found by tests/security/test_authorization.py: the listed bundle was opened blindly."""
    call_command("publish_release", "--version", "5.0")
    AgentRelease.objects.get(version="5.0").bundle_path.unlink()
    response = client.get("/api/v1/releases/5.0/bundle")
    assert response.status_code == 404
    assert response.json()["error"] == "file_missing"
    assert "5.0.tar.gz" in response.json()["message"]
