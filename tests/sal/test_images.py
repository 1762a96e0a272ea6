"""Image cache, VM disks by reflink, and the NoCloud seed — on real btrfs and real vfat images."""

import json
import os
import time

import pytest

from sal.command import run
from sal.hypervisor.cidata import NicConfig, SeedConfig, read_seed, render, write_seed
from sal.hypervisor.vm import HypervisorError
from sal.images import (
    GIB,
    ImageCache,
    ImageError,
    is_btrfs,
    remove_rootfs,
    unpack_rootfs,
    validate_name,
    write_container_config,
)


@pytest.fixture
def parts(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "vmlinux").write_bytes(b"kernel")
    (src / "initrd").write_bytes(b"initrd")
    disk = src / "disk.raw"
    disk.write_bytes(os.urandom(1024 * 1024))
    return src


def test_install_and_read_back(tmp_path, parts):
    cache = ImageCache(tmp_path / "images")
    img = cache.install(
        "ubuntu-24.04",
        kernel=parts / "vmlinux",
        initrd=parts / "initrd",
        disk=parts / "disk.raw",
        cmdline="root=/dev/vda",
        min_disk_gb=2,
    )
    assert img.kernel.read_bytes() == b"kernel" and img.initrd.read_bytes() == b"initrd"
    assert img.disk.read_bytes() == (parts / "disk.raw").read_bytes()
    assert (img.cmdline, img.min_disk_gb) == ("root=/dev/vda", 2)
    assert json.loads((img.path / "image.json").read_text()) == {
        "cmdline": "root=/dev/vda",
        "min_disk_gb": 2,
    }
    assert [i.name for i in cache.list()] == ["ubuntu-24.04"]

    again = cache.install("ubuntu-24.04", kernel=parts / "initrd")
    assert again.kernel.read_bytes() == b"initrd" and again.disk is None
    assert sorted(p.name for p in cache.root.iterdir()) == ["ubuntu-24.04"]
    cache.remove("ubuntu-24.04")
    assert cache.list() == []


def test_container_images_hold_a_rootfs_tarball_instead_of_a_kernel(tmp_path, parts):
    cache = ImageCache(tmp_path / "images")
    tarball = parts / "rootfs.tar"
    tarball.write_bytes(b"tar")
    img = cache.install("alpine", rootfs=tarball, entrypoint=("/bin/sh", "-c", "true"))
    assert img.is_container and img.kernel is None
    assert img.rootfs.read_bytes() == b"tar"
    assert cache.get("alpine").entrypoint == ("/bin/sh", "-c", "true")
    assert not cache.install("vm", kernel=parts / "vmlinux").is_container
    with pytest.raises(ImageError, match=r"either a kernel .* or a rootfs tarball"):
        cache.install("both", kernel=parts / "vmlinux", rootfs=tarball)
    with pytest.raises(ImageError, match="either a kernel"):
        cache.install("neither")
    assert [i.name for i in cache.list()] == ["alpine", "vm"]


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden", "UPPER", "x" * 64, None])
def test_bad_image_names_are_refused(name):
    with pytest.raises(ImageError, match="is invalid"):
        validate_name(name)


def test_a_missing_image_is_named(tmp_path):
    with pytest.raises(ImageError, match="image 'nope' is not in the image cache"):
        ImageCache(tmp_path).get("nope")


def test_a_full_copy_must_be_asked_for_off_btrfs(tmp_path, parts):
    if is_btrfs(tmp_path):
        pytest.skip("tmp_path is on btrfs")
    cache = ImageCache(tmp_path / "images")
    cache.install("base", kernel=parts / "vmlinux", disk=parts / "disk.raw")
    dst = tmp_path / "vms" / "disk0.raw"
    with pytest.raises(
        ImageError, match=r"not on btrfs \(a full copy needs allow_full_copy=True\)"
    ):
        cache.vdisk_from("base", dst, 1)
    assert not dst.exists()
    cache.vdisk_from("base", dst, 1, allow_full_copy=True)
    assert dst.stat().st_size == GIB
    with open(dst, "rb") as f:
        assert f.read(1024 * 1024) == (parts / "disk.raw").read_bytes()


def test_vdisk_checks(tmp_path, parts):
    cache = ImageCache(tmp_path / "images")
    cache.install("base", kernel=parts / "vmlinux", disk=parts / "disk.raw", min_disk_gb=3)
    with pytest.raises(ImageError, match="below image base's minimum of 3 GiB"):
        cache.vdisk_from("base", tmp_path / "d.raw", 2, allow_full_copy=True)
    (tmp_path / "exists.raw").write_bytes(b"")
    with pytest.raises(ImageError, match="already exists"):
        cache.vdisk_from("base", tmp_path / "exists.raw", 3, allow_full_copy=True)


