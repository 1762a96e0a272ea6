"""Figures as data: what every bench hands the runner (`python -m bench`) besides its printout.

A bench called with `--json PATH` writes one object there: its name, the parameters it ran with,
and a list of figures, each with its value, unit and — where issue 19 or the bench's own issue
sets one — the target and whether it was met. The runner merges these into one JSON and one
Markdown report, so a figure is always read next to its target.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    target: str = ""  # as the issue states it, e.g. "< 50" or ">= 1000"; empty: no target
    note: str = ""

    @property
    def met(self) -> bool | None:
        """Whether `value` meets `target` (None without a target or a value)."""
        if not self.target or self.value is None:
            return None
        op, _, bound = self.target.partition(" ")
        limit = float(bound.replace(",", ""))
        return {
            "<": self.value < limit,
            "<=": self.value <= limit,
            ">": self.value > limit,
            ">=": self.value >= limit,
        }[op]

    def as_dict(self) -> dict:
        return {**asdict(self), "met": self.met}


@dataclass
class Report:
    bench: str
    params: dict = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: float | None, unit: str, target: str = "", note: str = ""):
        figure = Figure(name, None if value is None else round(value, 3), unit, target, note)
        self.figures.append(figure)
        return figure

    def as_dict(self) -> dict:
        return {
            "bench": self.bench,
            "params": self.params,
            "figures": [f.as_dict() for f in self.figures],
            "notes": self.notes,
        }

    def write(self, path: str | Path | None) -> None:
        """Write the report as JSON to `path` (nothing when None: the bench ran by hand)."""
        if path:
            Path(path).write_text(json.dumps(self.as_dict(), indent=2) + "\n")

    def print(self) -> None:
        for f in self.figures:
            verdict = {True: "met", False: "NOT met", None: ""}[f.met]
            target = f"  target {f.target} {f.unit} {verdict}" if f.target else ""
            print(f"  {f.name:<48} {f.value!s:>10} {f.unit}{target}")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    """Every live descendant of `pid` (PostgreSQL's backends, a launcher's agent, runners)."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parents.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU (user + system) of a process, its live descendants and the children it reaped."""
    clock = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for index, each in enumerate([pid, *_children(pid)]):
        try:
            fields = _stat(each)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
        if index == 0:
            total += int(fields[13]) + int(fields[14])
    return total / clock


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its live descendants, MiB."""
    total = 0
    for each in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024
