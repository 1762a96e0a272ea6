"""The NoCloud seed disk that tells a guest who it is: hostname, SSH keys and network config.

cloud-init (and our test guest) look for a vfat or iso9660 filesystem labelled CIDATA holding
`meta-data`, `user-data` and `network-config`. The image is made without mounting anything
(mkfs.vfat on a plain file, then mcopy), so it needs no loop device, works in any mount
namespace and leaves nothing behind when it fails.
"""

import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sal.command import run
from sal.hypervisor.vm import HypervisorError

SEED_SIZE_KB = 1024
_HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_SERIAL_RE = re.compile(r"^[A-Za-z0-9_-]{1,20}$")
_MOUNT_RE = re.compile(r"^(/[A-Za-z0-9._-]+)+$")
_CIDR_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$|^[0-9a-f:]+/\d{1,3}$")


@dataclass(frozen=True)
class NicConfig:
    """Network config for the NIC with this MAC. No addresses and dhcp4=False: link up only."""

    mac: str
    addresses: tuple[str, ...] = ()
    gateway4: str | None = None
    gateway6: str | None = None
    dhcp4: bool = False
    nameservers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeedConfig:
    instance_id: str
    hostname: str
    ssh_keys: tuple[str, ...] = ()
    nics: tuple[NicConfig, ...] = ()
    runcmd: tuple[str, ...] = ()  # shell lines run once at first boot (cloud-config runcmd)
    # (virtio serial, mount path) per volume disk: cloud-config `mounts`, which cloud-init
    # applies as it is and the ZOS images' init reads (image/files/vm/rc)
    mounts: tuple[tuple[str, str], ...] = ()
    extra_files: dict[str, str] = field(default_factory=dict)


def _yaml_str(value: str) -> str:
    """A YAML scalar for any string: JSON strings are valid YAML double-quoted scalars."""
    return json.dumps(value)


def render(seed: SeedConfig) -> dict[str, str]:
    """The seed's files as text, checked first so a bad value fails here, not in the guest."""
    if not _HOSTNAME_RE.match(seed.hostname):
        raise HypervisorError(
            f"cidata: hostname {seed.hostname!r} is not a valid host name "
            "(lowercase letters, digits and '-', at most 63 characters)"
        )
    if not seed.instance_id or any(c.isspace() for c in seed.instance_id):
        raise HypervisorError(f"cidata: instance id {seed.instance_id!r} must be one word")
    for key in seed.ssh_keys:
        if "\n" in key or not key.strip():
            raise HypervisorError("cidata: an SSH key must be one non-empty line")
    meta = f"instance-id: {seed.instance_id}\nlocal-hostname: {seed.hostname}\n"
    user = ["#cloud-config", f"hostname: {seed.hostname}"]
    if seed.ssh_keys:
        user.append("ssh_authorized_keys:")
        user += [f"  - {_yaml_str(k.strip())}" for k in seed.ssh_keys]
    if seed.runcmd:
        user.append("runcmd:")
        for cmd in seed.runcmd:
            if "\n" in cmd:
                raise HypervisorError("cidata: a runcmd entry must be one line")
            user.append("  - '" + cmd.replace("'", "''") + "'")
    if seed.mounts:
        user.append("mounts:")
        for serial, path in seed.mounts:
            if not _SERIAL_RE.match(serial) or not _MOUNT_RE.match(path) or "/../" in path + "/":
                raise HypervisorError(f"cidata: cannot mount disk {serial!r} at {path!r}")
            device = f"/dev/disk/by-id/virtio-{serial}"
            entry = [device, path, "ext4", "defaults,noatime,nofail", "0", "2"]
            user.append(f"  - {json.dumps(entry)}")
    files = {"meta-data": meta, "user-data": "\n".join(user) + "\n"}
    if seed.nics:
        files["network-config"] = _network_config(seed.nics)
    for name, text in seed.extra_files.items():
        if name in files or not re.match(r"^[A-Za-z0-9._-]+$", name):
            raise HypervisorError(f"cidata: cannot add a file named {name!r}")
        files[name] = text
    return files


def _network_config(nics: Sequence[NicConfig]) -> str:
    lines = ["version: 2", "ethernets:"]
    for i, nic in enumerate(nics):
        mac = nic.mac.lower()
        if not _MAC_RE.match(mac):
            raise HypervisorError(f"cidata: {nic.mac!r} is not a MAC address")
        lines += [f"  eth{i}:", "    match:", f"      macaddress: {_yaml_str(mac)}"]
        lines.append(f"    set-name: eth{i}")
        lines.append(f"    dhcp4: {'true' if nic.dhcp4 else 'false'}")
        if nic.addresses:
            lines.append("    addresses:")
            for addr in nic.addresses:
                if not _CIDR_RE.match(addr):
                    raise HypervisorError(f"cidata: address {addr!r} is not in CIDR form")
                lines.append(f"      - {addr}")
        if nic.gateway4:
            lines.append(f"    gateway4: {nic.gateway4}")
        if nic.gateway6:
            lines.append(f"    gateway6: {nic.gateway6}")
        if nic.nameservers:
            lines.append("    nameservers:")
            lines.append("      addresses: [" + ", ".join(nic.nameservers) + "]")
    return "\n".join(lines) + "\n"


def write_seed(seed: SeedConfig, dst: Path) -> Path:
    """Write the seed as a vfat image labelled CIDATA at `dst` (replaced if it exists)."""
    files = render(seed)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp_img = dst.with_name(dst.name + ".tmp")
    tmp_img.unlink(missing_ok=True)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    try:
        run(["mkfs.vfat", "-n", "CIDATA", "-C", str(tmp_img), str(SEED_SIZE_KB)])
        with tempfile.TemporaryDirectory(prefix="cidata-") as tmp:
            srcs = []
            for name, text in files.items():
                path = Path(tmp) / name
                path.write_text(text)
                srcs.append(str(path))
            run(["mcopy", "-o", "-i", str(tmp_img), *srcs, "::/"], env=env)
        tmp_img.replace(dst)
    finally:
        tmp_img.unlink(missing_ok=True)
    return dst


def read_seed(image: Path) -> dict[str, str]:
    """The files in a seed image, read back with mtools (for checks and debugging)."""
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    names = run(["mdir", "-b", "-i", str(image), "::/"], env=env).stdout.split()
    out = {}
    for entry in names:
        name = entry.removeprefix("::/")
        out[name] = run(["mtype", "-i", str(image), f"::/{name}"], env=env).stdout
    return out