def test_an_image_without_disk_gives_an_empty_sparse_disk(tmp_path, parts):
    cache = ImageCache(tmp_path / "images")
    cache.install("kernel-only", kernel=parts / "vmlinux")
    dst = cache.vdisk_from("kernel-only", tmp_path / "empty.raw", 4)
    assert dst.stat().st_size == 4 * GIB and dst.stat().st_blocks == 0


def test_vdisk_by_reflink_on_btrfs(btrfs_pool, parts):
    images = btrfs_pool.nocow_dir("images")
    vdisks = btrfs_pool.nocow_dir("vdisks")
    cache = ImageCache(images)
    big = parts / "big.raw"
    with open(big, "wb") as f:
        for _ in range(256):
            f.write(os.urandom(1024 * 1024))
    cache.install("base", kernel=parts / "vmlinux", disk=big)
    started = time.monotonic()
    dst = cache.vdisk_from("base", vdisks / "vm1.raw", 1)
    assert time.monotonic() - started < 5
    assert dst.stat().st_size == GIB
    with open(dst, "rb") as f:
        assert f.read(4096) == big.read_bytes()[:4096]
    # The copy shares the image's extents: pool usage does not grow by another 256 MiB.
    du = run(["btrfs", "filesystem", "du", "-s", "--raw", str(dst)]).stdout.splitlines()[-1].split()
    total, exclusive = int(du[0]), int(du[1])
    assert total >= 256 * 1024 * 1024 and exclusive == 0


def test_seed_files(tmp_path):
    seed = SeedConfig(
        instance_id="vm-1",
        hostname="web-1",
        ssh_keys=("ssh-ed25519 AAAA alice",),
        nics=(
            NicConfig(
                mac="52:54:00:AA:00:01",
                addresses=("10.1.0.2/24", "fd00::2/64"),
                gateway4="10.1.0.1",
                nameservers=("10.1.0.1",),
            ),
        ),
        runcmd=("echo 'quoted'",),
    )
    files = render(seed)
    assert files["meta-data"] == "instance-id: vm-1\nlocal-hostname: web-1\n"
    assert files["user-data"] == (
        "#cloud-config\nhostname: web-1\nssh_authorized_keys:\n"
        '  - "ssh-ed25519 AAAA alice"\nruncmd:\n'
        "  - 'echo ''quoted'''\n"
    )
    assert files["network-config"] == (
        "version: 2\nethernets:\n  eth0:\n    match:\n"
        '      macaddress: "52:54:00:aa:00:01"\n    set-name: eth0\n    dhcp4: false\n'
        "    addresses:\n      - 10.1.0.2/24\n      - fd00::2/64\n    gateway4: 10.1.0.1\n"
        "    nameservers:\n      addresses: [10.1.0.1]\n"
    )
    image = write_seed(seed, tmp_path / "seed.img")
    assert read_seed(image) == files
    label = run(
        ["mlabel", "-s", "-i", str(image), "::"], env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    ).stdout
    assert "CIDATA" in label


def test_volume_mounts_are_cloud_config_mounts_by_virtio_serial():
    seed = SeedConfig(instance_id="i", hostname="h", mounts=(("zos-vol0", "/srv/data"),))
    assert render(seed)["user-data"] == (
        "#cloud-config\nhostname: h\nmounts:\n"
        '  - ["/dev/disk/by-id/virtio-zos-vol0", "/srv/data", "ext4", "defaults,noatime,nofail", '
        '"0", "2"]\n'
    )


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        (SeedConfig(instance_id="i", hostname="Bad_Host"), "not a valid host name"),
        (SeedConfig(instance_id="two words", hostname="h"), "must be one word"),
        (SeedConfig(instance_id="i", hostname="h", ssh_keys=("a\nb",)), "one non-empty line"),
        (SeedConfig(instance_id="i", hostname="h", nics=(NicConfig(mac="x"),)), "not a MAC"),
        (
            SeedConfig(
                instance_id="i",
                hostname="h",
                nics=(NicConfig(mac="52:54:00:00:00:01", addresses=("10.0.0.1",)),),
            ),
            "not in CIDR form",
        ),
        (SeedConfig(instance_id="i", hostname="h", runcmd=("a\nb",)), "one line"),
        (SeedConfig(instance_id="i", hostname="h", extra_files={"../x": ""}), "cannot add"),
        (SeedConfig(instance_id="i", hostname="h", mounts=(("v0", "/a/../etc"),)), "cannot mount"),
        (SeedConfig(instance_id="i", hostname="h", mounts=(("v0", "rel"),)), "cannot mount"),
        (SeedConfig(instance_id="i", hostname="h", mounts=(("v 0", "/data"),)), "cannot mount"),
    ],
)
def test_bad_seeds_are_refused(tmp_path, seed, message):
    with pytest.raises(HypervisorError, match=message):
        write_seed(seed, tmp_path / "seed.img")
    assert not (tmp_path / "seed.img").exists()


