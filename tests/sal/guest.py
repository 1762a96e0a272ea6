"""A small, real test guest: Debian's 6.1 kernel and a busybox initramfs, built once and cached.

The hypervisor tests and the end-to-end tests need a guest that boots fast under TCG, says when it
is ready, takes its hostname and network from a NoCloud seed the way a real cloud image would, and
powers off cleanly on the ACPI power button, so `stop()` can be told apart from a forced kill.
A stock cloud image boots far too slowly under TCG, so this builds one from the package archive:

- the kernel: the newest `linux-image-6.1.0-N-amd64` apt knows, as an uncompressed `vmlinux`
  (PVH entry, ~2x faster to boot under TCG than the bzImage), cut out of the bzImage at the xz
  magic;
- the initramfs: busybox-static, the modules a virtio guest needs (with `modules.dep`) and the
  `/init` below.

The guest prints these markers on the serial console (ttyS0):

- `ZOS-GUEST-READY <hostname>` once devices, hostname and network (IPv4 and IPv6 addresses and
  gateways from the seed's network-config) are set up;
- `ZOS-RUNCMD-BEGIN` / `ZOS-RUNCMD-END <status>` around each `runcmd` line of the user-data;
- `ZOS-GUEST-SHARED <tag>` when a 9p share was mounted at /mnt/<tag>;
- `ZOS-GUEST-VOLUME <path>` (or `ZOS-GUEST-VOLUME-FAILED <path>`) for each volume the seed's
  cloud-config `mounts` lists: the virtio disk with that serial, mounted (ext4) at the path, or
  at that path inside the container's root on a container machine;
- `ZOS-GUEST-POWEROFF` when the ACPI power button was pressed and the guest is powering off;
- `ZOS-CONTAINER-EXIT <status>` when a container machine's entrypoint ended (then it powers off).

Container machines: when the 9p share tagged `root` holds `.zos/entrypoint` (written by
`sal.images.write_container_config`), the init mounts proc/sys/dev into it and runs the
entrypoint chrooted there (busybox `nsenter -r -w`: a chroot that keeps a working directory), in
the directory `.zos/workdir` names, with `PATH`, `HOME`, `HOSTNAME` and then the env in `.zos/env`.
It stays PID 1 itself instead of `switch_root`-ing to the entrypoint, so it can report the exit
status, forward the power button as SIGTERM to the entrypoint and power the machine off cleanly.

Build inputs (kernel package version, busybox version, this file's init) key the cache, so a new
kernel in the archive or a changed init rebuilds once. The cache is under
/var/cache/zos-test/guest (override with ZOS_TEST_CACHE).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from image.kernel import extract_vmlinux
from sal.command import run
from sal.images import Image, ImageCache, ImageError

CACHE_ROOT = Path(os.environ.get("ZOS_TEST_CACHE", "/var/cache/zos-test")) / "guest"
READY_MARKER = "ZOS-GUEST-READY"
POWEROFF_MARKER = "ZOS-GUEST-POWEROFF"
KERNEL_PACKAGE_RE = re.compile(r"^linux-image-6\.1\.0-(\d+)-amd64$")

# Loaded in this order by /init; their dependencies come from modules.dep.
GUEST_MODULES = (
    "virtio_mmio",
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "evdev",
    "button",
    "fat",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_iso8859-1",
    "nls_utf8",
    "9pnet_virtio",
    "9p",
    "crc32c_generic",
    "ext4",
)

INIT = r"""#!/bin/sh
# ZOS test guest init: devices, NoCloud seed, network, readiness marker, ACPI power button.
export PATH=/bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
mkdir -p /dev/pts /run /tmp /var/run /var/log /root /cidata /etc/acpi/PWRF
for m in __MODULES__; do modprobe "$m" 2>/dev/null; done

cat > /etc/acpi/PWRF/00000080 <<'EOF'
#!/bin/sh
echo "ZOS-GUEST-POWEROFF" > /dev/console
if [ -f /run/entry.pid ]; then
  kill -TERM "$(cat /run/entry.pid)" 2>/dev/null
  for i in $(seq 50); do kill -0 "$(cat /run/entry.pid)" 2>/dev/null || break; sleep 0.1; done
