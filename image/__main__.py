"""`python -m image build | stamp | push | release | vm-image | oci-import`: build the boot image,
stamp it for a farm, upload it to the ledger, publish this checkout's agent as a signed release,
build a workload VM image, or import a container image."""

import argparse
import sys
import time
from pathlib import Path

from bootimage.tools import BuildError
from client.errors import CliError
from image.progress import say

DEFAULT_OUT = Path("build")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m image", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build zos.efi, usb.img, vmlinuz, initrd, boot.ipxe")
    build.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (build)")
    build.add_argument(
        "--cache", type=Path, help="cache directory for packages and the base layer (OUT/cache)"
    )
    build.add_argument(
        "--no-cache", action="store_true", help="rebuild the root filesystem even if unchanged"
    )
    build.add_argument(
        "--zstd-level",
        type=int,
        default=None,
        help="initrd compression level (default 9; 19 is ~12%% smaller and 20x slower)",
    )

    stamp = commands.add_parser("stamp", help="a built image with a farm's command line baked in")
    stamp.add_argument("--farm", type=int, required=True, help="farm id")
    stamp.add_argument("--ledger", required=True, help="ledger URL as the node reaches it")
    stamp.add_argument("--enroll", help="farm enrollment token: nodes are approved at once")
    stamp.add_argument("--out", type=Path, required=True, help="directory for the farm's files")
    stamp.add_argument("--image", type=Path, default=DEFAULT_OUT, help="the build to stamp (build)")

    push = commands.add_parser("push", help="upload a build to the ledger as a boot image")
    push.add_argument("--image", type=Path, default=DEFAULT_OUT, help="the build to push (build)")
    push.add_argument("--version", help="store it under this version (default: the manifest's)")
    push.add_argument(
        "--no-current", action="store_true", help="keep the ledger's current image current"
    )
    _ledger_options(push)

    vm_image = commands.add_parser(
        "vm-image", help="build a bootable workload VM image (kernel, initrd, disk.raw, image.json)"
    )
    vm_image.add_argument("distribution", help="what to build: debian-12")
    vm_image.add_argument(
        "--out", type=Path, help="the image directory to write (build/images/DISTRIBUTION)"
    )
    vm_image.add_argument(
        "--cache", type=Path, help="cache directory for packages (build/cache, shared with build)"
    )
    vm_image.add_argument(
        "--no-cache", action="store_true", help="rebuild even if the output is current"
    )

    oci = commands.add_parser(
        "oci-import",
        help="import an OCI image layout or `docker save` tarball as a container image",
    )
    oci.add_argument("archive", type=Path, help="OCI layout directory, OCI archive or docker save")
    oci.add_argument("--out", type=Path, required=True, help="the image directory to write")
    oci.add_argument("--ref", help="which image, when the archive holds several (a tag or name)")

    release = commands.add_parser(
        "release", help="publish this checkout's agent as a signed release"
    )
    release.add_argument("--version", required=True, help="the release's version")
    release.add_argument(
        "--farm",
        action="append",
        default=[],
        help="farm id (or 'all') whose nodes move to this release; repeatable",
    )
    release.add_argument(
        "--source",
        type=Path,
        help="tree holding nodeagent/, contracts/, signing/, rhai/, sal/ (this checkout)",
    )
    _ledger_options(release)
    return parser


def _ledger_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ledger", help="ledger URL (default: ZOS_LEDGER, else the zos CLI's URL: ZOS_URL, login)"
    )
    parser.add_argument(
        "--token",
        help="a staff account's API token (default: ZOS_TOKEN, else `zos login`'s; a flag is "
        "visible to other users of this machine)",
    )


def _build(args: argparse.Namespace) -> int:
    from image.build import BuildOptions, build
    from image.initramfs import DEFAULT_LEVEL

    level = DEFAULT_LEVEL if args.zstd_level is None else args.zstd_level
    if not 1 <= level <= 22:
        raise BuildError(f"--zstd-level must be between 1 and 22, got {level}")
    build(
        BuildOptions(
            out=args.out,
            cache=args.cache or args.out / "cache",
            use_cache=not args.no_cache,
            level=level,
        )
    )
    return 0


def _stamp(args: argparse.Namespace) -> int:
    from bootimage.ipxe import ipxe_script
    from bootimage.stamp import stamp_uki
    from bootimage.usb import make_usb
    from contracts.boot_image import farm_cmdline
    from image.manifest import read_manifest

    started = time.monotonic()
    try:
        base = read_manifest(args.image)["cmdline"]
    except (OSError, ValueError, KeyError) as exc:
        raise BuildError(
            f"no usable build in {args.image} ({exc}): run `python -m image build` first"
        ) from None
    cmdline = farm_cmdline(base, args.ledger, args.farm, args.enroll)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp_uki(args.image / "zos.efi", args.out / "zos.efi", cmdline)
    make_usb(args.out / "zos.efi", args.out / "usb.img")
    (args.out / "boot.ipxe").write_text(ipxe_script(args.ledger, args.farm, cmdline))
    say(
        f"farm {args.farm}: {args.out}/zos.efi, usb.img, boot.ipxe in "
        f"{time.monotonic() - started:.1f}s; command line: {cmdline}"
    )
    return 0


def _push(args: argparse.Namespace) -> int:
    from image.push import PushOptions, push

    push(
        PushOptions(
            image=args.image,
            ledger=args.ledger,
            token=args.token,
            version=args.version,
            make_current=not args.no_current,
        )
    )
    return 0


def _vm_image(args: argparse.Namespace) -> int:
    from image.vm_image import VmImageOptions, build_vm_image

    build_vm_image(
        VmImageOptions(
            distribution=args.distribution,
            out=args.out or DEFAULT_OUT / "images" / args.distribution,
            cache=args.cache or DEFAULT_OUT / "cache",
            use_cache=not args.no_cache,
        )
    )
    return 0


def _oci_import(args: argparse.Namespace) -> int:
    from image.oci import OciImportOptions, import_oci

    import_oci(OciImportOptions(archive=args.archive, out=args.out, reference=args.ref))
    return 0


def _release(args: argparse.Namespace) -> int:
    from image.release import REPO, ReleaseOptions, parse_farms, release

    release(
        ReleaseOptions(
            version=args.version,
            ledger=args.ledger,
            token=args.token,
            source=args.source or REPO,
            farms=parse_farms(args.farm),
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {
        "build": _build,
        "stamp": _stamp,
        "push": _push,
        "release": _release,
        "vm-image": _vm_image,
        "oci-import": _oci_import,
    }
    try:
        return commands[args.command](args)
    except CliError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except (BuildError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
