"""`python -m nodeagent`: the node agent's command line."""

import argparse
import gc
import json
import logging
import shlex
import signal
import sys
import threading
from pathlib import Path

from nodeagent import __version__
from nodeagent.config import (
    DEFAULT_RUNNER_MEMORY_MB,
    DEFAULT_RUNNERS,
    KERNEL_CMDLINE,
    RUNNER_MEMORY_ENV,
    STATE_FILE,
    ConfigError,
    build_config,
)
from nodeagent.identity import IdentityError, load_or_create_identity

log = logging.getLogger("nodeagent")

EXIT_CONFIG = 2
EXIT_REDIS = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nodeagent",
        description="ZOS node agent. Flags not given are read from the kernel command line "
        "(zos.ledger=, zos.farm=, zos.enroll=, zos.data=, zos.redis=, zos.runners=, "
        "zos.runner_memory=, "
        "zos.mycelium=, zos.mycelium_peers=, zos.netns=, zos.hypervisor=, zos.image_cache_gb=).",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="register with the ledger and keep reporting uptime")
    run.add_argument("--ledger", help="ledger base URL, e.g. http://127.0.0.1:8000")
    run.add_argument("--farm", type=int, help="farm id this node belongs to")
    run.add_argument("--enroll", help="farm enrollment token: the node is approved at once")
    run.add_argument("--data", help="data directory (default /var/cache/zos)")
    run.add_argument(
        "--mirror", action="append", default=[], help="directory mirroring the identity seed"
    )
    run.add_argument(
        "--storage",
        action="append",
        default=[],
        help="mounted storage pool counted as node capacity (default: the data directory)",
    )
    run.add_argument("--facts", help="JSON file overriding facts read from the machine")
    run.add_argument(
        "--kernel-cmdline",
        metavar="FILE",
        help=f"read the zos.* settings from FILE instead of {KERNEL_CMDLINE}: run a machine "
        "as the boot media it did not boot from would (the command line of a farm's zos.efi: "
        "objcopy -O binary --only-section=.cmdline zos.efi FILE)",
    )
    run.add_argument(
        "--redis-url",
        help="use this Redis (redis://host:port/db or unix:///path) instead of starting "
        "redis-server in the data directory",
    )
    run.add_argument(
        "--runners", type=int, help=f"runner processes executing jobs (default {DEFAULT_RUNNERS})"
    )
    run.add_argument(
        "--runner-memory",
        type=int,
        metavar="MIB",
        help="address-space limit of each runner process, so a runaway script fails instead of "
        f"exhausting the node; 0 = none (default ${RUNNER_MEMORY_ENV} or "
        f"{DEFAULT_RUNNER_MEMORY_MB})",
    )
    run.add_argument(
        "--mycelium",
        help="mycelium binary for the workload overlay, 'off', or 'local' (no daemon: VMs get "
        "addresses on a private /64 reachable only inside the node) (default: `mycelium` if "
        "installed)",
    )
    run.add_argument(
        "--mycelium-peer", action="append", help="peer endpoint, e.g. tcp://192.0.2.6:9651"
    )
    run.add_argument("--mycelium-api", help="mycelium API address (default 127.0.0.1:8989)")
    run.add_argument(
        "--workload-netns",
        help="network namespace for VM taps, the overlay bridge and VM processes (default: "
        "the host's)",
    )
    run.add_argument(
        "--hypervisor", choices=("qemu", "cloud-hypervisor"), help="VM driver (default qemu)"
    )
    run.add_argument(
        "--gateway-http-port", type=int, help="a gateway's plain HTTP port (default 80)"
    )
    run.add_argument("--gateway-https-port", type=int, help="a gateway's HTTPS port (default 443)")
    run.add_argument(
        "--gateway-acme-email",
        help="a gateway gets its certificates by ACME with this account email (production); "
        "default: from Caddy's internal CA",
    )
    run.add_argument("--gateway-acme-ca", help="the ACME directory URL (default: Let's Encrypt's)")
    run.add_argument(
        "--image-cache-gb",
        type=int,
        metavar="GIB",
        help="space workload images fetched from the hub may take before the least recently "
        "used unused ones are evicted (default: a quarter of the pool)",
    )

    status = commands.add_parser("status", help="show this node's identity and last known state")
    status.add_argument("--data", default="/var/cache/zos", help="data directory")

    images = commands.add_parser("images", help="list, install or remove the node's VM images")
    images.add_argument("--storage", required=True, help="the node's btrfs workload pool")
    actions = images.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the installed images, one per line")
    install = actions.add_parser(
        "install", help="install (or replace) an image: a kernel for VMs, a rootfs for containers"
    )
    install.add_argument("name", help="the name scripts use (vm_create's image)")
    install.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="an image directory as `python -m image vm-image` or `oci-import` writes it "
        "(instead of the part options below)",
    )
    install.add_argument("--kernel", type=Path, help="kernel booted directly (vmlinux/bzImage)")
    install.add_argument("--initrd", type=Path, help="initramfs")
    install.add_argument("--disk", type=Path, help="raw disk template VM disks are reflinked from")
    install.add_argument("--cmdline", default="", help="kernel command line extras")
    install.add_argument("--min-disk-gb", type=int, default=0, help="smallest disk_gb allowed")
    install.add_argument("--rootfs", type=Path, help="container root filesystem tarball")
    install.add_argument(
        "--entrypoint", help="containers' default entrypoint, a shell-quoted command line"
    )
    remove = actions.add_parser("remove", help="remove an image (VMs made from it keep running)")
    remove.add_argument("name")
    return parser


