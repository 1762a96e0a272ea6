"""The SAL function catalog (ARCHITECTURE §5): the one table of what a script may call.

The coordinator checks submitted scripts against it; the node's supervisor checks again; runners
bind exactly these names. A function whose SAL a node does not have is still registered there,
and fails with a clear "not available on this node" when called.
"""

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogFunction:
    name: str
    params: tuple[str, ...]
    doc: str


_FUNCTIONS = [
    CatalogFunction("vm_create", ("spec",), "create (or confirm) a VM; returns its info map"),
    CatalogFunction("vm_start", ("name",), "start a stopped VM"),
    CatalogFunction("vm_stop", ("name",), "power a VM off, gracefully then by force"),
    CatalogFunction("vm_delete", ("name",), "delete a VM and its disks"),
    CatalogFunction("vm_info", ("name",), "a VM's state, addresses and console"),
    CatalogFunction("vm_list", (), "the signer's VMs on this node"),
    CatalogFunction("volume_create", ("name", "size_gb"), "a btrfs subvolume with a quota"),
    CatalogFunction("volume_delete", ("name",), "delete a volume"),
    CatalogFunction("volume_snapshot", ("name", "snap"), "snapshot a volume"),
    CatalogFunction("herodb_create", ("spec",), "a Redis-protocol database with password and size"),
    CatalogFunction("herodb_delete", ("name",), "delete a database and its data"),
    CatalogFunction("herodb_info", ("name",), "a database's address, state and usage"),
    CatalogFunction("node_info", (), "the node's capacity, used, free and health"),
    CatalogFunction("log", ("message",), "append a line to the job's log"),
    CatalogFunction("sleep", ("ms",), "pause the script"),
    CatalogFunction("now", (), "the node's time, unix seconds"),
]

CATALOG: dict[str, CatalogFunction] = {f.name: f for f in _FUNCTIONS}


def unknown_functions(called: Iterable[str]) -> list[str]:
    """Names a script calls that no node provides, sorted, for the error message."""
    return sorted(set(called) - CATALOG.keys())
