"""The production profile (box/production.py, `scripts/up --production`) as a bench fixture.

The same code the user runs starts PostgreSQL, the control-plane Redis, the ASGI workers behind
HAProxy, the coordinator workers and the ledger monitor, in a temporary directory; the profile's
own local node is left out so a bench decides how many nodes, with how many runners, it wants
(`nodes=0` for the ingest bench). It has `deploy_bench.Box`'s interface (url, headers, submit,
node_ids), so the deployment benches run unchanged on either.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

from bench.deploy_bench import Box
from bench.report import tree_cpu_seconds, tree_rss_mib
from box import production
from box.grid import ProductionSettings, free_port

# Components whose CPU and memory count as "the control plane".
CONTROL_PLANE = ("asgi-", "haproxy", "coordinator-", "postgres", "redis", "ledger-monitor")


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.extend(line for line in text.splitlines() if line)

    def flush(self) -> None:
        pass


class ProductionBox(Box):
    """`Box` on the production profile: `workers` ASGI workers, `coordinators` workers."""

    def __init__(
        self,
        workdir: Path,
        nodes: int,
        runners: int,
        *,
        workers: int = 2,
        coordinators: int = 2,
        asgi_server: str = "uvicorn",
        extra_env: dict[str, str] | None = None,
        agent_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(workdir, nodes, runners, agent_args)
        workdir.chmod(0o755)  # PostgreSQL runs as `postgres` and must reach its directory
        self.settings = ProductionSettings(
            free_port(),
            workdir / "var",
            asgi_workers=workers,
            coordinator_workers=coordinators,
            asgi_server=asgi_server,
            extra_env={"ZOS_LOG_LEVEL": "WARNING", **(extra_env or {})},
        )
        self.port = self.settings.port
        self.url = self.settings.url
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            **self.settings.env,
        }
        self.out = _Lines()
        self.result: list[int] = []

    def _start(self) -> ProductionBox:
        print(f"starting the production profile in {self.workdir}", file=sys.stderr)
        supervisor, then = production.supervisor(self.settings)
        supervisor.out = self.out
        self.supervisor = supervisor

        def workers_without_local_node():
            return [c for c in then() if c.name != "node"]

        self.thread = threading.Thread(
            target=lambda: self.result.append(supervisor.serve(workers_without_local_node)),
            daemon=True,
        )
        self.thread.start()
        self._wait(
            lambda: self.result or any("all components are up" in x for x in self.out.lines),
            "the production profile",
            timeout=180,
        )
        if self.result:
            raise SystemExit("the production profile failed:\n" + "\n".join(self.out.lines))
        boot = json.loads((self.settings.var_dir / "bootstrap.json").read_text())
        self.farm = boot["farm"]
        self.token = self.manage("drf_create_token", boot["username"]).split()[2]
        if self.nodes:
            self._start_nodes(boot["farm"])
        self._register_key()
        return self

    def _start_nodes(self, farm: int) -> None:
        enroll = self.manage("create_enrollment_token", str(farm), "--uses", str(self.nodes))
        enroll = enroll.split()[-1]
        for i in range(self.nodes):
            self.spawn(
                f"node{i}",
                sys.executable,
                "-m",
                "nodeagent",
                "run",
                "--ledger",
                self.url,
                "--farm",
                str(farm),
                "--enroll",
                enroll,
                "--data",
                str(self.node_dir(i)),
                "--runners",
                str(self.runners),
                *self.agent_args,
            )
        self.node_ids = self._wait(self._online_nodes, f"{self.nodes} nodes online", timeout=90)

    def pids(self, *prefixes: str) -> dict[str, int]:
        """The running components whose name starts with one of `prefixes`, by name."""
        return {
            entry.component.name: entry.process.pid
            for entry in self.supervisor.running
            if entry.process is not None and entry.component.name.startswith(prefixes)
        }

    def control_plane_cpu(self) -> dict[str, float]:
        """CPU seconds so far of each control-plane component (PostgreSQL with its backends)."""
        return {name: tree_cpu_seconds(pid) for name, pid in self.pids(*CONTROL_PLANE).items()}

    def control_plane_rss(self) -> dict[str, float]:
        return {name: tree_rss_mib(pid) for name, pid in self.pids(*CONTROL_PLANE).items()}

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)  # the bench's own nodes first
        if hasattr(self, "supervisor"):
            self.supervisor.stop()
            self.thread.join(timeout=90)


def cpu_delta(before: dict[str, float], after: dict[str, float], seconds: float) -> dict:
    """Share of one core each component used between two `control_plane_cpu` readings."""
    return {name: (after[name] - before.get(name, 0.0)) / seconds for name in after}
