"""Stand-ins for contracts.scripts.check_script that the compile pool's workers import by name.

Each imitates one way a pathological script behaves under a compiler: slow, greedy for memory;
`whoami` reports the worker's pid so a test can see the compile ran in another process.
"""

import os
import time


def slow(source: str) -> list[str]:
    time.sleep(float(source or "3"))
    return ["log"]


def greedy(source: str) -> list[str]:
    hog = bytearray(int(source) * 2**20)
    return [str(len(hog))]


def whoami(source: str) -> list[str]:
    return [str(os.getpid())]


def spin(source: str) -> list[str]:
    """Burn CPU like the pathological compile did (pure Python, holding the GIL)."""
    end = time.process_time() + float(source)
    while time.process_time() < end:
        pass
    return ["log"]
