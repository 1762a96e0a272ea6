"""`python -m nodeagent.launcher run ...`: keeps the agent running, from the release it chose.

The launcher is the image's own (built-in) code and stays small: it starts
`python -m nodeagent <args>` from `<data>/agent/current` when there is one (else the built-in
agent), restarts it at once when it exits with EXIT_UPDATE, and after a short delay when it
crashes. A release on trial (just switched to by the updater) must report uptime within
`--deadline` seconds: if it exits or stays silent before that, the launcher puts `previous` back
by itself and marks the version failed, so the updater does not fetch it again.

Its own log lines also go to the node's log ring (source `launcher`), so an operator reads why
the agent restarted or rolled back on the node's admin page; the ring is in the Redis the agent
names in its state file, and lines logged while there is none wait (nodeagent.logring).
"""

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nodeagent
from nodeagent import logring
from nodeagent.config import DEFAULT_DATA_DIR, KERNEL_CMDLINE, STATE_FILE, parse_kernel_cmdline
from nodeagent.updater import EXIT_UPDATE, LAUNCHER_ENV, AgentHome

log = logging.getLogger("nodeagent.launcher")

BUILTIN_ROOT = Path(nodeagent.__file__).resolve().parents[1]
DEFAULT_DEADLINE = 180.0
RESTART_DELAY = 2.0
MAX_RESTART_DELAY = 60.0
STOP_GRACE = 30.0
POLL = 0.2


def data_dir_of(agent_args: list[str], cmdline_path: Path = KERNEL_CMDLINE) -> Path:
    """The agent's data directory: its --data flag, else zos.data= (of its --kernel-cmdline
    file, if given), else the default."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--data")
    parser.add_argument("--kernel-cmdline")
    known, _ = parser.parse_known_args(agent_args)
    if known.data:
        return Path(known.data)
    try:
        kernel = parse_kernel_cmdline(Path(known.kernel_cmdline or cmdline_path).read_text())
    except OSError:
        kernel = {}
    return Path(kernel.get("data") or DEFAULT_DATA_DIR)


def agent_redis_url(data_dir: Path) -> str | None:
    """The node's Redis as the agent last wrote it in its state file; None before it has."""
    try:
        return json.loads((data_dir / STATE_FILE).read_text()).get("redis") or None
    except (OSError, ValueError, AttributeError):
        return None


class Launcher:
    def __init__(
        self,
        home: AgentHome,
        agent_args: list[str],
        *,
        deadline: float = DEFAULT_DEADLINE,
        restart_delay: float = RESTART_DELAY,
        python: str = sys.executable,
        builtin_root: Path = BUILTIN_ROOT,
    ) -> None:
        self.home = home
        self.agent_args = agent_args
        self.deadline = deadline
        self.restart_delay = restart_delay
        self.python = python
        self.builtin_root = builtin_root
        self.stopping = threading.Event()
        self.crashes = 0

    def stop(self) -> None:
        self.stopping.set()

    def _command(self) -> tuple[list[str], dict[str, str], str]:
        release = self.home.current_dir()
        if release is not None and not (release / "nodeagent" / "__init__.py").is_file():
            log.error("release %s is incomplete; rolling back", release.name)
            self.home.rollback(f"release directory {release} is incomplete")
            release = None
        root = release or self.builtin_root
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
        env[LAUNCHER_ENV] = "1"
        # -P: the working directory must not shadow the chosen code.
        argv = [self.python, "-P", "-m", "nodeagent", *self.agent_args]
        return argv, env, release.name if release else "built-in"

    def run(self) -> int:
        """Run the agent until stopped; returns the agent's last exit code."""
        while True:
            code = self.run_once()
            if self.stopping.is_set():
                return code
            if code == EXIT_UPDATE:
                self.crashes = 0
                continue
            self.crashes += 1
            delay = min(MAX_RESTART_DELAY, self.restart_delay * 2 ** (self.crashes - 1))
            log.warning("agent exited with code %s; starting it again in %.0fs", code, delay)
            if self.stopping.wait(delay):
                return code

    def run_once(self) -> int:
        """Start the agent once and watch it; roll a failed trial back. Returns the exit code."""
        argv, env, which = self._command()
        trial = self.home.trial()
        on_trial = trial is not None and trial == self.home.current_version()
        log.info("starting agent %s%s", which, " (on trial)" if on_trial else "")
        process = subprocess.Popen(argv, env=env)
        started = time.monotonic()
        reason = ""
        while (code := process.poll()) is None:
            if on_trial and self.home.reported() == trial:
                on_trial = False
                self.home.settle()
                log.info("agent %s reported uptime: update confirmed", trial)
            if on_trial and time.monotonic() - started > self.deadline:
                reason = f"no uptime report within {self.deadline:.0f}s"
                code = self._terminate(process)
                break
            if self.stopping.wait(POLL):
                return self._terminate(process)
        if on_trial and self.home.reported() == trial:
            self.home.settle()
        elif on_trial:
            reason = reason or f"exited with code {code} before reporting uptime"
            self.home.rollback(reason)
            log.error("agent %s failed (%s): rolled back to %s", trial, reason, self._which())
            return EXIT_UPDATE  # start the previous agent at once
        return code

    def _which(self) -> str:
        return self.home.current_version() or "the built-in agent"

    def _terminate(self, process: subprocess.Popen) -> int:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nodeagent.launcher",
        description="Run the node agent (from its installed release), restart it after updates "
        "and crashes, and roll back a release that does not report in time. Arguments after the "
        "launcher's own go to `python -m nodeagent`, e.g. `run --ledger URL --farm 1`.",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=DEFAULT_DEADLINE,
        help=f"seconds a new release has to report uptime (default {DEFAULT_DEADLINE:.0f})",
    )
    parser.add_argument("--restart-delay", type=float, default=RESTART_DELAY)
    parser.add_argument("agent_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    data_dir = data_dir_of(args.agent_args[1:])
    ring = logring.DeferredRingHandler(lambda: agent_redis_url(data_dir), source="launcher")
    logging.getLogger().addHandler(ring)
    home = AgentHome.for_data_dir(data_dir)
    launcher = Launcher(
        home, args.agent_args, deadline=args.deadline, restart_delay=args.restart_delay
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: launcher.stop())
    try:
        return launcher.run()
    finally:
        logging.getLogger().removeHandler(ring)
        ring.close()


if __name__ == "__main__":
    sys.exit(main())
