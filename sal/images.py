"""Cached VM images and the VM disks made from them.

An image is a directory `<root>/<name>/` holding `kernel` (booted directly, no firmware), an
optional `initrd`, an optional `disk.raw` (the root disk template) and `image.json`
(`{"cmdline": "...", "min_disk_gb": N}`). A container image holds `rootfs.tar` (any compression
tar detects) instead of a kernel, and optionally in `image.json` an `entrypoint` list, an `env`
map and a `workdir` (what an OCI image's config says, `python -m image oci-import`): it is
unpacked into a subvolume and booted with the node's own machine kernel (`unpack_rootfs`).
Other keys in `image.json` (what a builder records about the image) are ignored.

A VM's disk is a reflink copy of `disk.raw`: on btrfs that takes milliseconds and no space
whatever the image size, which is what makes VM creation cheap (ARCHITECTURE §6). A full copy
of a multi-GiB image is slow and doubles disk use, so it is refused unless the caller
explicitly allows it.
"""

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from sal import btrfs
from sal.command import SalError, run

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
BTRFS_MAGIC = 0x9123683E
GIB = 1024**3


class ImageError(SalError):
    """An image or VM disk operation failed; the message names the image or disk."""


@dataclass(frozen=True)
class Image:
    name: str
    path: Path
    kernel: Path | None  # None: a container image
    initrd: Path | None
    disk: Path | None
    cmdline: str
    min_disk_gb: int
    rootfs: Path | None = None
    entrypoint: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # containers: the image's environment
    workdir: str = ""  # containers: the entrypoint's working directory ("" = /)

    @property
    def is_container(self) -> bool:
        return self.rootfs is not None


