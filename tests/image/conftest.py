"""One image build per test session, shared by the boot proof; the build's cache is build/cache."""

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from image.vm import OVMF_CODE, OVMF_VARS

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 900


@dataclass(frozen=True)
class BuiltImage:
    directory: Path
    seconds: float


def _missing_facilities() -> str | None:
    if os.geteuid() != 0:
        return "building the boot image needs root"
    for tool in ("qemu-system-x86_64", "socat", "objcopy", "sgdisk", "mcopy", "zstd", "cpio"):
        if shutil.which(tool) is None:
            return f"needs {tool} (scripts/setup.sh installs it)"
    if not (OVMF_CODE.is_file() and OVMF_VARS.is_file()):
        return "needs the ovmf package for UEFI firmware"
    return None


@pytest.fixture(scope="session")
def built_image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """`python -m image build` into a session directory, reusing the repository's build cache."""
    reason = _missing_facilities()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("image")
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "image",
            "build",
            "--out",
            str(out),
            "--cache",
            str(ROOT / "build/cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"image build failed:\n{done.stderr[-4000:]}"
    return BuiltImage(out, time.monotonic() - started)
