"""`python -m image build`: Debian packages + the agent → build/{zos.efi, usb.img, vmlinuz, initrd,
boot.ipxe, manifest.json}.

Steps, each reported with its duration: resolve packages, download what the private apt cache
lacks, unpack, kernel modules, vendored Python packages, strip, bytecode, smoke test in a chroot,
compress the base layer (all of this skipped when its cache key is unchanged); then the agent
layer, the initrd, the UKI, the USB image and the manifest.
"""

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bootimage.ipxe import TEMPLATE as IPXE_TEMPLATE
from bootimage.tools import BuildError, require
from bootimage.usb import make_usb
from contracts.release_bundle import tree_version
from image import initramfs, kernel, packages, rootfs
from image.manifest import write_manifest
from image.progress import say, step
from image.uki import build_uki

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
# The builder's own sources: a change to any of them invalidates the cached base layer.
BASE_INPUTS = ("packages.py", "kernel.py", "rootfs.py", "initramfs.py")
BASE_CMDLINE = "console=tty0 console=ttyS0,115200 panic=-1 quiet"
OUTPUTS = ("zos.efi", "usb.img", "vmlinuz", "initrd", "boot.ipxe")
BASE_SMOKE = "import nacl.signing, requests, redis, websockets.sync.client, qemu.qmp"
AGENT_SMOKE = (
    "import importlib, importlib.util\n"
    "for name in ('nodeagent.cli', 'nodeagent.agent', 'nodeagent.supervisor', 'nodeagent.runner',"
    " 'nodeagent.launcher', 'nodeagent.updater'):\n"
    "    if importlib.util.find_spec(name):\n"
    "        importlib.import_module(name)\n"
)


@dataclass(frozen=True)
class BuildOptions:
    out: Path
    cache: Path
    use_cache: bool = True
    level: int = initramfs.DEFAULT_LEVEL


def check_host() -> None:
    """Root and the host tools, before any work: a build that fails late wastes a minute."""
    if os.geteuid() != 0:
        raise BuildError(
            "building the image needs root (unpacked files keep their owners, the smoke test "
            "runs in a chroot): run it as root, e.g. `sudo .venv/bin/python -m image build`"
        )
    require("apt-get", "dpkg-deb", "depmod", "cpio", "zstd", "objcopy", "sgdisk", "mkfs.vfat")
    require("mcopy", "mmd")


