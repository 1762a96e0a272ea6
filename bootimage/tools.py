"""Running the host tools a build or a stamp needs, with errors that say what ran and printed."""

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

TAIL_LINES = 25


class BuildError(Exception):
    """A build step failed; the message says which step, what ran and how to fix it."""


def run(
    argv: Sequence[str | Path],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 900,
) -> str:
    """Run `argv`; return its stdout, or raise BuildError naming `what` and the tool's output."""
    command = [str(arg) for arg in argv]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise BuildError(f"{what}: `{command[0]}` is not installed") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what}: `{' '.join(command)}` ran longer than {timeout:.0f}s") from None
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()[-TAIL_LINES:]
        raise BuildError(
            f"{what}: `{' '.join(command)}` exited with {done.returncode}:\n" + "\n".join(output)
        )
    return done.stdout


def require(*tools: str) -> None:
    """Stop before any work when a host tool is missing, naming the Debian package to install."""
    packages = {
        "objcopy": "binutils",
        "sgdisk": "gdisk",
        "mkfs.vfat": "dosfstools",
        "mcopy": "mtools",
        "mmd": "mtools",
        "zstd": "zstd",
        "cpio": "cpio",
        "depmod": "kmod",
        "apt-get": "apt",
        "dpkg-deb": "dpkg",
        "mkfs.ext4": "e2fsprogs",
    }
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        names = sorted({packages.get(tool, tool) for tool in missing})
        raise BuildError(
            f"missing host tools {', '.join(missing)}: apt-get install {' '.join(names)}"
        )
