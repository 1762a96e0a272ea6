"""Debian packages for the image: resolve the closure, download it, unpack it.

The fast route of PLATFORM.md: `apt-get` resolves the dependency closure against an empty dpkg
status (so everything the image needs is listed, nothing of the build host is assumed) and
downloads into a private cache; each package is then unpacked with `dpkg-deb | tar`. No
maintainer script runs: the image has no package manager, so tools that exist only for those
scripts (perl, dpkg, debconf, adduser, ...) are left out.
"""

import hashlib
import json
import os
import re
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bootimage.tools import BuildError, run

# What the node runs: the agent's interpreter and C-backed libraries, its Redis, the hypervisor,
# storage and network tools, busybox for /init and DHCP, kmod for modules. VMs need three more
# that busybox lacks: `chattr +C` for the pool's no-copy-on-write VM disk directories
# (e2fsprogs), `mkfs.vfat -C` and mtools' `mcopy` for each VM's NoCloud seed
# (sal/hypervisor/cidata.py).
ROOTFS_PACKAGES = (
    "python3",
    "python3-nacl",
    "python3-cffi-backend",
    "python3-requests",
    "redis-server",
    "qemu-system-x86",
    "btrfs-progs",
    "iproute2",
    "busybox-static",
    "kmod",
    "e2fsprogs",
    "dosfstools",
    "mtools",
)
KERNEL_PACKAGE = "linux-image-amd64"

# Needed only by maintainer scripts, which never run in the image.
SKIPPED_PACKAGES = frozenset(
    {
        "adduser",
        "ca-certificates",  # its postinst builds the bundle; the build copies the host's bundle
        "debconf",
        "dpkg",
        "init-system-helpers",
        "iso-codes",
        "libfile-find-rule-perl",
        "libnumber-compare-perl",
        "libperl5.36",
        "libsemanage-common",
        "libsemanage2",
        "libsepol2",
        "libtext-glob-perl",
        "lsb-base",
        "openssl",
        "passwd",
        "perl",
        "perl-base",
        "perl-modules-5.36",
        "python3-pkg-resources",
        "readline-common",
        "sysvinit-utils",
        "tar",
        "usrmerge",
    }
)

