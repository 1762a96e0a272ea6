"""Health flags the node reports with every uptime (ARCHITECTURE §2 step 6).

The node keeps reporting while unhealthy: the flags are how the ledger learns why it is degraded.
"""

import tempfile
from collections.abc import Iterable
from pathlib import Path

from nodeagent.facts import Capacity


def _writable(path: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            return True
    except OSError:
        return False


def health_flags(*, data_dir: Path, capacity: Capacity, extra: Iterable[str] = ()) -> list[str]:
    """The flags for one report; `extra` comes from the agent's services (e.g. `redis_down`)."""
    flags = list(extra)
    if capacity.sru + capacity.hru == 0:
        flags.append("no_disk")
    if not data_dir.is_dir() or not _writable(data_dir):
        flags.append("cache_readonly")
    return sorted(set(flags))


def seconds_since_boot() -> int:
    try:
        return int(float(Path("/proc/uptime").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return 0