def test_the_test_guest_installs_as_an_image(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("building the test guest needs root")
    from tests.sal.guest import build_guest, install_guest_image

    cache = ImageCache(tmp_path / "images")
    image = install_guest_image(cache)
    guest = build_guest()
    assert image.name == "busybox" and image.disk is None
    assert image.kernel.read_bytes()[:4] == b"\x7fELF"
    assert image.initrd.read_bytes() == guest.initrd.read_bytes()
    mtime = image.kernel.stat().st_mtime_ns
    assert install_guest_image(cache).kernel.stat().st_mtime_ns == mtime


@pytest.fixture
def rootfs_tarball(tmp_path):
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/hostname").write_text("img\n")
    tarball = tmp_path / "rootfs.tar.zst"
    run(["tar", "--zstd", "-cf", str(tarball), "-C", str(tree), "."])
    return tarball


def test_a_rootfs_unpacks_into_a_subvolume_on_btrfs(btrfs_pool, rootfs_tarball):
    root = unpack_rootfs(rootfs_tarball, btrfs_pool.mountpoint / "containers" / "web")
    assert (root / "etc/hostname").read_text() == "img\n"
    assert root.stat().st_ino == 256, "not a subvolume"
    with pytest.raises(ImageError, match="already exists"):
        unpack_rootfs(rootfs_tarball, root)
    remove_rootfs(root)
    assert not root.exists()


def test_a_rootfs_unpacks_into_a_directory_elsewhere(tmp_path, rootfs_tarball):
    root = unpack_rootfs(rootfs_tarball, tmp_path / "c" / "web")
    write_container_config(root, ["/bin/sh", "-c", "echo a b"], {"A": "x y", "B_2": ""})
    assert (root / ".zos/entrypoint").read_text() == "/bin/sh\n-c\necho a b\n"
    assert (root / ".zos/env").read_text() == "A=x y\nB_2=\n"
    assert (root / ".zos/workdir").read_text() == "/\n"
    write_container_config(root, ["/bin/sh"], {}, "/srv/app")
    assert (root / ".zos/workdir").read_text() == "/srv/app\n"
    remove_rootfs(root)
    assert not root.exists()


def test_a_broken_tarball_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(ImageError, match="cannot unpack"):
        unpack_rootfs(bad, tmp_path / "root")
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(
    ("entrypoint", "env", "message"),
    [
        ([], {}, "at least one"),
        (["a\nb"], {}, "newlines"),
        (["/bin/sh"], {"1BAD": "x"}, "not a valid variable name"),
        (["/bin/sh"], {"A": "x\ny"}, "cannot contain newlines"),
    ],
)
def test_bad_container_configs_are_refused(tmp_path, entrypoint, env, message):
    with pytest.raises(ImageError, match=message):
        write_container_config(tmp_path, entrypoint, env)


@pytest.mark.parametrize("workdir", ["srv", "/a\nb"])
def test_a_container_workdir_must_be_an_absolute_one_line_path(tmp_path, workdir):
    with pytest.raises(ImageError, match="must be an absolute one-line path"):
        write_container_config(tmp_path, ["/bin/sh"], {}, workdir)


def test_an_image_directory_installs_as_its_builder_wrote_it(tmp_path, parts):
    """What `python -m image vm-image` and `oci-import` write: parts under their cache names,
    image.json with the builder's own extra keys (kept, ignored)."""
    vm = tmp_path / "vm-out"
    vm.mkdir()
    (vm / "kernel").write_bytes(b"kernel")
    (vm / "disk.raw").write_bytes(b"disk")
    meta = {"cmdline": "root=LABEL=r", "min_disk_gb": 1, "packages": {"bash": "5.2"}}
    (vm / "image.json").write_text(json.dumps(meta))
    cache = ImageCache(tmp_path / "images")
    img = cache.install_directory("debian-12", vm)
    assert (img.kernel.read_bytes(), img.disk.read_bytes()) == (b"kernel", b"disk")
    assert (img.initrd, img.rootfs, img.cmdline, img.min_disk_gb) == (None, None, "root=LABEL=r", 1)

    ct = tmp_path / "ct-out"
    ct.mkdir()
    (ct / "rootfs.tar").write_bytes(b"tar")
    (ct / "image.json").write_text(
        json.dumps({"entrypoint": ["/bin/app"], "env": {"A": "1"}, "workdir": "/srv"})
    )
    img = cache.install_directory("app", ct)
    assert img.is_container and img.kernel is None
    assert (img.entrypoint, img.env, img.workdir) == (("/bin/app",), (("A", "1"),), "/srv")

    (ct / "image.json").write_text("[]")
    with pytest.raises(ImageError, match="must be an object"):
        cache.install_directory("app", ct)
    with pytest.raises(ImageError, match=r"has no image\.json"):
        cache.install_directory("app", tmp_path)
