"""The per-VM state directory both hypervisor drivers keep, in one place.

A driver knows nothing about a VM that is not written under `<state_root>/<vm_id>/`, so that a
fresh driver (after an agent restart or a node reboot) finds every VM again. The qemu and the
cloud-hypervisor driver keep the same things there and must agree on how they are read:

- `spec.json`    the VmSpec the VM was created with, written atomically; the same spec again
                 means the existing VM, a different one is refused;
- a pid file     the VMM process (`qemu.pid`, `vmm.pid`; the driver names it);
- a socket       the VMM's control socket (`qmp.sock`, `api.sock`); a pid counts as this VM's
                 only while that process's command line names this socket, so a recycled pid
                 never passes for the VM;
- `console.log`  the guest's serial console.

Next to the VM directories, `<state_root>/.locks/<vm_id>` is the file each change to one VM
holds an exclusive `flock` on: several runners (threads or processes) share a node and must not
start one VM twice. One VM-id rule applies to both drivers; the id names a directory, so it can
never be `..` or contain a `/`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from collections.abc import Callable, Container, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sal.command import process_alive
from sal.hypervisor.vm import HypervisorError, NetAttachment, VmNotFound, VmSpec, VolumeDisk

VM_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SPEC_FILE = "spec.json"
CONSOLE_LOG = "console.log"
UNIX_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the NUL


def spec_to_json(spec: VmSpec) -> dict[str, Any]:
    """The spec as plain JSON (paths as strings), the form recorded in spec.json and compared
    when the same VM is created again."""
    data = asdict(spec)
    for key in ("kernel", "initrd", "cidata", "shared_dir"):
        if data[key] is not None:
            data[key] = str(data[key])
    data["disks"] = [str(d) for d in spec.disks]
    data["nics"] = [
        {"mac": n.mac, "tap": n.tap, "forwards": [list(f) for f in n.forwards]} for n in spec.nics
    ]
    # Recorded only when there are some, so a VM recorded before volumes existed compares equal.
    data.pop("volumes")
    if spec.volumes:
        data["volumes"] = [{"path": str(v.path), "serial": v.serial} for v in spec.volumes]
    return json.loads(json.dumps(data))


def spec_from_json(data: dict[str, Any]) -> VmSpec:
    """The VmSpec recorded by `spec_to_json`; optional keys may be missing (older state)."""

    def opt_path(v: str | None) -> Path | None:
        return Path(v) if v is not None else None

    return VmSpec(
        vm_id=data["vm_id"],
        cpus=int(data["cpus"]),
        memory_mb=int(data["memory_mb"]),
        kernel=Path(data["kernel"]),
        initrd=opt_path(data.get("initrd")),
        cmdline=data.get("cmdline", ""),
        disks=tuple(Path(d) for d in data.get("disks", ())),
        cidata=opt_path(data.get("cidata")),
        nics=tuple(
            NetAttachment(
                mac=n["mac"],
                tap=n.get("tap"),
                forwards=tuple((str(f[0]), int(f[1]), int(f[2])) for f in n.get("forwards", ())),
            )
            for n in data.get("nics", ())
        ),
        shared_dir=opt_path(data.get("shared_dir")),
        volumes=tuple(
            VolumeDisk(path=Path(v["path"]), serial=v["serial"]) for v in data.get("volumes", ())
        ),
        extra=dict(data.get("extra") or {}),
    )


class VmStateRoot:
    """`<state_root>` of one driver: finds, validates, records, locks and removes VM state.

    `pid_file` and `socket` are the names the driver's VMM uses inside each VM directory;
    `driver` prefixes every error message so the operator knows which driver spoke.
    """

    def __init__(self, root: Path, *, driver: str, pid_file: str, socket: str) -> None:
        self.root = Path(root)
        self.driver = driver
        self.pid_file = pid_file
        self.socket_name = socket

    # ---- finding a VM ------------------------------------------------------------------------

    def dir(self, vm_id: str) -> Path:
        """The VM's directory (which may not exist yet); the id is checked first."""
        if not isinstance(vm_id, str) or not VM_ID_PATTERN.fullmatch(vm_id):
            raise HypervisorError(
                f"{self.driver}: VM id {vm_id!r} is invalid (1-64 of A-Z a-z 0-9 _ . -, not "
                "starting with a symbol)"
            )
        return self.root / vm_id

    def existing(self, vm_id: str) -> Path:
        """The directory of a VM that has been created; VmNotFound otherwise."""
        vm_dir = self.dir(vm_id)
        if not (vm_dir / SPEC_FILE).is_file():
            raise VmNotFound(f"{self.driver}: no VM {vm_id!r} (no state in {vm_dir})")
        return vm_dir

    def vm_ids(self) -> list[str]:
        """Every VM with a recorded spec, sorted (what `list_vms` and `adopt` walk)."""
        if not self.root.is_dir():
            return []
        return [
            p.name
            for p in sorted(self.root.iterdir())
            if VM_ID_PATTERN.fullmatch(p.name) and (p / SPEC_FILE).is_file()
        ]

    # ---- the recorded spec -------------------------------------------------------------------

    def spec(self, vm_dir: Path) -> VmSpec:
        try:
            return spec_from_json(json.loads((vm_dir / SPEC_FILE).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HypervisorError(
                f"{self.driver}: VM {vm_dir.name}: {SPEC_FILE} is unreadable ({exc})"
            ) from exc

    def has_spec(self, vm_dir: Path, spec: VmSpec) -> bool:
        """True when the VM exists with exactly this spec, False when it does not exist yet;
        a VM that exists with another spec is an error naming the fields that differ."""
        if not (vm_dir / SPEC_FILE).is_file():
            return False
        wanted = spec_to_json(spec)
        recorded = json.loads((vm_dir / SPEC_FILE).read_text())
        if recorded != wanted:
            changed = sorted(k for k in wanted if wanted[k] != recorded.get(k))
            raise HypervisorError(
                f"{self.driver}: VM {spec.vm_id} already exists with a different spec "
                f"(differs in: {', '.join(changed)}); delete it first"
            )
        return True

    def record_spec(self, vm_dir: Path, spec: VmSpec) -> None:
        """Create the directory and write spec.json atomically (a crash never leaves half)."""
        vm_dir.mkdir(parents=True, exist_ok=True)
        tmp = vm_dir / f"{SPEC_FILE}.tmp"
        tmp.write_text(json.dumps(spec_to_json(spec), indent=2) + "\n")
        tmp.replace(vm_dir / SPEC_FILE)

    # ---- the VMM process ---------------------------------------------------------------------

    def socket(self, vm_dir: Path) -> Path:
        """The control socket's path, refused when it cannot be a unix socket address."""
        path = vm_dir / self.socket_name
        if len(str(path)) > UNIX_PATH_MAX:
            raise HypervisorError(
                f"{self.driver}: VM {vm_dir.name}: state path {vm_dir} is too long for a unix "
                f"socket (max {UNIX_PATH_MAX} bytes with /{self.socket_name}); use a shorter "
                "state_root"
            )
        return path

    def pid(
        self,
        vm_dir: Path,
        *,
        running: Callable[[int], bool] = process_alive,
        children: Container[int] = (),
    ) -> int | None:
        """The pid of this VM's live VMM, or None.

        `running` says whether a pid still runs (a driver that spawned the VMM reaps its own
        children there). A pid in `children` is a child this driver has not reaped, which the
        kernel cannot give to another process, so it is trusted even while exiting (its command
        line is empty then); any other pid must name this VM's socket in /proc/<pid>/cmdline.
        """
        try:
            pid = int((vm_dir / self.pid_file).read_text().strip())
        except (OSError, ValueError):
            return None
        if not running(pid):
            return None
        if pid in children:
            return pid
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if str(vm_dir / self.socket_name).encode() in cmdline else None

    # ---- console -----------------------------------------------------------------------------

    def console_tail(self, vm_dir: Path, tail_bytes: int) -> str:
        """The last `tail_bytes` of the serial console ("" before the first boot)."""
        try:
            with open(vm_dir / CONSOLE_LOG, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - tail_bytes))
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    # ---- locking and removal -----------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, vm_id: str) -> Iterator[Path]:
        """Hold the VM's exclusive lock; yields its directory.

        `remove` unlinks the lock file while holding it, so a waiter that then gets the lock on
        the unlinked file would run beside a newcomer locking a new file: after locking, the
        file must still be the one at the path, else lock again.
        """
        vm_dir = self.dir(vm_id)
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        path = locks / vm_id
        while True:
            with open(path, "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    current = os.stat(path).st_ino
                except FileNotFoundError:
                    current = None
                if current == os.fstat(f.fileno()).st_ino:
                    yield vm_dir
                    return

    def remove(self, vm_dir: Path, *, best_effort: bool = False) -> None:
        """Remove the VM's directory and lock file; the caller holds the lock. `best_effort`
        (cleaning up after a failed create) ignores errors, so the caller's own error is the one
        reported."""
        try:
            shutil.rmtree(vm_dir)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if best_effort:
                return
            raise HypervisorError(
                f"{self.driver}: VM {vm_dir.name}: cannot remove {vm_dir}: {exc}"
            ) from exc
        (self.root / ".locks" / vm_dir.name).unlink(missing_ok=True)
