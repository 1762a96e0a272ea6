"""Keeps a fixed set of processes running: restart the one that died, stop all of them cleanly.

Each component runs in its own session (process group), so a Ctrl-C at the terminal reaches only
the supervisor, which then stops the components in reverse order: SIGTERM to the whole group,
SIGKILL to what is left after the grace period. Killing the group, not just the process, is what
leaves nothing behind (the node agent's launcher has the agent, redis-server and runners under
it). Children also get SIGTERM if the supervisor itself dies (PR_SET_PDEATHSIG).

A component that exits while the box is running is restarted after a delay that doubles from
RESTART_FIRST to RESTART_MAX, and goes back to RESTART_FIRST once it has run for STABLE_AFTER
seconds: a crash loop does not spin, a rare crash is repaired at once. The others are not touched.
A component can be held down for a while (`held`): it is not restarted until released, which is
how a maintenance window, or a test of a long outage, keeps a crashed service away on purpose.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

RESTART_FIRST = 1.0
RESTART_MAX = 30.0
STABLE_AFTER = 60.0
STOP_GRACE = 15.0  # the agent's launcher gives the agent time to put its running job down
POLL = 0.2
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the supervisor dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def describe_exit(code: int) -> str:
    """`signal 9` or `code 1`: how a person reads a Popen return code."""
    return f"signal {-code}" if code < 0 else f"code {code}"


@dataclass
class Component:
    """One process of the box: what to run, where its output goes, and how to tell it is up."""

    name: str
    argv: list[str]
    log: Path
    ready: Callable[[], bool] | None = None
    ready_timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)  # on top of the supervisor's environment
    stop_signal: signal.Signals = signal.SIGTERM  # PostgreSQL's clean fast shutdown is SIGINT


@dataclass
class Running:
    """A component's current process and its restart bookkeeping."""

    component: Component
    process: subprocess.Popen | None = None
    started: float = 0.0
    delay: float = RESTART_FIRST
    restart_at: float | None = None


