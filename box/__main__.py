"""`python -m box --port P --var-dir DIR --farm ID --enroll TOKEN`: run the grid in a box."""

import argparse
import sys
from pathlib import Path

from box.grid import ROOT, GridSettings, components
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
    parser.add_argument("--farm", type=int, required=True, help="the local node's farm")
    parser.add_argument("--enroll", required=True, help="the farm's enrollment token")
    args = parser.parse_args(argv)
    settings = GridSettings(args.port, args.var_dir, args.farm, args.enroll)
    return Supervisor(components(settings), cwd=ROOT).run()


if __name__ == "__main__":
    sys.exit(main())
