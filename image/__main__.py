"""`python -m image build | stamp`: build the boot image, or stamp a built one for a farm."""

import argparse
import sys
import time
from pathlib import Path

from image.progress import BuildError, say

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
    return parser


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
    from image.manifest import read_manifest
    from image.stamp import farm_cmdline, ipxe_script, make_usb, stamp_uki

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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"build": _build, "stamp": _stamp}[args.command](args)
    except (BuildError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