def _run(args: argparse.Namespace) -> int:
    from nodeagent.agent import read_node_facts, run_node
    from nodeagent.redis_server import RedisStartError

    try:
        cmdline = Path(args.kernel_cmdline) if args.kernel_cmdline else KERNEL_CMDLINE
        if args.kernel_cmdline and not cmdline.is_file():
            raise ConfigError(f"--kernel-cmdline {cmdline}: there is no such file")
        config = build_config(args, cmdline)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        identity = load_or_create_identity(config.data_dir, config.mirrors)
        read_node_facts(config)  # a bad --facts file stops the agent here, not in its loop
    except (ConfigError, IdentityError, ValueError) as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.set())
    # What is loaded by now lives as long as the agent (and the runners it forks): frozen, the
    # garbage collector stops walking it again in full collections that paused a job's
    # dispatch up to 100 ms (docs/performance.md).
    gc.freeze()
    try:
        run_node(config, identity, stop)
    except RedisStartError as exc:
        log.error("cannot start the node's Redis: %s", exc)
        return EXIT_REDIS
    return 0


def _jobs_summary(url: str) -> dict | str:
    import redis

    from nodeagent.jobstore import JobStore

    client = redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0
    )
    try:
        return JobStore(client).summary()
    except redis.RedisError as exc:
        return f"redis at {url} unreachable: {exc}"
    finally:
        client.close()


def _status(args: argparse.Namespace) -> int:
    path = Path(args.data) / STATE_FILE
    if not path.exists():
        print(f"no agent state in {args.data}: has `python -m nodeagent run` started here?")
        return 1
    state = json.loads(path.read_text())
    if state.get("redis"):
        state["jobs"] = _jobs_summary(state["redis"])
    print(json.dumps(state, indent=2))
    return 0


def _images(args: argparse.Namespace) -> int:
    from nodeagent.functions.resources import node_resources
    from sal.command import SalError

    storage = Path(args.storage)
    try:
        resources = node_resources(storage, (storage,), "127.0.0.1")
        if resources.vms is None:
            print(
                f"{storage} is not a btrfs pool, or qemu-system-x86_64 is not installed",
                file=sys.stderr,
            )
            return 1
        cache = resources.vms.images
        if args.action == "list":
            for image in cache.list():
                kind = "container" if image.is_container else "vm"
                print(f"{image.name}\t{kind}\tmin_disk_gb={image.min_disk_gb}\t{image.path}")
        elif args.action == "install" and args.source is not None:
            parts = (args.kernel, args.initrd, args.disk, args.rootfs, args.entrypoint)
            if any(part is not None for part in parts):
                print("--from takes the whole image directory: no part options", file=sys.stderr)
                return 1
            image = cache.install_directory(args.name, args.source)
            print(f"installed {image.name} in {image.path}")
        elif args.action == "install":
            for path in (args.kernel, args.initrd, args.disk, args.rootfs):
                if path is not None and not path.is_file():
                    print(f"{path}: no such file", file=sys.stderr)
                    return 1
            image = cache.install(
                args.name,
                kernel=args.kernel,
                initrd=args.initrd,
                disk=args.disk,
                cmdline=args.cmdline,
                min_disk_gb=args.min_disk_gb,
                rootfs=args.rootfs,
                entrypoint=tuple(shlex.split(args.entrypoint or "")),
            )
            print(f"installed {image.name} in {image.path}")
        else:
            cache.get(args.name)
            cache.remove(args.name)
            print(f"removed {args.name}")
    except SalError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return {"run": _run, "status": _status, "images": _images}[args.command](args)