fi
sync
umount -a -r 2>/dev/null
poweroff -f
EOF
chmod +x /etc/acpi/PWRF/00000080
acpid -l /var/log/acpid.log

name=zos-guest; ip=; gw=; dhcp=
for w in $(cat /proc/cmdline); do
  case "$w" in
    zos.hostname=*) name="${w#zos.hostname=}" ;;
    zos.ip=*) ip="${w#zos.ip=}" ;;
    zos.gw=*) gw="${w#zos.gw=}" ;;
    zos.dhcp=1) dhcp=1 ;;
  esac
done

unquote() { sed -e "s/^ *//; s/ *$//; s/^[\"']//; s/[\"']$//"; }
seed=$(findfs LABEL=CIDATA 2>/dev/null || findfs LABEL=cidata 2>/dev/null)
if [ -n "$seed" ] && mount -t vfat -o ro "$seed" /cidata; then
  v=$(sed -n 's/^local-hostname://p' /cidata/meta-data | unquote)
  [ -n "$v" ] && name="$v"
  if [ -f /cidata/network-config ]; then
    v=$(sed -n 's/^ *- *["'"'"']*\([0-9.]*\/[0-9]*\).*/\1/p' /cidata/network-config | head -n1)
    [ -n "$v" ] && ip="$v"
    v=$(sed -n 's/^ *gateway4://p; s/^ *via://p' /cidata/network-config | unquote | head -n1)
    [ -n "$v" ] && gw="$v"
    grep -q '^ *dhcp4: *true' /cidata/network-config && dhcp=1
    ip6=$(sed -n 's/^ *- *["'"'"']*\([0-9a-f]*:[0-9a-f:]*\/[0-9]*\).*/\1/p' \
      /cidata/network-config)
    gw6=$(sed -n 's/^ *gateway6://p' /cidata/network-config | unquote | head -n1)
  fi
  [ -f /cidata/user-data ] && sed -n '/^mounts:/,/^[^ ]/s/^ *- *\[//p' /cidata/user-data \
    | awk -F'"' '{ print $2, $4 }' > /tmp/mounts
  if grep -q '^ssh_authorized_keys:' /cidata/user-data 2>/dev/null; then
    mkdir -p /root/.ssh
    sed -n '/^ssh_authorized_keys:/,/^[^ ]/s/^ *- *//p' /cidata/user-data | unquote \
      > /root/.ssh/authorized_keys
  fi
fi
hostname "$name"

ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  if [ -n "$ip" ]; then
    ip addr add "$ip" dev eth0
    [ -n "$gw" ] && ip route add default via "$gw"
  elif [ -n "$dhcp" ]; then
    udhcpc -i eth0 -q -n -t 3 -T 1 -s /etc/udhcpc.script >/dev/null 2>&1
  fi
  echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad
  for a in $ip6; do ip -6 addr add "$a" dev eth0; done
  [ -n "$gw6" ] && ip -6 route add default via "$gw6" dev eth0
fi

for t in /sys/bus/virtio/drivers/9pnet_virtio/*/mount_tag; do
  [ -f "$t" ] || continue
  tag=$(tr -d '\000' < "$t")
  mkdir -p "/mnt/$tag"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 "$tag" "/mnt/$tag" \
    && echo "ZOS-GUEST-SHARED $tag"
done

r=/mnt/root
# Volumes (the seed's cloud-config mounts; each disk found by its virtio serial, formatted by
# the node): inside a container machine's root, else at their own path.
top=
[ -f "$r/.zos/entrypoint" ] && top="$r"
[ -s /tmp/mounts ] && while read -r id path; do
  serial=${id##*/virtio-} dev=
  for b in /sys/block/vd*; do
    [ "$(cat "$b/serial" 2>/dev/null)" = "$serial" ] && dev="/dev/${b##*/}"
  done
  mkdir -p "$top$path"
  if [ -n "$dev" ] && mount -t ext4 -o noatime "$dev" "$top$path"; then
    echo "ZOS-GUEST-VOLUME $path"
  else
    echo "ZOS-GUEST-VOLUME-FAILED $path"
  fi
done < /tmp/mounts

