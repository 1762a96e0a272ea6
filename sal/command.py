"""Running the external tools every SAL drives (ip, btrfs, qemu-img, redis-server, ...).

ARCHITECTURE §6: every call has a timeout, checks the exit status, and fails with one error type
that says what was run and what it printed, so a script author or operator reading the job log
can see the real cause instead of a Python traceback.
"""

import json
import resource
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 30.0
_OUTPUT_LIMIT = 2000


class SalError(Exception):
    """A SAL operation failed; the message is meant for the person who asked for it."""


class CommandFailed(SalError):
    """An external tool exited non-zero, timed out, or could not be started."""

    def __init__(self, argv: Sequence[str], reason: str, output: str = "") -> None:
        self.argv = list(argv)
        self.reason = reason
        self.output = output.strip()[-_OUTPUT_LIMIT:]
        message = f"`{shlex.join(self.argv)}` {reason}"
        if self.output:
            message += f": {self.output}"
        super().__init__(message)


def _lift_memory_limit() -> None:
    """In the child, before exec: the soft address-space limit back up to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def child_setup() -> Callable[[], None] | None:
    """The `preexec_fn` for every tool and daemon a SAL starts.

    A runner lowers its own soft RLIMIT_AS so a runaway script fails with MemoryError; the VMs,
    databases and tools it starts must not inherit that budget (QEMU alone maps the guest's
    RAM). None, so no hook runs at fork, when this process has no lowered limit (the agent).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    return _lift_memory_limit if soft != hard else None


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion and return its output; raise CommandFailed when it fails."""
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
            preexec_fn=child_setup(),  # lifts a runner's memory limit (see child_setup)
        )
    except FileNotFoundError as exc:
        raise CommandFailed(argv, f"cannot run: {exc.strerror} (is {argv[0]} installed?)") from exc
    except subprocess.TimeoutExpired as exc:
        output = exc.stderr or exc.stdout or ""
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        raise CommandFailed(argv, f"timed out after {timeout:g}s", output) from exc
    if check and done.returncode != 0:
        raise CommandFailed(
            argv, f"exited with status {done.returncode}", done.stderr or done.stdout
        )
    return done


def run_json(argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Run a tool that prints JSON (`ip -json ...`) and return the parsed document."""
    out = run(argv, timeout=timeout).stdout
    try:
        return json.loads(out) if out.strip() else None
    except json.JSONDecodeError as exc:
        raise CommandFailed(argv, f"printed invalid JSON ({exc})", out) from exc


def process_alive(pid: int) -> bool:
    """The process exists and has not exited: a zombie or dying process counts as gone (the
    node's PID 1 may never reap the daemons SALs start)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def wait_gone(running: Callable[[], bool], timeout: float) -> bool:
    """Poll `running` until it is false (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while running():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
