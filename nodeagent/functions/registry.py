"""The node's record of its workloads: who owns what, and the capacity each one holds.

Every VM, volume and database a script creates is recorded here, in the node's Redis, before the
SAL creates it: the record reserves its capacity (so two jobs on different runners can never
both take the last free gigabyte), scopes its name to its owner (one owner's `web` is not
another's), and survives agent restarts so the node can re-adopt or restart what it runs.
Used capacity in the uptime report and the inventory sent to the coordinator are read from it.
"""

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from contracts import catalog

CAPACITY_KEYS = ("cru", "mru", "sru", "hru")
KINDS = ("vm", "volume", "herodb")
DELETING = "\0deleting"  # a volume's holder while volume_delete removes it
NAME_PATTERN = re.compile(catalog.NAME_PATTERN)


class WorkloadError(Exception):
    """A request about a workload that cannot be honoured; the message is for the script author."""


class NoCapacity(WorkloadError):
    """The node has not enough free capacity for the reservation."""


@dataclass
class Workload:
    owner: int
    kind: str
    name: str
    spec: dict
    reserved: dict[str, int]
    state: str = "creating"  # creating → ready (or failed); deleting while it goes away
    details: dict = field(default_factory=dict)  # what the SAL reported: addresses, ports, ...
    created: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return workload_key(self.owner, self.kind, self.name)

    @property
    def local_id(self) -> str:
        """The node-wide unique id SALs use (VM ids, subvolume and database names)."""
        return f"u{self.owner}-{self.name}"

    def public(self) -> dict:
        """What the owner may see, in scripts and in the inventory."""
        return {
            "kind": self.kind,
            "name": self.name,
            "state": self.state,
            "reserved": dict(self.reserved),
            **self.details,
        }


def workload_key(owner: int, kind: str, name: str) -> str:
    return f"{owner}/{kind}/{name}"


