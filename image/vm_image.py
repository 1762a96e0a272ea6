"""`python -m image vm-image debian-12`: a small bootable Debian VM image from Debian packages.

The output is an image directory the node's `ImageCache` installs as it is (sal/images.py):

- `kernel`: Debian's kernel as an uncompressed `vmlinux`, booted through its PVH entry point
  (about twice as fast to userspace under TCG as the bzImage, PLATFORM.md);
- `initrd`: a ~1 MB initramfs (busybox and the virtio disk and ext4 modules) that mounts the
  root disk by its label and switches to it;
- `disk.raw`: the root disk template, an ext4 file system made with `mkfs.ext4 -d` from the
  unpacked tree (no mount, no loop device). ext4 rather than btrfs: the template is reflinked
  into a btrfs pool on the node, so a copy-on-write file system inside it would only add a
  second layer of copy-on-write; ext4 also grows online at boot (`resize2fs`) to whatever
  `disk_gb` the VM got, so the template stays as small as its files;
- `image.json`: `cmdline`, `min_disk_gb`, and what it was built from.

The root file system is the package closure of `openssh-server` and a few tools, resolved and
unpacked with the node image's machinery (image/packages.py: apt against an empty dpkg status,
`dpkg-deb -x`, no maintainer scripts), with busybox's `init` as PID 1 and a small boot script
(image/files/vm/rc) that applies the node's NoCloud seed: hostname, SSH keys, the overlay
address and route, `env`; it makes the SSH host key at first boot, starts sshd and prints
`ZOS-VM-READY <hostname>` on the console.

A build whose inputs match the existing output's is skipped: when apt's package lists and these
sources are unchanged, without even asking apt (instant); otherwise after resolving the closure,
when the package versions, the kernel and these sources are the same.
"""

import hashlib
import json
import math
import os
import shutil
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bootimage.tools import BuildError, require, run
from image import initramfs, kernel, packages, rootfs
from image.progress import say, step

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
VM_FILES = FILES / "vm"
# The builder's own sources: a change to any of them rebuilds the image.
INPUTS = ("vm_image.py", "packages.py", "kernel.py", "rootfs.py", "initramfs.py")
READY_MARKER = "ZOS-VM-READY"
ROOT_LABEL = "zos-root"
# no_timer_check: on a loaded host under TCG the kernel's IO-APIC timer check can miss its
# window and panic ("IO-APIC + timer doesn't work!"); seen here at a load of 11 on 2 cores.
CMDLINE = f"root=LABEL={ROOT_LABEL} quiet no_timer_check"
MIN_DISK_GB = 1


@dataclass(frozen=True)
class Distribution:
    """What one VM image is made of."""

    name: str
    packages: tuple[str, ...]
    kernel_package: str
    pretty_name: str


DISTRIBUTIONS = {
    "debian-12": Distribution(
        name="debian-12",
        # sshd and what a person logged in over it expects: bash, coreutils, ps, less, tar, ip;
        # e2fsprogs for the boot-time resize; busybox for init, acpid, udhcpc and the initramfs.
        packages=(
            "openssh-server",
            "openssh-sftp-server",
            "bash",
            "coreutils",
            "procps",
            "less",
            "tar",
            "iproute2",
            "e2fsprogs",
            "kmod",
            "busybox-static",
        ),
        kernel_package=packages.KERNEL_PACKAGE,
        pretty_name="Debian GNU/Linux 12 (bookworm), ZOS VM image",
    ),
}

# Only maintainer scripts need these (no package manager runs in the VM); tar is wanted here.
SKIPPED_PACKAGES = packages.SKIPPED_PACKAGES - {"tar"}

