"""The builder: refuses early without root or the package archive; caches the base layer; the
manifest describes every file it wrote."""

import subprocess
import sys

import pytest

from bootimage.tools import BuildError
from image import build as build_module
from image.manifest import file_digest, read_manifest
from image.packages import APT_LISTS, Archive, _check_reachable
from tests.image.conftest import ROOT, BuiltImage
from tests.integration.conftest import free_port


def test_a_build_without_root_stops_at_once_saying_so(monkeypatch):
    monkeypatch.setattr(build_module.os, "geteuid", lambda: 1000)
    with pytest.raises(BuildError, match="needs root"):
        build_module.check_host()


def test_an_unreachable_package_archive_stops_the_build_with_a_clear_message():
    port = free_port()  # nothing listens there
    with pytest.raises(BuildError, match=rf"package archive 127.0.0.1:{port} is unreachable"):
        _check_reachable("127.0.0.1", port)


@pytest.mark.slow
def test_the_manifest_lists_every_output_with_its_hash(built_image: BuiltImage):
    manifest = read_manifest(built_image.directory)
    assert set(manifest["files"]) == {"zos.efi", "usb.img", "vmlinuz", "initrd", "boot.ipxe"}
    for name, described in manifest["files"].items():
        assert file_digest(built_image.directory / name) == described, name
    assert manifest["packages"]["redis-server"]
    assert manifest["packages"]["qemu-system-x86"]
    assert manifest["vendored"]["websockets"]
    assert manifest["kernel"].endswith("-amd64")
    assert f"zos.version={manifest['version']}" in manifest["cmdline"]


@pytest.mark.slow
def test_a_second_build_with_unchanged_inputs_reuses_the_root_filesystem(built_image: BuiltImage):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "image",
            "build",
            "--out",
            str(built_image.directory),
            "--cache",
            str(ROOT / "build/cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "base layer unchanged: reusing the cached root filesystem" in done.stderr
    assert "unpacking" not in done.stderr


def test_a_closure_is_resolved_by_apt_once_while_the_lists_are_unchanged(tmp_path, monkeypatch):
    if not list(APT_LISTS.glob("*Packages*")):
        pytest.skip("no apt package lists (scripts/setup.sh runs apt-get update)")
    archive = Archive(tmp_path / "cache")
    first = archive.resolve(("busybox",))
    assert "busybox" in {p.name for p in first}

    def apt_asked(_archive: Archive, *args: str, what: str) -> str:
        raise AssertionError(f"apt asked again: {what}")

    monkeypatch.setattr(Archive, "_apt", apt_asked)
    assert archive.resolve(("busybox",)) == first  # the kept closure: apt not asked
    with pytest.raises(AssertionError, match="apt asked again: resolving busybox kmod"):
        archive.resolve(("busybox", "kmod"))  # other names: another closure
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "deb.example_dists_bookworm_main_binary-amd64_Packages").write_text("")
    with pytest.raises(AssertionError, match="apt asked again: resolving busybox"):
        Archive(tmp_path / "cache", lists=lists).resolve(("busybox",))  # other lists