def check_name(kind: str, name: Any) -> str:
    """Names become ids in file paths, process names and interface names: keep them tame."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise WorkloadError(
            f"{kind} name {name!r} is not valid: use 1-32 lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-'"
        )
    return name


def _need(reserved: Mapping[str, int]) -> dict[str, int]:
    return {key: int(reserved.get(key, 0)) for key in CAPACITY_KEYS}


class WorkloadRegistry:
    """Workload records in one Redis hash; reservations are atomic across runner processes."""

    def __init__(self, client: redis.Redis, prefix: str = "zos:") -> None:
        self.redis = client
        self.hash = f"{prefix}workloads"
        self.node_key = f"{prefix}node"
        self.changed_channel = f"{prefix}workloads:changed"
        # volume key → name of the VM it is attached to, or DELETING while volume_delete runs
        self.holders = f"{prefix}volume-holders"

    def capacity(self) -> dict[str, int]:
        raw = self.redis.get(self.node_key)
        if raw is None:
            raise WorkloadError("the node has not published its capacity yet; try again shortly")
        capacity = json.loads(raw)["capacity"]
        return {key: int(capacity.get(key, 0)) for key in CAPACITY_KEYS}

    def reserve(self, workload: Workload) -> tuple[Workload, bool]:
        """Record `workload` and hold its capacity; return (record, created).

        The same owner, kind, name and spec again returns the existing record (created=False),
        so re-running a script is harmless; a different spec under that name is an error.
        """
        capacity = self.capacity()
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.hash)
                    existing = pipe.hget(self.hash, workload.key)
                    if existing is not None:
                        pipe.unwatch()
                        return self._same_or_conflict(_load(existing), workload), False
                    used = self._sum(pipe.hvals(self.hash))
                    need = _need(workload.reserved)
                    short = {
                        k: (need[k], capacity[k] - used[k])
                        for k in CAPACITY_KEYS
                        if need[k] and used[k] + need[k] > capacity[k]
                    }
                    if short:
                        pipe.unwatch()
                        raise NoCapacity(_shortage_message(workload, short))
                    pipe.multi()
                    pipe.hset(self.hash, workload.key, _dump(workload))
                    pipe.execute()
                    self._changed()
                    return workload, True
                except redis.WatchError:
                    continue

    def _same_or_conflict(self, existing: Workload, wanted: Workload) -> Workload:
        if existing.spec != wanted.spec:
            raise WorkloadError(
                f"{wanted.kind} {wanted.name!r} already exists with a different spec; "
                f"delete it first or choose another name"
            )
        return existing

    def save(self, workload: Workload) -> None:
        self.redis.hset(self.hash, workload.key, _dump(workload))
        self._changed()

    def get(self, owner: int, kind: str, name: str) -> Workload | None:
        raw = self.redis.hget(self.hash, workload_key(owner, kind, name))
        return None if raw is None else _load(raw)

    def require(self, owner: int, kind: str, name: str) -> Workload:
        """The owner's workload, or an error that never hints at other owners' names."""
        workload = self.get(owner, kind, check_name(kind, name))
        if workload is None:
            raise WorkloadError(f"you have no {kind} named {name!r} on this node")
        return workload

    def release(self, workload: Workload) -> None:
        """Forget the record and give its capacity back (after the SAL deleted the workload)."""
        self.redis.hdel(self.hash, workload.key)
        self._changed()

    def all(self, owner: int | None = None, kind: str | None = None) -> list[Workload]:
        records = [_load(raw) for raw in self.redis.hvals(self.hash)]
        return sorted(
            (
                w
                for w in records
                if (owner is None or w.owner == owner) and (kind is None or w.kind == kind)
            ),
            key=lambda w: (w.owner, w.kind, w.name),
        )

    # --- volume attachments ---------------------------------------------------------------
    # A volume is one disk with one file system: two machines mounting it would corrupt it. So
    # it is held by one VM from that VM's create to its delete, claimed atomically (HSETNX), so
    # two jobs on different runners cannot both attach it, nor delete it while it is attached.

    def claim_volume(self, volume: Workload, holder: str) -> str:
        """Hold `volume` for VM `holder` (or DELETING); returns whoever holds it now, which
        is `holder` when the claim succeeded or it already held the volume."""
        if self.redis.hsetnx(self.holders, volume.key, holder):
            return holder
        return self.volume_holder(volume) or holder

    def volume_holder(self, volume: Workload) -> str | None:
        raw = self.redis.hget(self.holders, volume.key)
        return None if raw is None else _text(raw)

    def unclaim_volumes(self, owner: int, names: Iterable[str], holder: str) -> None:
        """Let go of the owner's volumes `names` that `holder` holds (others' claims stay)."""
        for name in names:
            self.redis.eval(_UNCLAIM, 1, self.holders, workload_key(owner, "volume", name), holder)

    def used(self) -> dict[str, int]:
        return self._sum(self.redis.hvals(self.hash))

    def inventory(self) -> list[dict]:
        """Every workload with its owner, for the coordinator; a held volume names its VM, so
        its owner sees why it cannot be deleted or attached elsewhere."""
        holders = {
            _text(key): _text(holder)
            for key, holder in self.redis.hgetall(self.holders).items()
            if _text(holder) != DELETING
        }
        inventory = []
        for workload in self.all():
            entry = {"owner": workload.owner, **workload.public()}
            if workload.kind == "volume" and workload.key in holders:
                entry["attached_to"] = holders[workload.key]
            inventory.append(entry)
        return inventory

    def _sum(self, raws: list[bytes]) -> dict[str, int]:
        used = dict.fromkeys(CAPACITY_KEYS, 0)
        for raw in raws:
            for key, value in _need(json.loads(raw)["reserved"]).items():
                used[key] += value
        return used

    def _changed(self) -> None:
        self.redis.publish(self.changed_channel, "1")


# Compare-and-delete: drop a holder entry only if it is still the caller's.
_UNCLAIM = """
if redis.call('hget', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('hdel', KEYS[1], ARGV[1])
end
return 0
"""


def _text(value: bytes | str) -> str:
    """A Redis reply as text, whether or not the client decodes replies itself."""
    return value.decode() if isinstance(value, bytes) else value


def _shortage_message(workload: Workload, short: dict[str, tuple[int, int]]) -> str:
    units = {"cru": ("CPU cores", 1), "mru": ("MiB memory", 2**20), "sru": ("GiB SSD", 2**30)}
    units["hru"] = ("GiB HDD", 2**30)
    parts = []
    for key, (need, free) in short.items():
        unit, size = units[key]
        parts.append(f"{need // size} {unit} requested, {max(free, 0) // size} {unit} free")
    return f"not enough free capacity on this node for {workload.kind} {workload.name!r}: " + (
        "; ".join(parts)
    )


def _dump(workload: Workload) -> str:
    return json.dumps(asdict(workload), sort_keys=True)


def _load(raw: bytes | str) -> Workload:
    return Workload(**json.loads(raw))
