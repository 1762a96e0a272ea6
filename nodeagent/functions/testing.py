"""`test_mark(key)`: a side effect fault tests can count (contracts.catalog.TEST_FUNCTIONS).

Bound only on a node started with ZOS_TEST_FUNCTIONS=1. It appends `<job id> <key>` to
`<data dir>/test-marks`, once per job and key, the way every SAL function is idempotent by name:
jobs run at least once (a runner or agent killed mid-job runs the whole script again), so a
re-run finds its mark and appends `<job id> <key> again` instead, which a test reads as "the
script ran again, its effect did not happen twice". The file is the whole state -- flock'ed,
read, appended and fsync'ed before the call returns -- so neither a killed runner (the lock dies
with it) nor a killed redis-server (its AOF may lose the last second) can make a mark twice.
"""

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodeagent.functions.context import JobContext, SalFactory
from nodeagent.functions.table import script_error

MARKS_FILE = "test-marks"
MAX_KEY = 64


def read_marks(path: Path) -> list[tuple[str, str, bool]]:
    """(job id, key, is a repeat) per line of a marks file; none when it does not exist."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [(p[0], p[1], len(p) > 2) for line in lines if len(p := line.split()) >= 2]


def marker(path: Path) -> SalFactory:
    """The `test_mark` factory, writing to `path`."""

    def factory(ctx: JobContext) -> Callable[[Any], bool]:
        def test_mark(key: Any) -> bool:
            ctx.check()
            if not isinstance(key, str) or not key or len(key) > MAX_KEY or " " in key:
                raise script_error(
                    "test_mark", f"key must be 1-{MAX_KEY} characters without spaces: {key!r}"
                )
            with open(path, "a+") as marks:
                fcntl.flock(marks, fcntl.LOCK_EX)
                marks.seek(0)
                done = any(
                    line.split()[:2] == [ctx.job_id, key] for line in marks.read().splitlines()
                )
                marks.write(f"{ctx.job_id} {key}{' again' if done else ''}\n")
                marks.flush()
                os.fsync(marks.fileno())
            return not done

        return test_mark

    return factory
