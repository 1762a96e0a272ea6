"""What runs in the box, in start order: each component's command, log file and readiness check.

The control plane must answer before the node agent starts, so the agent's first registration
does not fail; the workers only need the database, which scripts/up has migrated. The node runs
under its own launcher (nodeagent.launcher), which restarts the agent after crashes and updates;
the box restarts the launcher.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from box.supervisor import Component

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class GridSettings:
    port: int
    var_dir: Path
    farm: int
    enroll_token: str
    python: str = sys.executable

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def control_plane_answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/api/v1/farms", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def components(settings: GridSettings) -> list[Component]:
    py, logs = settings.python, settings.var_dir / "log"
    manage = [py, str(ROOT / "manage.py")]
    return [
        Component(
            "control-plane",
            [
                py,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(settings.port),
                "grid.asgi:application",
            ],
            logs / "control-plane.log",
            ready=lambda: control_plane_answers(settings.url),
        ),
        Component("ledger-monitor", [*manage, "ledger_monitor"], logs / "ledger-monitor.log"),
        Component("coordinator", [*manage, "coordinator"], logs / "coordinator.log"),
        Component(
            "node",
            [
                py,
                "-m",
                "nodeagent.launcher",
                "run",
                "--ledger",
                settings.url,
                "--farm",
                str(settings.farm),
                "--enroll",
                settings.enroll_token,
                "--data",
                str(settings.var_dir / "node"),
            ],
            logs / "node.log",
        ),
    ]
