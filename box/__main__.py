"""`python -m box --port P --var-dir DIR --farm ID --enroll TOKEN [--pool-gb N]`: run the grid
in a box, its local node on a btrfs pool in DIR and in a network namespace of its own
(box/node_host.py).
`python -m box --production --port P --var-dir DIR [--workers N] [--coordinators M]`: the
production profile (box/production.py)."""

import argparse
import signal
import sys
from pathlib import Path

from box import node_vm, production
from box.grid import ASGI_SERVERS, ROOT, GridSettings, ProductionSettings, components
from box.node_host import MIN_POOL_GB, NodeHost, default_pool_gb
from box.supervisor import Supervisor


def say(text: str) -> None:
    sys.stderr.write(f"==> {text}\n")
    sys.stderr.flush()


def run_grid(settings: GridSettings, pool_gb: int) -> int:
    """Make the node's pool and namespace, run the box until stopped, then take them apart:
    what the node left running (VMs, databases), the namespace, the mount, the loop device."""
    host = NodeHost(settings.var_dir, pool_gb, say=say)
    # The pool's write-out starts as the stop does, beside the components' grace to stop.
    supervisor = Supervisor([], cwd=ROOT, on_shutdown=host.start_flush)
    # A stop asked for while the pool is being made is kept, and the box then starts nothing.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: supervisor.stop())
    try:
        host.prepare()
        for note in host.notes:
            say(note)
        settings.node_args = host.agent_args()
        supervisor.components = components(settings)
        return supervisor.run()
    finally:
        host.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m box",
        description="Start the control plane, the ledger monitor, the coordinator worker and a "
        "local node agent; restart any that dies; stop them all on SIGTERM or Ctrl-C. "
        "scripts/up prepares the database and runs this.",
    )
    parser.add_argument("--port", type=int, default=8000, help="control plane port")
    parser.add_argument("--var-dir", type=Path, required=True, help="state directory (logs/)")
    parser.add_argument("--farm", type=int, help="the local node's farm")
    parser.add_argument("--enroll", help="the farm's enrollment token")
    parser.add_argument(
        "--pool-gb",
        type=int,
        help="size of the local node's btrfs pool, a sparse file in the var directory (default: "
        "20, or half the free space if that is less); a larger size grows an existing pool",
    )
    parser.add_argument(
        "--production",
        action="store_true",
        help="PostgreSQL, Redis, several ASGI workers behind HAProxy on --port, several "
        "coordinator workers; prepares the database itself (no --farm/--enroll)",
    )
    parser.add_argument("--workers", type=int, default=2, help="ASGI workers (--production)")
    parser.add_argument(
        "--coordinators", type=int, default=2, help="coordinator workers (--production)"
    )
    parser.add_argument(
        "--asgi-server",
        choices=ASGI_SERVERS,
        default="uvicorn",
        help="the ASGI workers' server (--production); uvicorn costs about half of daphne's "
        "CPU per request (docs/performance.md)",
    )
    parser.add_argument(
        "--node-image",
        type=Path,
        help="boot the local node from this node image build under QEMU (box/node_vm.py) "
        "instead of running the agent on the host",
    )
    args = parser.parse_args(argv)
    if args.production and args.node_image:
        parser.error("--node-image works with the default profile only")
    if args.production:
        if args.workers < 1 or args.coordinators < 1:
            parser.error("--workers and --coordinators must be at least 1")
        return production.run(
            ProductionSettings(
                args.port,
                args.var_dir.resolve(),
                asgi_workers=args.workers,
                coordinator_workers=args.coordinators,
                asgi_server=args.asgi_server,
            )
        )
    if args.farm is None or args.enroll is None:
        parser.error("--farm and --enroll are required (or use --production)")
    if args.pool_gb is not None and args.pool_gb < MIN_POOL_GB:
        parser.error(f"--pool-gb must be at least {MIN_POOL_GB}")
    var_dir = args.var_dir.resolve()
    settings = GridSettings(args.port, var_dir, args.farm, args.enroll)
    if args.node_image:
        parts = [c for c in components(settings) if c.name != "node"]
        return Supervisor([*parts, node_vm.component(settings, args.node_image)], cwd=ROOT).run()
    return run_grid(settings, args.pool_gb or default_pool_gb(var_dir))


if __name__ == "__main__":
    sys.exit(main())