def _base_key(
    image_packages: list[packages.Package], kernel_package: packages.Package, level: int
) -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {
                "packages": [[p.name, p.version, p.arch] for p in image_packages],
                "kernel": [kernel_package.name, kernel_package.version],
                "vendored": rootfs.vendored_versions(),
                "level": level,
            },
            sort_keys=True,
        ).encode()
    )
    for name in BASE_INPUTS:
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Base:
    """The cached base layer: its tree (kept for smoke tests), archive, kernel and versions."""

    directory: Path

    @property
    def tree(self) -> Path:
        return self.directory / "tree"

    @property
    def archive(self) -> Path:
        return self.directory / "base.cpio.zst"

    @property
    def vmlinuz(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def info_path(self) -> Path:
        return self.directory / "info.json"

    def info(self) -> dict:
        return json.loads(self.info_path.read_text())

    def is_current(self, key: str) -> bool:
        try:
            return self.info()["key"] == key and self.archive.is_file() and self.vmlinuz.is_file()
        except (OSError, ValueError, KeyError):
            return False


def build_base(
    base: Base,
    archive: packages.Archive,
    names: tuple[str, ...],
    image_packages: list[packages.Package],
    kernel_package: packages.Package,
    key: str,
    level: int,
) -> None:
    with step("downloading packages the cache lacks"):
        archive.download(names)
    if base.directory.exists():
        shutil.rmtree(base.directory)
    base.tree.mkdir(parents=True)
    with step(f"unpacking {len(image_packages)} packages"):
        packages.merge_usr(base.tree)
        packages.unpack([archive.path(p) for p in image_packages], base.tree)
    with step("kernel and modules"):
        staging = base.directory / "kernel-staging"
        staging.mkdir()
        packages.unpack([archive.path(kernel_package)], staging)
        version, vmlinuz = kernel.install_kernel(staging, base.tree)
        shutil.copy2(vmlinuz, base.vmlinuz)
        shutil.rmtree(staging)
    with step("busybox links, /etc, CA bundle, vendored Python packages"):
        rootfs.link_busybox(base.tree)
        rootfs.write_etc(base.tree)
        rootfs.vendor(base.tree)
    with step("removing docs, man pages, locales, caches"):
        rootfs.strip(base.tree)
    with step("compiling the standard library and packages to bytecode"):
        rootfs.compile_python(
            base.tree,
            [f"usr/lib/{rootfs.PYTHON}", "usr/lib/python3/dist-packages", rootfs.VENDOR_DIR],
            unchecked=True,
        )
    with step("checking python3, redis-server, qemu, btrfs, ip, modprobe run in the image"):
        rootfs.smoke_test(base.tree, python_code=BASE_SMOKE)
    with step(f"compressing the base layer (zstd -{level})"):
        initramfs.make_archive(base.tree, base.archive, level=level)
    info = {
        "key": key,
        "kernel": version,
        "kernel_package": f"{kernel_package.name} {kernel_package.version}",
        "packages": {p.name: p.version for p in image_packages},
        "vendored": rootfs.vendored_versions(),
        "tree_bytes": rootfs.tree_size(base.tree),
    }
    base.info_path.write_text(json.dumps(info, indent=2, sort_keys=True))


def build_agent_layer(base: Base, work: Path, level: int) -> Path:
    """The working tree's agent and /init, checked against the base tree, as a small archive."""
    tree = work / "agent-tree"
    if tree.exists():
        shutil.rmtree(tree)
    rootfs.install_agent(tree)
    (tree / "etc/zos").mkdir(parents=True)
    shutil.copy2(FILES / "init", tree / "init")
    shutil.copy2(FILES / "udhcpc.script", tree / "etc/zos/udhcpc.script")
    for path in (tree / "init", tree / "etc/zos/udhcpc.script"):
        path.chmod(0o755)
    rootfs.compile_python(tree, [rootfs.AGENT_DIR], unchecked=False)
    # The agent must import with the image's interpreter and libraries: check it in the base tree.
    probe = base.tree / rootfs.AGENT_DIR
    shutil.rmtree(probe, ignore_errors=True)
    shutil.copytree(tree / rootfs.AGENT_DIR, probe)
    try:
        rootfs.smoke_test(base.tree, python_code=AGENT_SMOKE)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    layer = work / "agent.cpio.zst"
    initramfs.make_archive(tree, layer, level=level)
    return layer


def _os_release(version: str) -> str:
    return 'NAME="ZOS"\nID=zos\nPRETTY_NAME="ZOS node ' + version + f'"\nVERSION_ID={version}\n'


def build(options: BuildOptions) -> dict:
    """Build every artefact into `options.out`; return the manifest."""
    started = time.monotonic()
    check_host()
    out, cache = options.out.resolve(), options.cache.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    archive = packages.Archive(cache)
    names = (*packages.ROOTFS_PACKAGES, packages.KERNEL_PACKAGE)
    with step("resolving the package closure"):
        rootfs_closure = archive.resolve(packages.ROOTFS_PACKAGES)
        kernel_package = next(
            (
                p
                for p in archive.resolve((packages.KERNEL_PACKAGE,))
                if p.name.startswith("linux-image-") and p.name != packages.KERNEL_PACKAGE
            ),
            None,
        )
        if kernel_package is None:
            raise BuildError(f"{packages.KERNEL_PACKAGE} resolved to no linux-image package")
        image_packages = [p for p in rootfs_closure if p.name not in packages.SKIPPED_PACKAGES]
        say(
            f"{len(image_packages)} packages, kernel {kernel_package.name} {kernel_package.version}"
        )
    base = Base(cache / "base")
    key = _base_key(image_packages, kernel_package, options.level)
    if options.use_cache and base.is_current(key):
        say("base layer unchanged: reusing the cached root filesystem")
    else:
        build_base(base, archive, names, image_packages, kernel_package, key, options.level)
    info = base.info()
    with step("agent layer: nodeagent, contracts, signing, rhai, sal, /init"):
        agent_layer = build_agent_layer(base, cache, options.level)
    with step("initrd, UKI, USB image, iPXE script"):
        shutil.copy2(base.vmlinuz, out / "vmlinuz")
        initramfs.concatenate([base.archive, agent_layer], out / "initrd")
        initrd_digest = hashlib.sha256((out / "initrd").read_bytes()).hexdigest()
        agent_version = tree_version(rootfs.REPO)
        version = f"{agent_version}+{initrd_digest[:12]}"
        cmdline = f"{BASE_CMDLINE} zos.version={version}"
        build_uki(
            vmlinuz=out / "vmlinuz",
            initrd=out / "initrd",
            cmdline=cmdline,
            osrel=_os_release(version),
            out=out / "zos.efi",
        )
        make_usb(out / "zos.efi", out / "usb.img")
        (out / "boot.ipxe").write_text(IPXE_TEMPLATE)
    manifest = write_manifest(
        out,
        {
            "version": version,
            "agent_version": agent_version,
            "cmdline": cmdline,
            "kernel": info["kernel"],
            "kernel_package": info["kernel_package"],
            "packages": info["packages"],
            "vendored": info["vendored"],
            "rootfs_bytes": info["tree_bytes"],
            "zstd_level": options.level,
            "built_at": int(time.time()),
        },
        list(OUTPUTS),
    )
    sizes = {name: manifest["files"][name]["size"] / 2**20 for name in ("zos.efi", "usb.img")}
    say(
        f"image {version} in {out}: zos.efi {sizes['zos.efi']:.1f} MiB, "
        f"usb.img {sizes['usb.img']:.1f} MiB, built in {time.monotonic() - started:.1f}s"
    )
    return manifest
