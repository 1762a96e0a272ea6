"""The image's root filesystem, in two layers.

The base layer is everything from Debian (python3 and the agent's C-backed libraries,
redis-server, QEMU, btrfs-progs, iproute2, busybox, kmod, and for VMs e2fsprogs' chattr,
dosfstools and mtools), the kernel modules, the Python
packages vendored at the project's pinned versions, the CA bundle, and precompiled bytecode. It
changes only when a package version or this builder changes, so it is cached.

The agent layer is the working tree's agent (`nodeagent`, `contracts`, `signing`, `rhai`, `sal`)
and /init. It is small and rebuilt every time.
"""

import importlib.metadata
import importlib.util
import os
import shutil
import sys
from pathlib import Path

from bootimage.tools import BuildError, run
from contracts.release_bundle import BUNDLE_PACKAGES

REPO = Path(__file__).resolve().parent.parent
AGENT_DIR = "opt/zos/agent"
VENDOR_DIR = "opt/zos/lib"
# Debian 12 ships websockets 10.4 (no `websockets.sync`) and redis 4.3; the agent is tested with
# the versions pinned in requirements.txt, so the image carries those, copied from the build's
# interpreter (the same CPython 3.11 as the image's, so compiled parts match).
# qemu.qmp (QEMU's QMP client, used by the hypervisor SAL) is not packaged by Debian 12 at all.
VENDORED = {
    "websockets": "websockets",
    "redis": "redis",
    "async_timeout": "async-timeout",
    "qemu": "qemu.qmp",
}
PYTHON = "python3.11"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

# Not needed at run time: documentation, translations, package-manager state, service-manager
# glue, headers, static libraries, and the parts of the standard library a server never imports.
STRIP = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/bug",
    "usr/share/bash-completion",
    "usr/share/zsh",
    "usr/share/gdb",
    "usr/share/menu",
    "usr/share/pixmaps",
    "usr/share/applications",
    "usr/share/icons",
    "usr/share/initramfs-tools",
    "usr/share/apport",
    "usr/share/python3",
    "usr/share/pyshared",
    "usr/include",
    "usr/lib/systemd",
    "usr/lib/tmpfiles.d",
    "usr/lib/sysctl.d",
    "etc/init.d",
    "etc/systemd",
    "etc/cron.daily",
    "etc/logrotate.d",
    "var/cache",
    "var/lib/dpkg",
    "var/log",
    # QEMU: the node runs x86-64 guests only; the other firmware and emulators are dead weight.
    "usr/libexec/qemu-system-i386",
    "usr/bin/qemu-storage-daemon",
    f"usr/lib/{PYTHON}/test",
    f"usr/lib/{PYTHON}/idlelib",
    f"usr/lib/{PYTHON}/tkinter",
    f"usr/lib/{PYTHON}/turtledemo",
    f"usr/lib/{PYTHON}/lib2to3",
    f"usr/lib/{PYTHON}/ensurepip",
    f"usr/lib/{PYTHON}/pydoc_data",
    f"usr/lib/{PYTHON}/config-3.11-x86_64-linux-gnu",
)

QEMU_FOREIGN = tuple(
    f"usr/share/qemu/{name}"
    for name in (
        "QEMU,*",
        "*.dtb",
        "hppa-*",
        "npcm7xx*",
        "openbios-*",
        "opensbi-*",
        "palcode-*",
        "s390-*",
        "skiboot.lid",
        "slof.bin",
        "vof.bin",
        "u-boot*",
    )
)

ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "etc/hostname": "zos\n",
    "etc/hosts": "127.0.0.1 localhost zos\n::1 localhost\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
}


def strip(root: Path) -> None:
    for relative in STRIP:
        path = root / relative
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    for pattern in ("usr/lib/**/*.a", f"usr/lib/{PYTHON}/**/__pycache__", *QEMU_FOREIGN):
        for path in root.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def link_busybox(root: Path) -> None:
    """A link for every busybox applet that no real package provides (sh, udhcpc, mount, ...)."""
    busybox = root / "usr/bin/busybox"
    if not busybox.exists():
        raise BuildError("busybox-static did not install usr/bin/busybox")
    applets = run([busybox, "--list-full"], what="listing busybox applets").split()
    provided = {p.name for d in ("usr/bin", "usr/sbin") for p in (root / d).iterdir()}
    for applet in applets:
        name = Path(applet).name
        if name in provided or name in ("busybox", "linuxrc", "init"):
            continue
        directory = "usr/sbin" if "sbin/" in applet else "usr/bin"
        (root / directory / name).symlink_to("/usr/bin/busybox")
        provided.add(name)


