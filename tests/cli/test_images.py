"""`zos image push` reads an image directory into a manifest, or says what the directory lacks."""

import hashlib
import json

import pytest

from client.errors import CliError
from zoscli.images import read_image_dir


def test_a_vm_image_directory_becomes_a_manifest(tmp_path):
    (tmp_path / "kernel").write_bytes(b"kernel bytes")
    (tmp_path / "disk.raw").write_bytes(b"\0" * 4096)
    (tmp_path / "image.json").write_text(json.dumps({"cmdline": "root=/dev/vda", "min_disk_gb": 2}))
    image = read_image_dir(str(tmp_path), name="debian-12", version="1.0")
    manifest = image.manifest
    assert manifest.kind == "vm" and manifest.cmdline == "root=/dev/vda"
    assert manifest.min_disk_gb == 2
    assert {(p.role, p.sha256, p.size) for p in manifest.parts} == {
        ("kernel", hashlib.sha256(b"kernel bytes").hexdigest(), 12),
        ("disk", hashlib.sha256(b"\0" * 4096).hexdigest(), 4096),
    }
    assert image.files["disk"] == tmp_path / "disk.raw"


def test_a_directory_as_the_vm_image_builder_writes_it_pushes_its_settings_only(tmp_path):
    (tmp_path / "kernel").write_bytes(b"k")
    record = {
        "cmdline": "root=LABEL=zos-root quiet",
        "min_disk_gb": 1,
        "name": "debian-12",
        "kind": "vm",
        "build_key": "b7" * 32,
        "inputs_key": "e7" * 32,
        "built_at": 1796383491,
        "kernel_version": "6.1.0-57-amd64",
        "kernel_package": "linux-image-6.1.0-57-amd64 6.1.192-3",
        "packages": {"bash": "5.2.15-2+b13"},
        "ready_marker": "ZOS-VM-READY",
        "rootfs_bytes": 1,
        "disk_bytes": 2,
    }
    (tmp_path / "image.json").write_text(json.dumps(record))
    manifest = read_image_dir(str(tmp_path), name="debian-12", version="1").manifest
    assert manifest.cmdline == "root=LABEL=zos-root quiet" and manifest.min_disk_gb == 1


def test_a_container_image_directory_keeps_its_entrypoint(tmp_path):
    (tmp_path / "rootfs.tar").write_bytes(b"tar")
    (tmp_path / "image.json").write_text(json.dumps({"entrypoint": ["/bin/sh"], "env": {"A": "1"}}))
    manifest = read_image_dir(str(tmp_path), name="alpine", version="3").manifest
    assert manifest.kind == "container" and manifest.entrypoint == ("/bin/sh",)
    assert [p.role for p in manifest.parts] == ["rootfs"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "neither a kernel nor rootfs.tar"),
        ({"kernel": b"k", "rootfs.tar": b"t"}, "both a kernel and rootfs.tar"),
        ({"kernel": b"k", "image.json": b"{"}, "not valid JSON"),
        ({"kernel": b"k", "image.json": b'{"ram": 1}'}, "unknown fields ram"),
        ({"kernel": b"k", "image.json": b'{"min_disk_gb": -1}'}, "min_disk_gb must be"),
        ({"kernel": b"k", "image.json": b'{"kind": "container"}'}, "says kind 'container'"),
    ],
)
def test_a_bad_directory_is_explained(tmp_path, files, message):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(CliError, match=message):
        read_image_dir(str(tmp_path), name="x", version="1")


def test_a_bad_name_is_refused_before_anything_is_sent(tmp_path):
    (tmp_path / "kernel").write_bytes(b"k")
    with pytest.raises(CliError, match=r"image name 'Debian\.12' is invalid"):
        read_image_dir(str(tmp_path), name="Debian.12", version="1")
