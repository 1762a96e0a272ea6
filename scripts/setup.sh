# Shared by scripts/up and scripts/test: install what is missing, quickly when nothing is.
# Sourced, not run. Debian 12; needs root or sudo for apt the first time.

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT_DIR/.venv"
PY="$VENV/bin/python"

APT_PACKAGES=(python3 python3-venv redis-server postgresql iproute2 curl ca-certificates
  qemu-system-x86 qemu-utils btrfs-progs busybox-static kmod cpio zstd xz-utils binutils
  ovmf systemd-boot-efi mtools dosfstools gdisk ipxe socat e2fsprogs chromium openssh-client
  skopeo umoci prometheus haproxy caddy gcc libc6-dev)

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $* (re-run as root or install sudo)"
  fi
}

ensure_apt_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local log
  log="$(mktemp /tmp/zos-apt.XXXXXX)"
  if ! { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q \
      && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "apt-get failed (full log: $log)"
  fi
  rm -f "$log"
}

ensure_venv() {
  local stamp="$VENV/.requirements.sha256" want
  want="$(sha256sum "$ROOT_DIR/requirements.txt" | cut -d' ' -f1)"
  if [ ! -x "$PY" ]; then
    say "creating virtualenv in .venv"
    /usr/bin/python3 -m venv "$VENV" || die "could not create .venv (is python3-venv installed?)"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python requirements"
    "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT_DIR/requirements.txt"
    echo "$want" > "$stamp"
  fi
}

ensure_all() {
  ensure_apt_packages "${APT_PACKAGES[@]}"
  ensure_venv
}

# A free TCP port on loopback.
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
