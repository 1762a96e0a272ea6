"""One image build per test session (cache: build/cache), and a ledger the guest can reach.

The helpers are imported by bench/image_bench.py too.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from image.vm import GUEST_LEDGER, OVMF_CODE, OVMF_VARS
from tests.integration.conftest import ControlPlane

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


class GuestLedger(ControlPlane):
    """The control plane as the guest reaches it: through the forward at 10.0.2.100:8000."""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["ZOS_ALLOWED_HOSTS"] = "127.0.0.1,localhost,10.0.2.100"
        env["ZOS_PUBLIC_URL"] = f"http://{GUEST_LEDGER}"
        return env


def farm_nodes(ledger: ControlPlane, farm: int) -> list[dict]:
    listing = ledger.get(f"/api/v1/nodes?farm={farm}")
    return listing["results"] if isinstance(listing, dict) else listing


def fetch(ledger: ControlPlane, path: str, dest: Path, *, api_token: str | None = None) -> Path:
    """Download a boot file and check it against the sha256 the ledger sends with it.

    With the farm owner's `api_token` the file is the approving variant (docs/boot.md).
    """
    headers = {"Authorization": f"Token {api_token}"} if api_token else {}
    with requests.get(ledger.url + path, stream=True, timeout=120, headers=headers) as response:
        response.raise_for_status()
        digest = hashlib.sha256()
        with open(dest, "wb") as out:
            for chunk in response.iter_content(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    assert response.headers["X-Checksum-Sha256"] == digest.hexdigest()
    return dest
