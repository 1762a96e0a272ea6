"""Node networking: bridges, veth pairs, taps and network namespaces, through iproute2.

ARCHITECTURE §6: VM taps hang off bridges (the mycelium bridge, a workload's private bridge),
and namespaces isolate what runs on them. Every call goes through `ip` (JSON output where `ip`
reports something back) via sal.command, so each has a timeout and a failure names the command.
Every function takes `netns` to act inside a named namespace instead of the host's. Creating
what exists and deleting what is gone are no-ops, so a job retried after a crash converges;
failures raise SalError naming the device (and namespace).
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sal.command import CommandFailed, SalError, run, run_json

TIMEOUT = 15.0
NETNS_DIR = Path("/run/netns")
IFNAMSIZ = 15  # the kernel's limit on interface names, without the trailing NUL


@dataclass(frozen=True)
class Link:
    """One network interface as `ip -json -details link show` reports it.

    `kind` is the driver (`bridge`, `veth`, `tap`, `tun`, ...; None for a physical NIC or lo),
    `master` the bridge it is attached to, `up` whether it was administratively set up.
    """

    name: str
    index: int
    kind: str | None
    mac: str | None
    master: str | None
    up: bool
    operstate: str
    mtu: int


def _where(netns: str | None) -> str:
    return f" in namespace {netns!r}" if netns else ""


def validate_link_name(name: str) -> str:
    """Refuse names the kernel would reject or that would confuse `ip` argument parsing."""
    if not isinstance(name, str) or not name:
        raise SalError(f"interface name must be a non-empty string, got {name!r}")
    if len(name.encode()) > IFNAMSIZ:
        raise SalError(f"interface name {name!r} is longer than {IFNAMSIZ} bytes")
    if name in (".", "..") or any(c in name for c in "/: \t\n\0"):
        raise SalError(
            f"interface name {name!r} must not be '.', '..' or contain '/', ':' or space"
        )
    return name


def validate_netns_name(name: str) -> str:
    """Namespace names become files under /run/netns: no paths, no hidden names."""
    if not isinstance(name, str) or not name:
        raise SalError(f"namespace name must be a non-empty string, got {name!r}")
    if "/" in name or name.startswith(".") or any(c.isspace() or c == "\0" for c in name):
        raise SalError(f"namespace name {name!r} must not contain '/' or spaces or start with '.'")
    if len(name.encode()) > 255:
        raise SalError(f"namespace name {name!r} is longer than 255 bytes")
    return name


def _ip_argv(args: Sequence[str], netns: str | None) -> list[str]:
    if netns is None:
        return ["ip", *args]
    if not netns_exists(netns):
        raise SalError(f"no network namespace {netns!r}")
    return ["ip", "-n", netns, *args]


def _ip(args: Sequence[str], netns: str | None, doing: str) -> str:
    """Run `ip`; on failure raise SalError that says what we were doing, to which device."""
    argv = _ip_argv(args, netns)
    try:
        return run(argv, timeout=TIMEOUT).stdout
    except CommandFailed as exc:
        raise SalError(f"cannot {doing}{_where(netns)}: {exc}") from exc


# -- namespaces ---------------------------------------------------------------------------


def netns_exists(name: str) -> bool:
    """True when a named namespace exists (`ip netns` keeps them as files under /run/netns)."""
    return (NETNS_DIR / validate_netns_name(name)).exists()


def list_netns() -> list[str]:
    """Names of the named network namespaces."""
    found = run_json(["ip", "-json", "netns", "list"], timeout=TIMEOUT) or []
    return sorted(entry["name"] for entry in found)


def create_netns(name: str) -> None:
    """Create a namespace with its loopback up (a no-op when it exists)."""
    if not netns_exists(name):
        _ip(["netns", "add", name], None, f"create network namespace {name!r}")
    _ip(["link", "set", "dev", "lo", "up"], name, "set lo up")


def delete_netns(name: str) -> None:
    """Delete a namespace; its virtual links go with it. A no-op when it does not exist.

    Processes still running inside keep the namespace alive (unnamed) until they exit; stop
    them first (`ip netns pids NAME`).
    """
    if netns_exists(name):
        _ip(["netns", "delete", name], None, f"delete network namespace {name!r}")


def netns_exec(
    name: str, argv: Sequence[str], *, timeout: float = 30.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command inside a namespace (`ip netns exec`) and return its output."""
    if not netns_exists(name):
        raise SalError(
            f"cannot run {argv[0] if argv else 'a command'}: no network namespace {name!r}"
        )
    return run(["ip", "netns", "exec", name, *argv], timeout=timeout, check=check)


# -- links --------------------------------------------------------------------------------


def _link(entry: dict) -> Link:
    info = entry.get("linkinfo", {})
    kind = info.get("info_kind")
    if kind == "tun":
        kind = info.get("info_data", {}).get("type", kind)
    return Link(
        name=entry["ifname"],
        index=entry["ifindex"],
        kind=kind,
        mac=entry.get("address"),
        master=entry.get("master"),
        up="UP" in entry.get("flags", []),
        operstate=entry.get("operstate", "UNKNOWN"),
        mtu=entry.get("mtu", 0),
    )


def list_links(netns: str | None = None) -> list[Link]:
    """Every interface of the host (or of `netns`)."""
    argv = _ip_argv(["-json", "-details", "link", "show"], netns)
    return [_link(entry) for entry in run_json(argv, timeout=TIMEOUT) or []]


def get_link(name: str, netns: str | None = None) -> Link | None:
    """The interface called `name`, or None when there is none."""
    validate_link_name(name)
    return next((link for link in list_links(netns) if link.name == name), None)