def validate_name(name: str) -> str:
    """Image names become directory names: lowercase, no slashes, no leading dot."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ImageError(
            f"image name {name!r} is invalid: use 1-63 of a-z 0-9 . _ - starting with a letter "
            "or digit"
        )
    return name


def is_btrfs(path: Path) -> bool:
    """Whether `path` (or its nearest existing parent) is on btrfs."""
    p = Path(path)
    while not p.exists():
        p = p.parent
    out = run(["stat", "-f", "-c", "%t", str(p)]).stdout.strip()
    return int(out, 16) == BTRFS_MAGIC


class ImageCache:
    """The node's image directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / validate_name(name)

    def install(
        self,
        name: str,
        *,
        kernel: Path | None = None,
        initrd: Path | None = None,
        disk: Path | None = None,
        cmdline: str = "",
        min_disk_gb: int = 0,
        rootfs: Path | None = None,
        entrypoint: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        workdir: str = "",
    ) -> Image:
        """Copy the parts into the cache as image `name`, replacing an older one atomically.

        A VM image needs `kernel`; a container image needs `rootfs` (a tarball) and no kernel.
        """
        if (kernel is None) == (rootfs is None):
            raise ImageError(
                f"image {name!r} needs either a kernel (a VM image) or a rootfs tarball "
                "(a container image), not both or neither"
            )
        validate_name(name)  # before anything is written
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{name}.installing"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            if kernel is not None:
                shutil.copyfile(kernel, staging / "kernel")
            if rootfs is not None:
                shutil.copyfile(rootfs, staging / "rootfs.tar")
            if initrd is not None:
                shutil.copyfile(initrd, staging / "initrd")
            if disk is not None:
                _copy(disk, staging / "disk.raw", reflink_only=False)
            meta = {"cmdline": cmdline, "min_disk_gb": int(min_disk_gb)}
            if entrypoint:
                meta["entrypoint"] = list(entrypoint)
            if env:
                meta["env"] = dict(env)
            if workdir:
                meta["workdir"] = workdir
            (staging / "image.json").write_text(json.dumps(meta, indent=2) + "\n")
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ImageError(f"cannot install image {name}: {exc}") from exc
        return self.adopt(name, staging)

    def adopt(self, name: str, staging: Path) -> Image:
        """Make `staging`, a directory in the cache root laid out as an image, image `name`.

        A rename, so readers see the old image or the new one, never a half-written one; an
        older image of that name is replaced. `staging` is removed if it cannot be adopted.
        """
        dst = self.path(name)
        staging = Path(staging)
        try:
            if staging.parent != self.root:
                raise OSError(f"{staging} is not in the cache root {self.root}")
            if dst.exists():
                old = self.root / f".{name}.old"
                shutil.rmtree(old, ignore_errors=True)
                dst.rename(old)
                staging.rename(dst)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staging.rename(dst)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ImageError(f"cannot install image {name}: {exc}") from exc
        return self.get(name)

    def install_directory(self, name: str, source: Path) -> Image:
        """Install an image directory as a builder wrote it (`python -m image vm-image`,
        `python -m image oci-import`): its parts and image.json, read as `get` reads them."""
        source = Path(source)
        meta = _read_meta(source / "image.json", f"image directory {source}")
        parts = {
            part: source / filename if (source / filename).is_file() else None
            for part, filename in (
                ("kernel", "kernel"),
                ("initrd", "initrd"),
                ("disk", "disk.raw"),
                ("rootfs", "rootfs.tar"),
            )
        }
        return self.install(
            name,
            **parts,
            cmdline=str(meta.get("cmdline", "")),
            min_disk_gb=int(meta.get("min_disk_gb", 0)),
            entrypoint=tuple(str(a) for a in meta.get("entrypoint", ())),
            env={str(k): str(v) for k, v in meta.get("env", {}).items()},
            workdir=str(meta.get("workdir", "")),
        )

    def get(self, name: str) -> Image:
        path = self.path(name)
        meta_path = path / "image.json"
        kernel, rootfs = path / "kernel", path / "rootfs.tar"
        if not meta_path.is_file() or not (kernel.is_file() or rootfs.is_file()):
            raise ImageError(f"image {name!r} is not in the image cache ({self.root})")
        meta = _read_meta(meta_path, f"image {name!r}")
        initrd = path / "initrd"
        disk = path / "disk.raw"
        return Image(
            name=name,
            path=path,
            kernel=kernel if kernel.is_file() else None,
            initrd=initrd if initrd.is_file() else None,
            disk=disk if disk.is_file() else None,
            cmdline=str(meta.get("cmdline", "")),
            min_disk_gb=int(meta.get("min_disk_gb", 0)),
            rootfs=rootfs if rootfs.is_file() else None,
            entrypoint=tuple(str(a) for a in meta.get("entrypoint", ())),
            env=tuple(sorted((str(k), str(v)) for k, v in meta.get("env", {}).items())),
            workdir=str(meta.get("workdir", "")),
        )

    def list(self) -> list[Image]:
        if not self.root.is_dir():
            return []
        return [
            self.get(p.name)
            for p in sorted(self.root.iterdir())
            if not p.name.startswith(".") and (p / "image.json").is_file()
        ]

    def remove(self, name: str) -> None:
        shutil.rmtree(self.path(name), ignore_errors=True)

    def vdisk_from(
        self, image: Image | str, dst: Path, size_gb: int, *, allow_full_copy: bool = False
    ) -> Path:
        """Make a VM disk at `dst` from the image's disk (reflink copy), grown to `size_gb`.

        Without a `disk.raw` in the image, an empty sparse disk of that size is made. The
        destination must not exist: a VM disk is never silently overwritten.
        """
        img = self.get(image) if isinstance(image, str) else image
        dst = Path(dst)
        if size_gb < max(img.min_disk_gb, 1):
            raise ImageError(
                f"disk size {size_gb} GiB is below image {img.name}'s minimum of "
                f"{max(img.min_disk_gb, 1)} GiB"
            )
        if dst.exists():
            raise ImageError(f"VM disk {dst} already exists")
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            if img.disk is not None:
                if img.disk.stat().st_size > size_gb * GIB:
                    raise ImageError(
                        f"image {img.name}'s disk is {img.disk.stat().st_size} bytes, larger than "
                        f"the requested {size_gb} GiB"
                    )
                _copy(img.disk, dst, reflink_only=not allow_full_copy)
            with open(dst, "ab") as f:
                f.truncate(size_gb * GIB)
        except BaseException:
            dst.unlink(missing_ok=True)
            raise
        return dst


