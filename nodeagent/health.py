"""Health flags the node reports with every uptime (ARCHITECTURE §2 step 6).

The node keeps reporting while unhealthy: the flags are how the ledger learns why it is degraded.
"""

import tempfile
from pathlib import Path

from nodeagent.facts import Capacity


def _writable(path: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            return True
    except OSError:
        return False


def health_flags(*, data_dir: Path, capacity: Capacity) -> list[str]:
    flags = []
    if capacity.sru + capacity.hru == 0:
        flags.append("no_disk")
    if not data_dir.is_dir() or not _writable(data_dir):
        flags.append("cache_readonly")
    return sorted(flags)


def seconds_since_boot() -> int:
    try:
        return int(float(Path("/proc/uptime").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return 0