if [ -f "$r/.zos/entrypoint" ]; then
  # Container machine: the 9p share is the container's root; run its entrypoint chrooted
  # there as a child, so this init stays PID 1 to report its exit and handle the power button.
  mkdir -p "$r/proc" "$r/sys" "$r/dev" "$r/tmp"
  mount -t proc proc "$r/proc"
  mount -t sysfs sys "$r/sys"
  mount --bind /dev "$r/dev"
  echo "$name" > /proc/sys/kernel/hostname
  set -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    "HOSTNAME=$name"
  while IFS= read -r kv; do [ -n "$kv" ] && set -- "$@" "$kv"; done < "$r/.zos/env"
  wd=$(cat "$r/.zos/workdir" 2>/dev/null); wd="${wd:-/}"
  mkdir -p "$r$wd"
  set -- "$@" /bin/nsenter -F "-r$r" "-w$r$wd"
  while IFS= read -r a; do set -- "$@" "$a"; done < "$r/.zos/entrypoint"
  echo "ZOS-GUEST-READY $name"
  "$@" < /dev/null &
  echo $! > /run/entry.pid
  wait $!
  rc=$?
  echo "ZOS-CONTAINER-EXIT $rc"
  rm -f /run/entry.pid
  umount "$r/dev" "$r/sys" "$r/proc" 2>/dev/null
  [ -s /tmp/mounts ] && while read -r id path; do umount "$r$path"; done < /tmp/mounts
  sync
  umount "$r" 2>/dev/null
  poweroff -f
fi

echo "ZOS-GUEST-READY $name"

if [ -f /cidata/user-data ]; then
  sed -n '/^runcmd:/,/^[^ ]/s/^ *- *//p' /cidata/user-data \
    | sed -e "s/^'//; s/'$//; s/''/'/g" > /tmp/runcmd
  while IFS= read -r cmd; do
    echo "ZOS-RUNCMD-BEGIN $cmd"
    sh -c "$cmd" < /dev/null
    echo "ZOS-RUNCMD-END $?"
  done < /tmp/runcmd
fi