def link_exists(name: str, netns: str | None = None) -> bool:
    return get_link(name, netns) is not None


def _require(name: str, netns: str | None) -> Link:
    link = get_link(name, netns)
    if link is None:
        raise SalError(f"no interface {name!r}{_where(netns)}")
    return link


def link_mac(name: str, netns: str | None = None) -> str:
    """The interface's MAC address (lower-case, colon-separated)."""
    mac = _require(name, netns).mac
    if not mac:
        raise SalError(f"interface {name!r}{_where(netns)} has no MAC address")
    return mac


def set_up(name: str, netns: str | None = None) -> None:
    _ip(["link", "set", "dev", validate_link_name(name), "up"], netns, f"set {name!r} up")


def set_down(name: str, netns: str | None = None) -> None:
    _ip(["link", "set", "dev", validate_link_name(name), "down"], netns, f"set {name!r} down")


def delete_link(name: str, netns: str | None = None) -> None:
    """Delete an interface (a veth takes its peer with it); a no-op when it does not exist."""
    if link_exists(name, netns):
        _ip(["link", "delete", "dev", name], netns, f"delete interface {name!r}")


def _existing(name: str, kind: str, netns: str | None) -> bool:
    """True when `name` exists as `kind`; refuse when the name is taken by something else."""
    link = get_link(name, netns)
    if link is None:
        return False
    if link.kind != kind:
        raise SalError(
            f"cannot create {kind} {name!r}{_where(netns)}: an interface of kind "
            f"{link.kind or 'physical'} already has that name"
        )
    return True


def create_bridge(name: str, netns: str | None = None) -> Link:
    """Create a bridge and set it up (a no-op when it exists)."""
    if not _existing(name, "bridge", netns):
        _ip(["link", "add", "name", name, "type", "bridge"], netns, f"create bridge {name!r}")
    set_up(name, netns)
    return _require(name, netns)


def create_veth(
    name: str, peer: str, *, netns: str | None = None, peer_netns: str | None = None
) -> None:
    """Create a veth pair; `peer` goes straight into `peer_netns` when given.

    A no-op when `name` already exists as a veth (its peer is assumed to be the one asked for).
    """
    validate_link_name(peer)
    if _existing(name, "veth", netns):
        return
    args = ["link", "add", "name", name, "type", "veth", "peer", "name", peer]
    if peer_netns is not None:
        if not netns_exists(peer_netns):
            raise SalError(f"cannot create veth {name!r}: no network namespace {peer_netns!r}")
        args += ["netns", peer_netns]
    _ip(args, netns, f"create veth pair {name!r}/{peer!r}")


def create_tap(name: str, *, owner: str | None = None, netns: str | None = None) -> Link:
    """Create a persistent tap (a no-op when it exists); `owner` may open it without root.

    The hypervisor opens the tap by name for a VM's NIC; the tap outlives the VM process.
    """
    if not _existing(name, "tap", netns):
        args = ["tuntap", "add", "dev", name, "mode", "tap"]
        if owner is not None:
            args += ["user", owner]
        _ip(args, netns, f"create tap {name!r}")
    return _require(name, netns)


def attach_to_bridge(name: str, bridge: str, netns: str | None = None) -> None:
    """Make `name` a port of `bridge` and set it up (idempotent)."""
    validate_link_name(name)
    if _require(bridge, netns).kind != "bridge":
        raise SalError(f"cannot attach {name!r} to {bridge!r}{_where(netns)}: not a bridge")
    _ip(
        ["link", "set", "dev", name, "master", bridge, "up"],
        netns,
        f"attach {name!r} to bridge {bridge!r}",
    )


def detach_from_bridge(name: str, netns: str | None = None) -> None:
    """Take `name` off whatever bridge it is on (idempotent)."""
    validate_link_name(name)
    _ip(["link", "set", "dev", name, "nomaster"], netns, f"detach {name!r} from its bridge")


def move_to_netns(name: str, target: str, netns: str | None = None) -> None:
    """Move an interface into namespace `target`; a no-op when it is already there."""
    validate_link_name(name)
    if not netns_exists(target):
        raise SalError(f"cannot move {name!r} into namespace {target!r}: no such namespace")
    if get_link(name, netns) is None and get_link(name, target) is not None:
        return
    _ip(
        ["link", "set", "dev", name, "netns", target],
        netns,
        f"move {name!r} into namespace {target!r}",
    )


# -- addresses ----------------------------------------------------------------------------


def add_address(name: str, cidr: str, netns: str | None = None) -> None:
    """Give an interface an IPv4 or IPv6 address such as `10.1.0.1/24` (idempotent)."""
    validate_link_name(name)
    try:
        address = ipaddress.ip_interface(cidr)
    except ValueError as exc:
        raise SalError(f"cannot add address to {name!r}: {exc}") from None
    if "/" not in cidr:
        raise SalError(f"cannot add address {cidr!r} to {name!r}: give a prefix length (/24, /64)")
    _ip(
        ["address", "replace", str(address), "dev", name],
        netns,
        f"add address {address} to {name!r}",
    )


def addresses(name: str, netns: str | None = None) -> list[str]:
    """The interface's addresses as `address/prefix` strings (IPv6 link-local included)."""
    argv = _ip_argv(["-json", "address", "show", "dev", validate_link_name(name)], netns)
    try:
        found = run_json(argv, timeout=TIMEOUT) or []
    except CommandFailed as exc:
        raise SalError(f"cannot read addresses of {name!r}{_where(netns)}: {exc}") from exc
    return [
        f"{info['local']}/{info['prefixlen']}"
        for entry in found
        for info in entry.get("addr_info", [])
        if "local" in info
    ]