APT_LISTS = Path("/var/lib/apt/lists")
# Pinning and apt's own settings change which versions a closure takes, not only the lists.
APT_PREFERENCES = (
    Path("/etc/apt/preferences"),
    Path("/etc/apt/preferences.d"),
    Path("/etc/apt/apt.conf"),
    Path("/etc/apt/apt.conf.d"),
)
_INST = re.compile(r"^Inst (\S+) (?:\[\S+\] )?\((\S+) .*\[(\S+)\]\)")
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str
    arch: str

    @property
    def filename(self) -> str:
        """The name apt gives the downloaded .deb (an epoch's colon is escaped)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


class Archive:
    """apt against an empty dpkg status, with its own cache directory under `cache_dir`.

    A resolved closure is kept there too, keyed by what decides it (the package lists, apt's
    preferences, the names asked for): apt reads every list to answer, 10-40 s of a build that
    otherwise takes seconds when nothing changed (CI builds the image three times a run)."""

    def __init__(self, cache_dir: Path, *, lists: Path = APT_LISTS) -> None:
        self.lists = lists
        self.cache_dir = cache_dir / "apt"
        self.archives = self.cache_dir / "archives"
        (self.archives / "partial").mkdir(parents=True, exist_ok=True)
        self.status = self.cache_dir / "status"
        self.status.touch()

    def _apt(self, *args: str, what: str) -> str:
        return run(
            [
                "apt-get",
                "-q",
                "-y",
                f"-o=Dir::State::status={self.status}",
                f"-o=Dir::State::extended_states={self.cache_dir / 'extended_states'}",
                f"-o=Dir::Cache={self.cache_dir}",
                "-o=Debug::NoLocking=1",
                "-o=APT::Install-Recommends=0",
                "-o=APT::Install-Suggests=0",
                *args,
            ],
            what=what,
            env={"LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive", "PATH": _path()},
        )

    def resolve(self, names: tuple[str, ...]) -> list[Package]:
        """The full dependency closure of `names`, as apt would install it on an empty system."""
        kept = self.closure_path(names)
        if kept.is_file():
            return [Package(*row) for row in json.loads(kept.read_text())]
        output = self._apt("install", "-s", *names, what=f"resolving {' '.join(names)}")
        packages = [
            Package(*m.groups()) for line in output.splitlines() if (m := _INST.match(line))
        ]
        if not packages:
            raise BuildError(
                "apt resolved no packages: are the package lists there? Run `apt-get update`."
            )
        packages.sort()
        kept.parent.mkdir(parents=True, exist_ok=True)
        partial = kept.with_name(f"{kept.name}.{os.getpid()}")
        partial.write_text(json.dumps([[p.name, p.version, p.arch] for p in packages]))
        partial.replace(kept)  # whole or absent: two builds at once never read half of it
        return packages

    def closure_path(self, names: tuple[str, ...]) -> Path:
        """Where the closure of `names` is kept for the current lists and apt preferences."""
        digest = hashlib.sha256(lists_fingerprint(self.lists).encode())
        digest.update(_files_fingerprint(APT_PREFERENCES).encode())
        digest.update("\0".join(names).encode())
        return self.cache_dir / "closures" / f"{digest.hexdigest()[:32]}.json"

    def missing(self, packages: list[Package]) -> list[Package]:
        return [p for p in packages if not (self.archives / p.filename).is_file()]

    def download(self, names: tuple[str, ...]) -> None:
        """Fetch what the private cache lacks; stop at once with a clear message if offline."""
        uris = self._apt("install", "--print-uris", *names, what="listing package downloads")
        hosts = {urlsplit(line.split("'")[1]) for line in uris.splitlines() if line[:1] == "'"}
        for url in {(u.hostname, u.port or (443 if u.scheme == "https" else 80)) for u in hosts}:
            _check_reachable(*url)
        if hosts:
            self._apt("install", "--download-only", *names, what="downloading packages")

    def path(self, package: Package) -> Path:
        return self.archives / package.filename


def lists_fingerprint(lists: Path = APT_LISTS) -> str:
    """What apt knows, in one digest: the package lists' names, sizes and times. Unchanged
    lists resolve the same closure, so a build can be known current without asking apt."""
    digest = hashlib.sha256()
    for path in sorted(lists.glob("*Packages*")):
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _files_fingerprint(paths: tuple[Path, ...]) -> str:
    """Names, sizes and times of these files and of the files in these directories."""
    digest = hashlib.sha256()
    for base in paths:
        for path in sorted([base, *base.glob("*")] if base.is_dir() else [base]):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _path() -> str:
    return "/usr/sbin:/usr/bin:/sbin:/bin"


def _check_reachable(host: str | None, port: int) -> None:
    if host is None:
        return
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise BuildError(
            f"the package archive {host}:{port} is unreachable ({exc}); the build needs it "
            "for packages not in its cache. Check the network or the apt sources."
        ) from None


def merge_usr(root: Path) -> None:
    """Debian 12 is merged-/usr: /bin, /sbin and /lib are links, and packages rely on that."""
    for name in ("bin", "sbin", "lib", "lib64"):
        (root / "usr" / name).mkdir(parents=True, exist_ok=True)
        link = root / name
        if not link.is_symlink():
            link.symlink_to(f"usr/{name}")


def unpack(debs: list[Path], root: Path, *, workers: int = 2) -> None:
    """Unpack every .deb into `root`, keeping the merged-/usr links intact."""

    def one(deb: Path) -> None:
        # `tar --keep-directory-symlink`: without it, ./lib/ in a package replaces the lib link.
        done = subprocess.run(
            [
                "sh",
                "-c",
                'dpkg-deb --fsys-tarfile "$1" | tar -x --keep-directory-symlink -C "$2"',
                "unpack",
                str(deb),
                str(root),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BuildError(f"unpacking {deb.name} failed: {done.stderr.strip()}")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, debs))
