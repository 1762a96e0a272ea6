"""The owner's view of their workloads, and the scripts that act on one of them.

The coordinator only keeps a copy of what the nodes report (coordinator/inventory.py); it cannot
change a workload itself, because a node acts only on scripts its owner signed. So "delete" and
"show the console" are scripts: generated here, from the workload's kind and name, signed by the
owner (in the browser, with a key the server never sees) and deployed to the workload's node like
any other script. Generating them here, not in the page, keeps the quoting of the name in one
tested place; the owner still sees and signs the exact text.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, QuerySet

from coordinator.models import Workload

DELETE_FUNCTIONS = {
    "vm": "vm_delete",
    "volume": "volume_delete",
    "herodb": "herodb_delete",
    "gateway": "gateway_delete",
}
# Where each kind's address is in the node's report (nodeagent/functions): a VM's own Mycelium
# address, a database's host:port, a gateway name's public URL; a volume has none.
ADDRESS_FIELDS = {"vm": "mycelium_ip", "herodb": "address", "gateway": "url"}
# A volume's report names the VM holding it (nodeagent/functions/registry.py).
ATTACHED_FIELD = "attached_to"
# Not listed among the other details: the address and the holding VM are shown on their own, the
# console is too long.
HIDDEN_DETAILS = {"console", ATTACHED_FIELD, *ADDRESS_FIELDS.values()}
GIB = 2**30
MIB = 2**20
_SLUG = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class WorkloadScript:
    """A generated script and the deployment name it goes under."""

    name: str
    script: str


@dataclass(frozen=True)
class WorkloadRow:
    """A workload as the list shows it."""

    workload: Workload
    address: str
    reserved: str
    attached_to: str  # a volume's VM, "" when it is free or not a volume


@dataclass(frozen=True)
class WorkloadView(WorkloadRow):
    """A workload as its own page shows it, with the scripts its actions sign."""

    details: list[tuple[str, str]]
    delete: WorkloadScript
    console: WorkloadScript | None


def owned_workloads(owner: AbstractBaseUser) -> QuerySet[Workload]:
    """The owner's workloads across nodes, each with its node's farm (`farm_id`), in one query
    whatever their number."""
    return (
        Workload.objects.filter(owner=owner)
        .annotate(farm_id=F("node__farm_id"))
        .order_by("kind", "name")
    )


def workload_rows(owner: AbstractBaseUser) -> list[WorkloadRow]:
    """Every workload of the owner, ready to list (one query)."""
    return [
        WorkloadRow(w, overlay_address(w), describe_reserved(w.reserved), attached_vm(w))
        for w in owned_workloads(owner)
    ]


def view_of(workload: Workload) -> WorkloadView:
    """`workload` with what its page shows and the scripts its actions sign."""
    return WorkloadView(
        workload=workload,
        address=overlay_address(workload),
        reserved=describe_reserved(workload.reserved),
        attached_to=attached_vm(workload),
        details=other_details(workload),
        delete=delete_script(workload),
        console=console_script(workload) if workload.kind == "vm" else None,
    )


def overlay_address(workload: Workload) -> str:
    """The address the workload is reached at over the overlay, or "" (volumes, not ready yet)."""
    field = ADDRESS_FIELDS.get(workload.kind)
    value = workload.details.get(field, "") if field else ""
    return value if isinstance(value, str) else ""


def attached_vm(workload: Workload) -> str:
    """The VM a volume is attached to, or "" (free, or not a volume)."""
    value = workload.details.get(ATTACHED_FIELD, "") if workload.kind == "volume" else ""
    return value if isinstance(value, str) else ""


def describe_reserved(reserved: dict[str, Any]) -> str:
    """The capacity a workload holds, in the units people use (cores, MiB/GiB)."""
    parts = []
    if cru := _whole(reserved.get("cru")):
        parts.append(f"{cru} core{'s' if cru != 1 else ''}")
    if mru := _whole(reserved.get("mru")):
        parts.append(f"{mru // GIB} GiB memory" if mru % GIB == 0 else f"{mru // MIB} MiB memory")
    for key, label in (("sru", "SSD"), ("hru", "HDD")):
        if size := _whole(reserved.get(key)):
            parts.append(f"{size / GIB:g} GiB {label}")
    return " · ".join(parts) or "nothing"


def other_details(workload: Workload) -> list[tuple[str, str]]:
    """The rest of what the node reported (sizes, image, ...), as (field, text) pairs."""
    return [
        (key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        for key, value in sorted(workload.details.items())
        if key not in HIDDEN_DETAILS
    ]


def delete_script(workload: Workload) -> WorkloadScript:
    """The script that deletes `workload` on its node (and frees the capacity it holds)."""
    function = DELETE_FUNCTIONS[workload.kind]
    quoted = rhai_string(workload.name)
    script = (
        f"// Made by the dashboard: delete {workload.kind} {quoted} on node {workload.node_id}.\n"
        f"{function}({quoted});\n"
        f"log({rhai_string(f'deleted {workload.kind} {workload.name}')});\n"
    )
    return WorkloadScript(name=_deployment_name("delete", workload), script=script)


def console_script(workload: Workload) -> WorkloadScript:
    """The script whose result is the VM's state and the tail of its serial console."""
    if workload.kind != "vm":
        raise ValueError(f"only a VM has a console, not a {workload.kind}")
    quoted = rhai_string(workload.name)
    script = (
        f"// Made by the dashboard: the console of VM {quoted}; the result carries it.\n"
        f"vm_info({quoted})\n"
    )
    return WorkloadScript(name=_deployment_name("console", workload), script=script)


def rhai_string(text: str) -> str:
    """`text` as a Rhai string literal: quotes and backslashes escaped, anything not printable
    ASCII as a \\u escape, so no name can end the literal or start code of its own."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif " " <= char <= "~":
            out.append(char)
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def _deployment_name(verb: str, workload: Workload) -> str:
    """A valid deployment name (serializers.NAME_PATTERN) that says what the deployment did."""
    slug = _SLUG.sub("-", workload.name.lower()).strip("-") or "workload"
    return f"{verb}-{workload.kind}-{slug}"[:63].rstrip("-")


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0