@dataclass
class Supervisor:
    components: list[Component]
    cwd: Path
    out: TextIO = sys.stderr
    grace: float = STOP_GRACE
    stopping: threading.Event = field(default_factory=threading.Event)
    running: list[Running] = field(default_factory=list)
    holding: set[str] = field(default_factory=set)
    # Called as the stop begins, before the components get their signal: work that can run
    # while they stop (the box starts writing its node's pool out).
    on_shutdown: Callable[[], None] | None = None

    def say(self, text: str) -> None:
        self.out.write(f"==> {text}\n")
        self.out.flush()

    def _spawn(self, entry: Running) -> None:
        component = entry.component
        component.log.parent.mkdir(parents=True, exist_ok=True)
        with open(component.log, "ab") as log:
            entry.process = subprocess.Popen(
                component.argv,
                cwd=self.cwd,
                env={**os.environ, **component.env} if component.env else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # only prctl: safe between fork and exec
            )
        entry.started = time.monotonic()
        entry.restart_at = None

    def start(self, components: list[Component]) -> bool:
        """Start these components in order, each once the one before is ready; False if one was
        not (it is named, with its log), or a stop was asked for meanwhile."""
        for component in components:
            if self.stopping.is_set():
                return False
            entry = Running(component)
            self.running.append(entry)
            self._spawn(entry)
            self.say(f"started {component.name} (pid {entry.process.pid}, log {component.log})")
            if component.ready is None:
                continue
            deadline = time.monotonic() + component.ready_timeout
            while not component.ready():
                code = entry.process.poll()
                if code is not None or time.monotonic() > deadline:
                    why = f"exited ({describe_exit(code)})" if code is not None else "not ready"
                    self.say(f"{component.name} {why} at start; see {component.log}")
                    return False
                if self.stopping.wait(POLL):
                    return False
        return True

    def supervise(self) -> None:
        """Restart components that exit, until stop() is called."""
        while not self.stopping.wait(POLL):
            now = time.monotonic()
            for entry in self.running:
                if entry.restart_at is not None:
                    if now >= entry.restart_at and entry.component.name not in self.holding:
                        self._spawn(entry)
                        self.say(f"{entry.component.name} restarted (pid {entry.process.pid})")
                    continue
                code = entry.process.poll()
                if code is None:
                    continue
                self._kill_group(entry, signal.SIGKILL)  # whatever it left behind
                if now - entry.started >= STABLE_AFTER:
                    entry.delay = RESTART_FIRST
                self.say(
                    f"{entry.component.name} exited ({describe_exit(code)}); restarting in "
                    f"{entry.delay:g} s (log {entry.component.log})"
                )
                entry.restart_at = now + entry.delay
                entry.delay = min(RESTART_MAX, entry.delay * 2)

    def stop(self) -> None:
        self.stopping.set()

    @contextlib.contextmanager
    def held(self, name: str) -> Iterator[None]:
        """Within this block the named component is not restarted if it exits; once the block
        ends it is (at once if its restart delay has passed meanwhile)."""
        self.holding.add(name)
        self.say(f"holding {name}: it is not restarted while held")
        try:
            yield
        finally:
            self.holding.discard(name)
            self.say(f"released {name}")

    def shutdown(self) -> None:
        """Stop every component at once: SIGTERM to each (last started first), then one shared
        grace for all of them, SIGKILL to what is left. Says what it waited for and how long,
        so a slow stop names its cause."""
        began = time.monotonic()
        if self.on_shutdown is not None:
            self.on_shutdown()
        for entry in reversed(self.running):
            if entry.process is not None and entry.process.poll() is None:
                self.say(f"stopping {entry.component.name}")
            self._kill_group(entry, entry.component.stop_signal)
        deadline = began + self.grace
        waiting = [e for e in reversed(self.running) if e.process is not None]
        stopped_after: dict[str, float] = {}
        while waiting:
            for entry in [e for e in waiting if e.process.poll() is not None]:
                stopped_after[entry.component.name] = time.monotonic() - began
                waiting.remove(entry)
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(POLL / 4)
        for entry in waiting:
            self.say(f"{entry.component.name} did not stop in {self.grace:g} s; killing it")
        for entry in reversed(self.running):
            if entry.process is None:
                continue
            self._kill_group(entry, signal.SIGKILL)  # what a component left in its group
            entry.process.wait()
        if stopped_after or waiting:
            slowest = max(stopped_after, key=stopped_after.get, default=None)
            detail = f"; slowest {slowest}, {stopped_after[slowest]:.1f} s" if slowest else ""
            killed = f"; killed {', '.join(e.component.name for e in waiting)}" if waiting else ""
            self.say(f"components stopped in {time.monotonic() - began:.1f} s{detail}{killed}")

    @staticmethod
    def _kill_group(entry: Running, sig: signal.Signals) -> None:
        if entry.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(entry.process.pid, sig)

    def run(self, then: Callable[[], list[Component]] | None = None) -> int:
        """serve() until SIGTERM/SIGINT (from the main thread: it installs the handlers)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _signum, _frame: self.stop())
        return self.serve(then)

    def serve(self, then: Callable[[], list[Component]] | None = None) -> int:
        """Start, supervise until stop(), shut down; 0 after a clean stop, 1 if the box could not
        start. `then`, once the first components are ready, does what needs them and returns the
        components to start next (the production profile migrates its database between
        PostgreSQL and the workers that use it); what it raises stops the box."""
        try:
            started = self.start(self.components)
            if started and then is not None:
                more = then()
                self.components = [*self.components, *more]
                started = self.start(more)
            if started:
                self.say(
                    "all components are up; supervising them (a component that exits is restarted)"
                )
                self.supervise()
        finally:
            self.shutdown()
            self.say("stopped")
        return 0 if started else 1
