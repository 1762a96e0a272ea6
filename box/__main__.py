"""`python -m box --port P --var-dir DIR --farm ID --enroll TOKEN`: run the grid in a box.
`python -m box --production --port P --var-dir DIR [--workers N] [--coordinators M]`: the
production profile (box/production.py)."""

import argparse
import sys
from pathlib import Path

from box import node_vm, production
from box.grid import ROOT, GridSettings, ProductionSettings, components
from box.supervisor import Supervisor


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
            )
        )
    if args.farm is None or args.enroll is None:
        parser.error("--farm and --enroll are required (or use --production)")
    settings = GridSettings(args.port, args.var_dir, args.farm, args.enroll)
    parts = components(settings)
    if args.node_image:
        parts = [c for c in parts if c.name != "node"] + [
            node_vm.component(settings, args.node_image)
        ]
    return Supervisor(parts, cwd=ROOT).run()


if __name__ == "__main__":
    sys.exit(main())
