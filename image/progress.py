"""Progress of a build on stderr: one line per step with how long it took.

A cold build takes about a minute on two cores; an operator watching it should see which step is
running and, when one fails, which one it was.
"""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def say(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Report `name` when it starts and its duration when it ends (or that it failed)."""
    say(f"{name} ...")
    started = time.monotonic()
    try:
        yield
    except BaseException:
        say(f"{name}: FAILED after {time.monotonic() - started:.1f}s")
        raise
    say(f"{name}: done in {time.monotonic() - started:.1f}s")