while true; do sleep 3600; done
"""

UDHCPC_SCRIPT = r"""#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    ;;
esac
"""


@dataclass(frozen=True)
class GuestArtifacts:
    kernel: Path  # uncompressed vmlinux, PVH entry
    initrd: Path  # uncompressed newc cpio


def newest_kernel_package() -> str:
    """The newest `linux-image-6.1.0-N-amd64` the package archive offers."""
    out = run(["apt-cache", "search", "--names-only", r"^linux-image-6\.1\.0-[0-9]+-amd64$"]).stdout
    names = [line.split(" ", 1)[0] for line in out.splitlines()]
    found = [(int(m.group(1)), n) for n in names if (m := KERNEL_PACKAGE_RE.match(n))]
    if not found:
        raise RuntimeError("apt knows no linux-image-6.1.0-*-amd64 package (run apt-get update)")
    return max(found)[1]


def _candidate_version(package: str) -> str:
    out = run(["apt-cache", "policy", package]).stdout
    m = re.search(r"Candidate:\s*(\S+)", out)
    if not m or m.group(1) == "(none)":
        raise RuntimeError(f"apt has no installable version of {package}")
    return m.group(1)


def _busybox_version() -> str:
    return run(["dpkg-query", "-W", "-f=${Version}", "busybox-static"]).stdout.strip()


def build_guest(cache_root: Path = CACHE_ROOT) -> GuestArtifacts:
    """Build the guest kernel and initramfs once; later calls (any process) reuse the cache."""
    package = newest_kernel_package()
    version = _candidate_version(package)
    key_src = "\n".join([package, version, _busybox_version(), INIT, UDHCPC_SCRIPT])
    key_src += "\n" + " ".join(GUEST_MODULES)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    out = cache_root / key
    artifacts = GuestArtifacts(kernel=out / "vmlinux", initrd=out / "initrd.cpio")
    if artifacts.kernel.exists() and artifacts.initrd.exists():
        return artifacts
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if artifacts.kernel.exists() and artifacts.initrd.exists():
            return artifacts
        with tempfile.TemporaryDirectory(dir=cache_root, prefix=".build-") as tmp:
            work = Path(tmp)
            _build_into(work, package)
            staged = work / "out"
            if out.exists():
                shutil.rmtree(out)
            staged.rename(out)
    return artifacts


def _build_into(work: Path, package: str) -> None:
    # apt-get download writes into the current directory; the `_apt` user cannot write the build
    # dir, hence the sandbox warning it prints as root (harmless).
    run(["sh", "-c", 'cd "$1" && apt-get download "$2"', "sh", str(work), package], timeout=300)
    debs = sorted(work.glob(f"{package}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download {package} produced no .deb")
    deb = debs[-1]
    tree = work / "tree"
    tree.mkdir()
    run(
        [
            "sh",
            "-c",
            'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" ./boot ./lib/modules',
            "sh",
            str(deb),
            str(tree),
        ],
        timeout=300,
    )
    (kver,) = [p.name for p in (tree / "lib/modules").iterdir()]
    run(["depmod", "-b", str(tree), kver], timeout=120)

    staged = work / "out"
    staged.mkdir()
    vmlinuz = (tree / "boot" / f"vmlinuz-{kver}").read_bytes()
    (staged / "vmlinux").write_bytes(extract_vmlinux(vmlinuz))

    root = work / "initramfs"
    _populate_initramfs(root, tree, kver)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    run(
        [
            "cpio",
            "-o",
            "-H",
            "newc",
            "-R",
            "0:0",
            "--quiet",
            "-D",
            str(root),
            "-O",
            str(staged / "initrd.cpio"),
        ],
        input="\n".join([".", *files]) + "\n",
        timeout=120,
    )
    (staged / "kernel-version").write_text(kver + "\n")


def _populate_initramfs(root: Path, tree: Path, kver: str) -> None:
    for d in ("bin", "dev", "proc", "sys", "etc", "tmp", "root", "mnt", f"lib/modules/{kver}"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    applets = run(["/bin/busybox", "--list"]).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    (root / "sbin").symlink_to("bin")
    (root / "init").write_text(INIT.replace("__MODULES__", " ".join(GUEST_MODULES)))
    (root / "init").chmod(0o755)
    (root / "etc/udhcpc.script").write_text(UDHCPC_SCRIPT)
    (root / "etc/udhcpc.script").chmod(0o755)
    (root / "etc/hostname").write_text("zos-guest\n")

    moddir = tree / "lib/modules" / kver
    deps = _modules_dep(moddir / "modules.dep")
    wanted: set[str] = set()
    for name in GUEST_MODULES:
        path = _module_path(deps, name)
        wanted.add(path)
        wanted.update(deps[path])
    dst_moddir = root / "lib/modules" / kver
    for rel in sorted(wanted):
        (dst_moddir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(moddir / rel, dst_moddir / rel)
    for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (moddir / meta).exists():
            shutil.copy2(moddir / meta, dst_moddir / meta)
    run(["depmod", "-b", str(root), kver], timeout=60)


def _modules_dep(path: Path) -> dict[str, list[str]]:
    deps = {}
    for line in path.read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    return deps


def _module_path(deps: dict[str, list[str]], name: str) -> str:
    for path in deps:
        base = path.rsplit("/", 1)[-1].removesuffix(".ko")
        if base.replace("-", "_") == name.replace("-", "_"):
            return path
    raise RuntimeError(f"kernel module {name} is not in this kernel's modules.dep")


def install_guest_image(cache: ImageCache, name: str = "busybox") -> Image:
    """Build (or reuse) the test guest and install it in `cache` as image `name`.

    The image has no disk template (`vdisk_from` makes empty disks from it); its kernel command
    line extras are empty, the driver adds `console=ttyS0 panic=-1`.
    """
    artifacts = build_guest()
    try:
        existing = cache.get(name)
    except ImageError:
        existing = None
    if (
        existing is not None
        and existing.initrd is not None
        and existing.kernel.stat().st_size == artifacts.kernel.stat().st_size
        and existing.initrd.read_bytes() == artifacts.initrd.read_bytes()
    ):
        return existing
    return cache.install(name, kernel=artifacts.kernel, initrd=artifacts.initrd)