def write_etc(root: Path) -> None:
    for relative, text in ETC_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_text(text)
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    if not HOST_CA_BUNDLE.is_file():
        raise BuildError(f"{HOST_CA_BUNDLE} is missing: apt-get install ca-certificates")
    shutil.copyfile(HOST_CA_BUNDLE, bundle)
    for directory in ("proc", "sys", "dev", "run", "tmp", "root", "mnt", "var/cache/zos"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)


def vendored_versions() -> dict[str, str]:
    return {dist: importlib.metadata.version(dist) for dist in VENDORED.values()}


def vendor(root: Path) -> None:
    """Copy the pinned pure-Python (or CPython 3.11) packages from this interpreter."""
    target = root / VENDOR_DIR
    target.mkdir(parents=True, exist_ok=True)
    for module in VENDORED:
        spec = importlib.util.find_spec(module)
        if spec is None:
            raise BuildError(
                f"{module} is not importable by {sys.executable}: run the build with the "
                "project's .venv (scripts/setup.sh installs requirements.txt there)"
            )
        if spec.submodule_search_locations:  # a package, or a namespace package like `qemu`
            source = Path(next(iter(spec.submodule_search_locations)))
            shutil.copytree(
                source,
                target / module,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyi", "py.typed"),
            )
        else:
            source = Path(spec.origin)
            shutil.copy2(source, target / source.name)


def install_agent(root: Path) -> None:
    """The agent's packages from the working tree: sources only, compiled in `compile_python`."""
    target = root / AGENT_DIR
    for package in BUNDLE_PACKAGES:
        shutil.copytree(
            REPO / package,
            target / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "*.md"),
        )


def agent_sources() -> list[Path]:
    """Every file `install_agent` copies: their contents decide whether a build is current."""
    files = []
    for package in BUNDLE_PACKAGES:
        for path in sorted((REPO / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path)
    return files


def compile_python(root: Path, directories: list[str], *, unchecked: bool) -> None:
    """Precompile bytecode with the build's CPython 3.11 (same magic as the image's).

    Under TCG, compiling the standard library at every boot would cost seconds; with `unchecked`
    the interpreter does not even stat the sources. The agent layer stays timestamp-checked so an
    updated agent release is recompiled.
    """
    existing = [str(root / d) for d in directories if (root / d).is_dir()]
    run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "-j",
            "2",
            "-s",
            str(root),
            "-p",
            "/",
            "--invalidation-mode",
            "unchecked-hash" if unchecked else "timestamp",
            *existing,
        ],
        what="compiling Python bytecode",
    )


def smoke_test(root: Path, *, python_code: str) -> None:
    """Run the image's own binaries in a chroot: a missing library fails the build, not the boot."""
    env = {
        "PATH": "/usr/sbin:/usr/bin",
        "PYTHONPATH": f"/{AGENT_DIR}:/{VENDOR_DIR}",
        "LC_ALL": "C",
    }
    checks = (
        ["/usr/bin/python3", "-c", python_code],
        ["/usr/bin/redis-server", "--version"],
        ["/usr/bin/qemu-system-x86_64", "--version"],
        ["/usr/bin/btrfs", "--version"],
        ["/usr/sbin/mkfs.btrfs", "--version"],
        ["/usr/bin/ip", "-V"],
        ["/usr/sbin/modprobe", "--version"],
        ["/usr/bin/lsattr", "-V", "-d", "/"],  # chattr has no harmless flag; same package
        ["/usr/sbin/mkfs.vfat", "--help"],
        ["/usr/bin/mcopy", "--version"],
    )
    for argv in checks:
        run(
            ["chroot", root, *argv],
            what=f"checking {Path(argv[0]).name} runs in the image",
            env=env,
        )


def tree_size(root: Path) -> int:
    total = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total