def _read_meta(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ImageError(f"{what} has no image.json")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ImageError(f"{what}: image.json is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("env", {}), dict):
        raise ImageError(f"{what}: image.json must be an object whose env is an object")
    return meta


def _copy(src: Path, dst: Path, *, reflink_only: bool) -> None:
    if reflink_only:
        if not is_btrfs(dst.parent):
            raise ImageError(
                f"cannot make {dst} by reflink: {dst.parent} is not on btrfs (a full copy "
                "needs allow_full_copy=True)"
            )
        try:
            btrfs.reflink_copy(src, dst)
        except SalError as exc:
            raise ImageError(str(exc)) from exc
    else:
        run(["cp", "--reflink=auto", str(src), str(dst)], timeout=3600)
    os.chmod(dst, 0o600)


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a variable name a shell accepts
CONTAINER_DIR = ".zos"  # inside a container root: entrypoint and env for the machine's init


def unpack_rootfs(tarball: Path, dst: Path) -> Path:
    """Unpack a container root tree from a tarball (any compression tar detects) into `dst`.

    On btrfs `dst` is made a subvolume, so the tree can get a quota and be snapshotted or deleted
    in one step. `dst` must not exist. GNU tar strips leading `/` and refuses `..` members, so
    a hostile tarball cannot write outside `dst`.
    """
    tarball, dst = Path(tarball), Path(dst)
    if not tarball.is_file():
        raise ImageError(f"cannot unpack {tarball}: no such file")
    if dst.exists():
        raise ImageError(f"cannot unpack {tarball} into {dst}: it already exists")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if is_btrfs(dst.parent):
        run(["btrfs", "subvolume", "create", str(dst)])
    else:
        dst.mkdir()
    try:
        run(
            ["tar", "-x", "-f", str(tarball), "-C", str(dst), "--numeric-owner", "--xattrs"],
            timeout=600,
        )
    except SalError as exc:
        remove_rootfs(dst)
        raise ImageError(f"cannot unpack {tarball} into {dst}: {exc}") from exc
    return dst


def remove_rootfs(root: Path) -> None:
    """Remove a container root tree made by `unpack_rootfs` (subvolume or directory)."""
    root = Path(root)
    if not root.exists():
        return
    if root.stat().st_ino == 256 and is_btrfs(root):
        run(["btrfs", "subvolume", "delete", "--commit-each", str(root)], timeout=120)
    else:
        shutil.rmtree(root)


def write_container_config(
    root: Path, entrypoint: list[str], env: dict[str, str], workdir: str = ""
) -> None:
    """Record what a container machine runs: `<root>/.zos/entrypoint` (one argument per line),
    `<root>/.zos/env` (KEY=VALUE per line) and `<root>/.zos/workdir` (the entrypoint's working
    directory inside the root, `/` when empty), read by the machine's init over the 9p share."""
    if not entrypoint or not all(isinstance(a, str) and a for a in entrypoint):
        raise ImageError("a container entrypoint needs at least one non-empty argument")
    if any("\n" in a for a in entrypoint):
        raise ImageError("container entrypoint arguments cannot contain newlines")
    for key, value in env.items():
        if not ENV_NAME.fullmatch(key):
            raise ImageError(f"container env name {key!r} is not a valid variable name")
        if "\n" in str(value):
            raise ImageError(f"container env {key}: values cannot contain newlines")
    if workdir and (not workdir.startswith("/") or "\n" in workdir):
        raise ImageError(f"container workdir {workdir!r} must be an absolute one-line path")
    conf = Path(root) / CONTAINER_DIR
    conf.mkdir(mode=0o755, exist_ok=True)
    (conf / "entrypoint").write_text("".join(a + "\n" for a in entrypoint))
    (conf / "env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    (conf / "workdir").write_text((workdir or "/") + "\n")
