"""`python -m image oci-import ARCHIVE --out DIR`: an OCI image as a ZOS container image.

Users carry container images as an OCI image layout (a directory, or a tar of one) or as a
`docker save` tarball. Two well-kept Debian tools do the work, nothing is parsed by hand:

- `skopeo copy` reads any of those and writes a plain OCI layout (it converts Docker's format
  and checks every blob's digest on the way);
- `umoci unpack` applies the layers in order (whiteouts included) into a root tree;
- `skopeo inspect --config` gives the image config: the command is Entrypoint + Cmd (Docker's
  rule), with its Env and WorkingDir.

The result is the container image directory sal/images.py describes: `rootfs.tar` (numeric
owners, xattrs) and `image.json` with `entrypoint`, `env` and `workdir`, which the node's
container boot path honours (a script's `entrypoint` and `env` still override them). The
image's `User` is not applied: a container machine runs its entrypoint as root inside its own VM.
"""

import json
import math
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bootimage.tools import BuildError, require, run
from image.progress import say, step
from sal.images import ENV_NAME

TAG = "zos-import"
GIB = 2**30
# skopeo refuses to run without a signature policy. The archive is a local file its user chose;
# trust in what it holds comes from the publisher's signature on the image's manifest (the hub),
# so this policy accepts the archive as it is rather than depend on the host's policy.json.
POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


@dataclass(frozen=True)
class OciImportOptions:
    archive: Path
    out: Path
    reference: str | None = None  # which image in an archive that holds several


def transport(archive: Path, reference: str | None) -> str:
    """skopeo's source name for `archive`: an OCI layout directory, an OCI archive (a tar of
    one) or a `docker save` tarball (it has a manifest.json at its top)."""
    suffix = f":{reference}" if reference else ""
    if archive.is_dir():
        if not (archive / "oci-layout").is_file():
            raise BuildError(
                f"{archive} is a directory but not an OCI image layout (no oci-layout file)"
            )
        return f"oci:{archive}{suffix}"
    if not archive.is_file():
        raise BuildError(f"{archive}: no such file or directory")
    try:
        with tarfile.open(archive) as tar:
            names = {name.removeprefix("./") for name in tar.getnames()}
    except (tarfile.TarError, OSError) as exc:
        raise BuildError(
            f"{archive} is not a tar archive ({exc}): give an OCI image layout or a "
            "`docker save` tarball"
        ) from None
    if "oci-layout" in names:
        return f"oci-archive:{archive}{suffix}"
    if "manifest.json" in names:
        return f"docker-archive:{archive}{suffix}"
    raise BuildError(
        f"{archive} holds neither an OCI image layout (oci-layout) nor a `docker save` image "
        "(manifest.json)"
    )


def import_oci(options: OciImportOptions) -> dict:
    """Convert, unpack and archive the image into `options.out`; return its image.json."""
    started = time.monotonic()
    require("skopeo", "umoci", "tar")
    archive, out = options.archive.resolve(), options.out.resolve()
    source = transport(archive, options.reference)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="oci-import-", dir=out.parent) as tmp:
        work = Path(tmp)
        policy = work / "policy.json"
        policy.write_text(json.dumps(POLICY))
        layout = work / "layout"
        with step(f"reading {source.split(':', 1)[0]} {archive.name} (skopeo)"):
            run(
                ["skopeo", "--policy", policy, "copy", "--quiet", source, f"oci:{layout}:{TAG}"],
                what=f"reading the image in {archive}",
            )
        bundle = work / "bundle"
        with step("applying the layers (umoci unpack)"):
            run(
                ["umoci", "unpack", "--image", f"{layout}:{TAG}", bundle],
                what="unpacking the image's layers",
            )
        process = _process(
            run(
                ["skopeo", "--policy", policy, "inspect", "--config", f"oci:{layout}:{TAG}"],
                what="reading the image's config",
            )
        )
        rootfs = bundle / "rootfs"
        with step("archiving the root filesystem"):
            tmp_tar = out / "rootfs.tar.tmp"
            run(
                ["tar", "-C", rootfs, "--numeric-owner", "--xattrs", "-cf", tmp_tar, "."],
                what="archiving the root filesystem",
            )
            tmp_tar.replace(out / "rootfs.tar")
        unpacked = sum(p.lstat().st_size for p in rootfs.rglob("*") if not p.is_dir())
    meta = {
        "kind": "container",
        "cmdline": "",
        "min_disk_gb": max(1, math.ceil(unpacked * 1.1 / GIB)),
        "env": process["env"],
        "workdir": process["workdir"],
        "source": archive.name,
        "rootfs_bytes": unpacked,
        "built_at": int(time.time()),
    }
    if process["args"]:
        meta["entrypoint"] = process["args"]
    else:
        say("the image names no entrypoint or command: scripts must give one (entrypoint: [...])")
    (out / "image.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    say(
        f"{archive.name} → {out}: rootfs.tar {(out / 'rootfs.tar').stat().st_size / 2**20:.1f} "
        f"MiB, entrypoint {process['args']}, workdir {process['workdir'] or '/'}, in "
        f"{time.monotonic() - started:.1f}s"
    )
    return meta


def _process(config_json: str) -> dict:
    """The command (Entrypoint + Cmd), Env and WorkingDir of an OCI image config."""
    try:
        config = json.loads(config_json).get("config") or {}
    except ValueError as exc:
        raise BuildError(f"skopeo printed no image config ({exc})") from None
    env = {}
    for entry in config.get("Env") or []:
        key, sep, value = entry.partition("=")
        if sep and ENV_NAME.fullmatch(key) and "\n" not in value:
            env[key] = value
        else:
            say(f"leaving out env entry {entry!r}: not NAME=one-line value")
    args = [str(a) for a in [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]]
    cwd = str(config.get("WorkingDir") or "")
    return {"args": args, "env": env, "workdir": "" if cwd == "/" else cwd}