# Modules the initramfs needs to mount the root disk.
BOOT_MODULES = (
    "drivers/virtio",
    "drivers/block/virtio_blk.ko",
    "fs/ext4",
    "crypto/crc32c_generic.ko",
)
# Modules on the root disk: the boot ones, the NIC, the seed disk's vfat, the power button,
# and what a VM commonly loads (tun, bridge, veth, overlayfs for containers, 9p, wireguard).
DISK_MODULES = (
    *BOOT_MODULES,
    "drivers/net/virtio_net.ko",
    "drivers/char/hw_random/virtio-rng.ko",
    "drivers/scsi/virtio_scsi.ko",
    "drivers/acpi/button.ko",
    "drivers/input/evdev.ko",
    "fs/fat",
    "fs/nls",
    "fs/overlayfs",
    "fs/9p",
    "net/9p",
    "drivers/net/tun.ko",
    "drivers/net/veth.ko",
    "drivers/net/wireguard",
    "net/bridge",
)

# Written into the root tree; the accounts sshd needs and root's with a usable shell but no
# password (`*`: SSH keys only; a `!` would make sshd treat the account as locked).
ETC_FILES = {
    "etc/passwd": (
        "root:x:0:0:root:/root:/bin/bash\n"
        "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ),
    "etc/group": "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    "etc/shadow": "root:*:19700:0:99999:7:::\nsshd:*:19700::::::\nnobody:*:19700::::::\n",
    "etc/hostname": "debian\n",
    "etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
    "etc/fstab": f"LABEL={ROOT_LABEL} / ext4 rw,noatime 0 1\n",
    "etc/profile": (
        'PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"\nexport PATH\n'
        'for f in /etc/profile.d/*.sh; do [ -r "$f" ] && . "$f"; done\nunset f\n'
    ),
    "etc/shells": "/bin/sh\n/bin/bash\n/usr/bin/bash\n",
}


@dataclass(frozen=True)
class VmImageOptions:
    distribution: str
    out: Path
    cache: Path
    use_cache: bool = True


def check_host() -> None:
    if os.geteuid() != 0:
        raise BuildError(
            "building a VM image needs root (unpacked files keep their owners): run it as root, "
            "e.g. `sudo .venv/bin/python -m image vm-image debian-12`"
        )
    require("apt-get", "dpkg-deb", "depmod", "cpio", "zstd", "mkfs.ext4")


def _sources_digest() -> bytes:
    digest = hashlib.sha256()
    for name in INPUTS:
        digest.update((HERE / name).read_bytes())
    for path in sorted([*VM_FILES.iterdir(), FILES / "udhcpc.script"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.digest()


def _inputs_key(distribution: Distribution) -> str:
    """Known before resolving: the recipe, apt's lists and the builder's sources."""
    digest = hashlib.sha256(json.dumps(asdict(distribution), sort_keys=True).encode())
    digest.update(packages.lists_fingerprint().encode())
    digest.update(_sources_digest())
    return digest.hexdigest()


def _key(distribution: Distribution, image_packages: list, kernel_package) -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {
                "distribution": distribution.name,
                "packages": [[p.name, p.version, p.arch] for p in image_packages],
                "kernel": [kernel_package.name, kernel_package.version],
            },
            sort_keys=True,
        ).encode()
    )
    digest.update(_sources_digest())
    return digest.hexdigest()


def _current(out: Path, field: str, key: str) -> dict | None:
    """The output's image.json when its `field` is `key` and every part is there."""
    try:
        meta = json.loads((out / "image.json").read_text())
    except (OSError, ValueError):
        return None
    parts = ("kernel", "initrd", "disk.raw")
    if meta.get(field) == key and all((out / p).is_file() for p in parts):
        return meta
    return None


def _resolve(archive: packages.Archive, distribution: Distribution):
    closure = archive.resolve(distribution.packages)
    image_packages = [p for p in closure if p.name not in SKIPPED_PACKAGES]
    kernel_package = next(
        (
            p
            for p in archive.resolve((distribution.kernel_package,))
            if p.name.startswith("linux-image-") and p.name != distribution.kernel_package
        ),
        None,
    )
    if kernel_package is None:
        raise BuildError(f"{distribution.kernel_package} resolved to no linux-image package")
    return image_packages, kernel_package


def build_vm_image(options: VmImageOptions) -> dict:
    """Build (or find current) the VM image `options.distribution` in `options.out`; return its
    image.json."""
    started = time.monotonic()
    distribution = DISTRIBUTIONS.get(options.distribution)
    if distribution is None:
        raise BuildError(
            f"no VM image recipe {options.distribution!r}: known are "
            + ", ".join(sorted(DISTRIBUTIONS))
        )
    check_host()
    out, cache = options.out.resolve(), options.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    archive = packages.Archive(cache)
    inputs_key = _inputs_key(distribution)
    if options.use_cache and (meta := _current(out, "inputs_key", inputs_key)):
        say(f"{distribution.name} in {out} is current (package lists and builder unchanged)")
        return meta
    with step("resolving the package closure"):
        image_packages, kernel_package = _resolve(archive, distribution)
        say(
            f"{len(image_packages)} packages, kernel {kernel_package.name} {kernel_package.version}"
        )
    key = _key(distribution, image_packages, kernel_package)
    if options.use_cache and (meta := _current(out, "build_key", key)):
        say(f"{distribution.name} in {out} is current (same packages and builder)")
        meta["inputs_key"] = inputs_key
        (out / "image.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return meta
    # Parts are about to be replaced: an interrupted build must not pass for a current one.
    (out / "image.json").unlink(missing_ok=True)
    work = cache / f"vm-{distribution.name}"
    if work.exists():
        shutil.rmtree(work)
    tree, staging, boot = work / "tree", work / "kernel", work / "initramfs"
    for directory in (tree, staging, boot):
        directory.mkdir(parents=True)
    with step("downloading packages the cache lacks"):
        archive.download((*distribution.packages, distribution.kernel_package))
    with step(f"unpacking {len(image_packages)} packages"):
        packages.merge_usr(tree)
        packages.unpack([archive.path(p) for p in image_packages], tree)
        packages.unpack([archive.path(kernel_package)], staging)
    with step("kernel (vmlinux for PVH boot) and modules"):
        version, vmlinuz = kernel.install_kernel(staging, tree, DISK_MODULES)
        out.mkdir(parents=True, exist_ok=True)
        (out / "kernel").write_bytes(kernel.extract_vmlinux(vmlinuz.read_bytes()))
    with step("initramfs: busybox, disk and ext4 modules, /init"):
        _initramfs(boot, tree, staging, out / "initrd")
    with step("busybox init, sshd, the seed script, /etc"):
        rootfs.strip(tree)
        _configure(tree, distribution, version)
    tree_bytes = rootfs.tree_size(tree)
    with step(f"root disk template: ext4 of {tree_bytes / 2**20:.0f} MiB of files"):
        disk_bytes = _make_disk(tree, out / "disk.raw", tree_bytes)
    meta = {
        "cmdline": CMDLINE,
        "min_disk_gb": MIN_DISK_GB,
        "name": distribution.name,
        "kind": "vm",
        "kernel_version": version,
        "kernel_package": f"{kernel_package.name} {kernel_package.version}",
        "packages": {p.name: p.version for p in image_packages},
        "ready_marker": READY_MARKER,
        "rootfs_bytes": tree_bytes,
        "disk_bytes": disk_bytes,
        "build_key": key,
        "inputs_key": inputs_key,
        "built_at": int(time.time()),
    }
    (out / "image.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(work)
    sizes = ", ".join(
        f"{name} {(out / name).stat().st_size / 2**20:.1f} MiB"
        for name in ("kernel", "initrd", "disk.raw")
    )
    say(
        f"{distribution.name} in {out}: {sizes}, built in {time.monotonic() - started:.1f}s; "
        f"install it with `python -m nodeagent images --storage POOL install "
        f"{distribution.name} --from {out}`"
    )
    return meta


def _initramfs(boot: Path, tree: Path, staging: Path, out: Path) -> None:
    packages.merge_usr(boot)
    kernel.install_kernel(staging, boot, BOOT_MODULES)
    (boot / "usr/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(tree / "usr/bin/busybox", boot / "usr/bin/busybox")
    for applet in run([boot / "usr/bin/busybox", "--list"], what="listing busybox applets").split():
        if applet not in ("busybox", "init", "linuxrc"):
            (boot / "usr/bin" / applet).symlink_to("busybox")
    (boot / "usr/sbin").mkdir(exist_ok=True)
    for directory in ("dev", "proc", "sys", "newroot"):
        (boot / directory).mkdir()
    shutil.copy2(VM_FILES / "init", boot / "init")
    (boot / "init").chmod(0o755)
    initramfs.make_archive(boot, out, level=19)


def _configure(tree: Path, distribution: Distribution, kernel_version: str) -> None:
    rootfs.link_busybox(tree)
    (tree / "usr/sbin/init").unlink(missing_ok=True)
    (tree / "usr/sbin/init").symlink_to("/usr/bin/busybox")
    for relative, text in ETC_FILES.items():
        path = tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_text(text)
    (tree / "etc/shadow").chmod(0o600)
    os_release = tree / "usr/lib/os-release"
    if not os_release.is_file():
        raise BuildError("base-files did not install usr/lib/os-release")
    (tree / "etc/os-release").unlink(missing_ok=True)
    (tree / "etc/os-release").write_text(
        os_release.read_text()
        + f'VARIANT="ZOS VM"\nVARIANT_ID=zos-vm\nZOS_KERNEL="{kernel_version}"\n'
    )
    zos = tree / "etc/zos"
    zos.mkdir(parents=True)
    for name in ("rc", "shutdown", "network.awk"):
        shutil.copy2(VM_FILES / name, zos / name)
    shutil.copy2(FILES / "udhcpc.script", zos / "udhcpc")
    for name in ("rc", "shutdown", "udhcpc"):
        (zos / name).chmod(0o755)
    shutil.copy2(VM_FILES / "inittab", tree / "etc/inittab")
    ssh = tree / "etc/ssh"
    (ssh / "sshd_config.d").mkdir(parents=True, exist_ok=True)
    shutil.copy2(VM_FILES / "sshd_config", ssh / "sshd_config")
    for directory in ("proc", "sys", "dev", "run", "tmp", "var/tmp", "var/log", "root", "mnt"):
        (tree / directory).mkdir(parents=True, exist_ok=True)
    for directory in ("tmp", "var/tmp"):
        (tree / directory).chmod(0o1777)
    (tree / "root").chmod(0o700)
    (tree / "run/sshd").mkdir(parents=True, exist_ok=True)
    # sshd and ssh-keygen open /dev/null: a node for the check only, removed with the probe key.
    null = tree / "dev/null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    probe = "/root/zos-probe-key"
    try:
        run(
            ["chroot", tree, "/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", probe],
            what="checking ssh-keygen runs in the image",
        )
        run(
            ["chroot", tree, "/usr/sbin/sshd", "-t", "-f", "/etc/ssh/sshd_config", "-h", probe],
            what="checking sshd accepts the image's configuration",
        )
    finally:
        null.unlink()
        for suffix in ("", ".pub"):
            (tree / (probe[1:] + suffix)).unlink(missing_ok=True)


def _make_disk(tree: Path, disk: Path, tree_bytes: int) -> int:
    """An ext4 image of `tree`, sized to its files plus room for metadata and first writes."""
    size_mib = math.ceil(tree_bytes * 1.3 / 2**20) + 64
    size_mib = (size_mib + 15) // 16 * 16
    tmp = disk.with_name(disk.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with open(tmp, "wb") as target:
        target.truncate(size_mib << 20)
    run(
        ["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-d", tree, "-E", "root_owner=0:0", tmp],
        what="making the root file system",
    )
    tmp.replace(disk)
    return size_mib << 20
