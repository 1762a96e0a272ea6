"""`python -m box.vm_image build|publish`: the box's `debian-12` image, built once, published once.

scripts/up runs `build` before the box starts (the first time it takes about a minute and says
what it is doing; later it is instant: `python -m image vm-image` finds its output current) and
`publish` once the control plane answers and the operator's CLI is set up: the image goes to
the hub as a public image signed by the operator (staff), exactly as `zos image push --public`
does, so `vm_create(#{image: "debian-12"})` on any node of the grid fetches it on first use.

The version published is the build's: its date and the first hex digits of its build key
(packages, kernel and builder). A rerun of scripts/up finds that version on the hub and uploads
nothing; a rebuilt image (new packages) is published as a new version, which nodes take once
their cached copy is evicted. The build lives in build/images (shared with the image tests and
with `python -m image vm-image`), not in var/, so a fresh var directory does not rebuild it.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bootimage.tools import BuildError

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "debian-12"
BUILD_DIR = ROOT / "build"


class PublishError(Exception):
    pass


def say(text: str) -> None:
    sys.stderr.write(f"==> {text}\n")
    sys.stderr.flush()


def image_dir(distribution: str = DISTRIBUTION, build_dir: Path = BUILD_DIR) -> Path:
    return build_dir / "images" / distribution


def version_of(meta: dict) -> str:
    """The hub version of a build: `<yyyymmdd>-<build key prefix>`, the same for the same build."""
    day = time.strftime("%Y%m%d", time.gmtime(meta["built_at"]))
    return f"{day}-{meta['build_key'][:10]}"


def build(distribution: str = DISTRIBUTION, build_dir: Path = BUILD_DIR) -> dict:
    """Build the image (or find it current) and return its image.json."""
    from image.vm_image import VmImageOptions, build_vm_image

    return build_vm_image(
        VmImageOptions(
            distribution=distribution,
            out=image_dir(distribution, build_dir),
            cache=build_dir / "cache",
        )
    )


def _zos(cli_home: Path, *argv: str, quiet: bool = False) -> subprocess.CompletedProcess:
    """The operator's CLI as scripts/up set it up (logged in, signing key registered); `quiet`
    keeps its stderr (progress, errors) off the terminal."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(cli_home)}
    return subprocess.run(
        [str(ROOT / "bin" / "zos"), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if quiet else None,
        text=True,
        check=False,
    )


def published(cli_home: Path, name: str, version: str) -> bool:
    """Is `name:version` on the hub as a public image?"""
    done = _zos(cli_home, "image", "show", name, "--json", quiet=True)
    if done.returncode != 0:  # no image of that name yet, or the hub cannot say: push
        return False
    return any(i["version"] == version and i["public"] for i in json.loads(done.stdout))


def publish(cli_home: Path, distribution: str = DISTRIBUTION, build_dir: Path = BUILD_DIR) -> str:
    """Publish the built image as public unless that version is there; returns `name:version`."""
    directory = image_dir(distribution, build_dir)
    try:
        meta = json.loads((directory / "image.json").read_text())
    except (OSError, ValueError) as exc:
        raise PublishError(f"no built image in {directory} ({exc}); build it first") from exc
    version = version_of(meta)
    if published(cli_home, distribution, version):
        say(f"{distribution}:{version} is on the hub already")
        return f"{distribution}:{version}"
    say(f"publishing {distribution}:{version} to the hub as a public image")
    push = ["image", "push", str(directory), "--name", distribution, "--version", version]
    done = _zos(cli_home, *push, "--public")  # the progress bar goes to the terminal
    if done.returncode != 0:
        raise PublishError(f"`zos image push` failed (exit {done.returncode})")
    sys.stderr.write(done.stdout)
    return f"{distribution}:{version}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m box.vm_image",
        description="Build the box's VM image (cached in build/images) or publish it to the "
        "hub as a public image with the operator's CLI (once per build).",
    )
    parser.add_argument("action", choices=("build", "publish"))
    parser.add_argument("--distribution", default=DISTRIBUTION)
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    parser.add_argument("--cli-home", type=Path, help="the operator CLI's XDG_CONFIG_HOME")
    args = parser.parse_args(argv)
    try:
        if args.action == "build":
            build(args.distribution, args.build_dir)
        else:
            if args.cli_home is None:
                parser.error("publish needs --cli-home")
            publish(args.cli_home, args.distribution, args.build_dir)
    except (BuildError, PublishError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
