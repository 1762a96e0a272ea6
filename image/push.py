"""`python -m image push`: a build directory to the ledger as a BootImage (ARCHITECTURE §2 step 1).

Every file is checked against the build's manifest.json here first, so a damaged or half-copied
build is refused before 100+ MB go over the wire (the ledger checks the hashes again as it
stores them). Only what the ledger serves from a build is sent: `zos.efi`, `vmlinuz`, `initrd`.
`usb.img` and `boot.ipxe` are made per farm from `zos.efi` and the farm's command line, so the
build's own copies would never be served.
"""

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bootimage.tools import BuildError
from client.api import DEFAULT_TIMEOUT, Api, ApiError
from contracts.boot_image import BOOT_IMAGE_FILES
from contracts.versions import check_version
from image.manifest import MANIFEST, file_digest, read_manifest
from image.progress import say
from image.upload import MultipartBody, human_size, ledger_errors, post_multipart, resolve_ledger

SENT = BOOT_IMAGE_FILES
FARM_FILES = ("zos.efi", "usb.img", "boot.ipxe", "vmlinuz", "initrd")
LARGE = 4 << 20  # files from this size on get a progress line per quarter
VERSION_WORD = re.compile(r"(?<!\S)zos\.version=\S*")


@dataclass(frozen=True)
class PushOptions:
    image: Path
    ledger: str | None = None  # URL; None: ZOS_LEDGER, else the zos CLI's
    token: str | None = None  # None: ZOS_TOKEN, else the zos CLI's
    version: str | None = None
    make_current: bool = True


def load_build(directory: Path, version: str | None = None) -> dict:
    """The build's manifest, re-versioned when `version` is given, with every sent file checked.

    A new version replaces the manifest's and the `zos.version=` on its command line, which the
    ledger stamps into every farm's image (the build's own zos.efi keeps the old one; it is
    never served as it is).
    """
    try:
        manifest = read_manifest(directory)
    except FileNotFoundError:
        raise BuildError(
            f"no {MANIFEST} in {directory}: run `python -m image build` first, or pass --image"
        ) from None
    except (OSError, ValueError) as exc:
        raise BuildError(f"{directory / MANIFEST} is not readable JSON: {exc}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise BuildError(f"{directory / MANIFEST} has no 'files' map: is it an image build?")
    missing = [name for name in SENT if name not in files]
    if missing:
        raise BuildError(f"{directory / MANIFEST} lists no {', '.join(missing)}")
    if version:
        manifest["version"] = check_version(version)
        cmdline = str(manifest.get("cmdline", ""))
        manifest["cmdline"] = VERSION_WORD.sub(f"zos.version={version}", cmdline)
    check_version(str(manifest.get("version", "")))
    for name in SENT:
        _verify(directory / name, files[name])
    return manifest


def _verify(path: Path, expected: dict) -> None:
    if not path.is_file():
        raise BuildError(f"{path} is missing (the manifest lists it): rebuild, or pass --image")
    started = time.monotonic()
    actual = file_digest(path)
    if actual["sha256"] != expected.get("sha256"):
        raise BuildError(
            f"{path}: sha256 {actual['sha256']} differs from the manifest's "
            f"{expected.get('sha256')}; the file changed after the build: rebuild"
        )
    say(
        f"{path.name}: {human_size(actual['size'])}, sha256 matches the manifest "
        f"({time.monotonic() - started:.1f}s)"
    )


class ProgressLines:
    """One line per quarter of each large file and one when it is sent: readable in a log."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.quarters: dict[str, int] = {}

    def __call__(self, name: str, sent: int, size: int) -> None:
        now = time.monotonic()
        started = self.started.setdefault(name, now)
        if sent == size:
            say(f"sent {name}: {human_size(size)} in {now - started:.1f}s")
            return
        if size < LARGE:
            return
        quarter = 4 * sent // size
        if quarter > self.quarters.get(name, 0):
            self.quarters[name] = quarter
            say(f"sending {name}: {human_size(sent)} of {human_size(size)} ({25 * quarter}%)")


def push(options: PushOptions) -> dict:
    """Upload the build; the ledger's answer (version, is_current, files with sha256 and size)."""
    manifest = load_build(options.image, options.version)
    version = manifest["version"]
    ledger = resolve_ledger(options.ledger, options.token)
    api = ledger.api()
    with ledger_errors(ledger.url):
        _refuse_existing(ledger.api(timeout=DEFAULT_TIMEOUT), version)
        body = MultipartBody(
            {"version": version, "make_current": "true" if options.make_current else "false"},
            [
                ("manifest", MANIFEST, json.dumps(manifest, sort_keys=True).encode()),
                *(("files", name, options.image / name) for name in SENT),
            ],
            progress=ProgressLines(),
        )
        say(f"uploading boot image {version} ({human_size(len(body))}) to {ledger.url}")
        started = time.monotonic()
        answer = post_multipart(api, "/api/v1/boot-images", body)
    _summary(ledger.url, answer, len(body), time.monotonic() - started)
    return answer


def _refuse_existing(api: Api, version: str) -> None:
    """Versions are never reused: say so before sending anything (this also checks the token)."""
    try:
        api.get(f"/api/v1/boot-images/{version}")
    except ApiError as exc:
        if exc.status == 404:
            return
        raise
    raise BuildError(
        f"boot image {version} is already on the ledger; versions are never reused: "
        "pass another --version"
    )


def _summary(url: str, answer: dict, sent: int, seconds: float) -> None:
    rate = human_size(sent / seconds) if seconds > 0 else "-"
    state = "current" if answer.get("is_current") else "not current"
    lines = [
        f"boot image {answer['version']} stored on {url} ({state}): "
        f"{human_size(sent)} in {seconds:.1f}s ({rate}/s)"
    ]
    for name, info in sorted(answer.get("files", {}).items()):
        lines.append(f"  {name:<8} {human_size(info['size']):>9}  sha256 {info['sha256']}")
    if answer.get("is_current"):
        lines.append(
            f"farms boot it now: {url}/boot/<farm>/{{{','.join(FARM_FILES)}}} "
            "(farms pinned to another image keep theirs)"
        )
    else:
        lines.append(
            f"make it current: POST {url}/api/v1/boot-images/{answer['version']}/current, "
            "or the admin's boot image list"
        )
    print("\n".join(lines), file=sys.stdout, flush=True)
