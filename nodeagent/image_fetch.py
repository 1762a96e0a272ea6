"""Workload images fetched from the control plane's hub on first use, verified, cached, evicted.

`vm_create(#{image: "debian-12", ...})` asks `ImageFetcher.ensure(owner, "debian-12")`:

1. **Cache first.** The owner's private copy (`debian-12.u<owner>`) or a shared one (`debian-12`,
   a public image or an operator's offline install) is used as it is: a node that lost the
   control plane still creates VMs from what it holds. Hub names have no dots, so a private key
   never collides with a public name.
2. **One download per image.** A file lock per image name (`.locks/<name>.lock` in the cache)
   serialises runners, which are separate processes; whoever gets the lock second finds the
   image installed and downloads nothing. The wait polls, so a cancelled job stops waiting.
3. **Only what the owner may see.** The node asks for the image *for the job's owner*
   (`?owner=`); the hub answers with what that owner may use and only to a node running that
   owner's jobs (hub/services.py).
4. **Trust nobody's word.** The manifest's signature is checked against the publisher's keys
   (from the ledger, revoked ones refused); each part is streamed to a temporary file while its
   sha256 and length are checked, and a part that is longer, shorter or different from what the
   signed manifest says is deleted and fetched again (`ATTEMPTS` times), never used.
5. **Installed atomically.** Parts land in a staging directory inside the cache, which is then
   renamed into place (`ImageCache.adopt`); on btrfs that is the pool's `images` subvolume, so
   VM disks are reflinked from it.
6. **Bounded.** Before a download, least-recently-used fetched images that no VM uses are
   evicted until the new one fits under the cache limit and in the pool's free space.
   Offline installs (`python -m nodeagent images install`) are the operator's and never evicted.
   An image used in the last `EVICT_GRACE` seconds is kept too: a VM being created from it may
   not be recorded yet.
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

from contracts.image_manifest import Manifest, ManifestError, Part, check_name, parse_manifest
from contracts.payload_types import IMAGE_TYPE
from nodeagent.ledger_client import LedgerClient, LedgerRefused, LedgerUnavailable
from sal.images import Image, ImageCache, ImageError
from signing import SignatureError
from signing.dsse import verify_envelope
from signing.keys import parse_public_key

log = logging.getLogger(__name__)

HUB_FILE = "hub.json"  # in a fetched image: where it came from (its absence: an offline install)
LAST_USED = "last_used"  # in a fetched image: its mtime is when a VM was last made from it
LOCKS = ".locks"
CHUNK = 1 << 20
ATTEMPTS = 3
RETRY_DELAY = 1.0  # seconds before the second attempt; doubles after each
LOCK_POLL = 0.2
EVICT_GRACE = 600.0
DEFAULT_LIMIT_SHARE = 4  # no explicit limit: a quarter of the pool


class PartRefused(Exception):
    """A downloaded part is not what the signed manifest says; it is deleted and fetched again."""


PRIVATE_KEY = re.compile(r"[a-z0-9][a-z0-9_-]*\.u(\d+)")


def cache_key(name: str, owner: int | None) -> str:
    """The cache directory of a hub image: shared for public ones, per owner for private ones."""
    return name if owner is None else f"{name}.u{owner}"


def visible_to(owner: int, key: str) -> bool:
    """Whether a cache entry is one `owner` may see: shared, or their own private copy."""
    private = PRIVATE_KEY.fullmatch(key)
    return private is None or int(private.group(1)) == owner


def _disk_usage(path: Path) -> int:
    """Bytes a directory really takes (allocated blocks: a sparse disk template counts less)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for file in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, file)).st_blocks * 512
    return total


def cached_images(cache_root: Path) -> list[dict]:
    """Every image in the cache for `node_info()`: name, version, size, last use, where from.

    Private images carry their `owner`, so the node's `node_info()` shows each owner only their
    own and the shared ones.
    """
    if not cache_root.is_dir():
        return []
    listing = []
    for path in sorted(cache_root.iterdir()):
        if path.name.startswith(".") or not (path / "image.json").is_file():
            continue
        entry: dict = {"name": path.name, "size": _disk_usage(path), "source": "offline"}
        with contextlib.suppress(OSError, ValueError):
            hub = json.loads((path / HUB_FILE).read_text())
            entry.update(name=hub["name"], version=hub["version"], source="hub")
            if hub.get("owner") is not None:
                entry["owner"] = hub["owner"]
            entry["last_used"] = int((path / LAST_USED).stat().st_mtime)
        listing.append(entry)
    return listing


class ImageFetcher:
    """The node's image cache, filled from the hub on demand (see the module docstring)."""

    def __init__(
        self,
        cache: Callable[[], ImageCache],
        hub: LedgerClient | None,
        *,
        in_use: Callable[[], set[str]],
        limit_bytes: int = 0,
        attempts: int = ATTEMPTS,
        retry_delay: float = RETRY_DELAY,
        evict_grace: float = EVICT_GRACE,
    ) -> None:
        self._cache_factory = cache
        self.hub = hub
        self.in_use = in_use
        self.limit_bytes = limit_bytes  # 0: a quarter of the pool
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.evict_grace = evict_grace

    @property
    def cache(self) -> ImageCache:
        """Made on first use: a node that never runs a VM gets no `images` subvolume."""
        return self._cache_factory()

    def ensure(self, owner: int, name: str, *, check: Callable[[], None] = lambda: None) -> Image:
        """The image `name` as `owner` may use it: from the cache, else fetched from the hub."""
        found = self._cached(owner, name)
        if found is not None:
            return found
        if self.hub is None:
            raise ImageError(f"image {name!r} is not in the image cache and there is no hub")
        try:
            check_name(name)
        except ManifestError as exc:
            raise ImageError(str(exc)) from None
        with self._lock(name, check):
            found = self._cached(owner, name)  # fetched by another job while we waited
            if found is not None:
                return found
            return self._fetch(owner, name, check)

    # --- the cache ----------------------------------------------------------------------------

    def _cached(self, owner: int, name: str) -> Image | None:
        for key in (cache_key(name, owner), name):
            if not visible_to(owner, key):  # "tiny.u7" asked for by anyone but user 7
                continue
            try:
                image = self.cache.get(key)
            except ImageError:
                continue
            if (image.path / HUB_FILE).is_file():
                (image.path / LAST_USED).touch()
            return image
        return None

    @contextlib.contextmanager
    def _lock(self, name: str, check: Callable[[], None]) -> Iterator[None]:
        locks = self.cache.root / LOCKS
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{name}.lock", "a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    check()
                    time.sleep(LOCK_POLL)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- fetching -----------------------------------------------------------------------------

    def _fetch(self, owner: int, name: str, check: Callable[[], None]) -> Image:
        assert self.hub is not None
        try:
            record = self.hub.request("GET", f"/api/v1/node-fetch/images/{name}?owner={owner}")
        except LedgerRefused as exc:
            raise ImageError(
                f"image {name!r}: the control plane refused it: {exc.message}"
            ) from None
        except LedgerUnavailable as exc:
            raise ImageError(f"image {name!r}: the control plane is unreachable ({exc})") from None
        manifest = self._verify(name, record)
        key = cache_key(name, None if record.get("public") else owner)
        self.make_room(manifest.size, name)
        staging = self.cache.root / f".{key}.fetching"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            started = time.monotonic()
            for part in manifest.parts:
                self._download(owner, name, part, staging / part.file, check)
            (staging / "image.json").write_text(json.dumps(manifest.image_json(), indent=2))
            hub = {
                "name": manifest.name,
                "version": manifest.version,
                "id": record.get("id"),
                "publisher": record.get("publisher"),
                "owner": None if record.get("public") else owner,
                "envelope": record["envelope"],
                "fetched": int(time.time()),
            }
            (staging / HUB_FILE).write_text(json.dumps(hub))
            (staging / LAST_USED).touch()
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        image = self.cache.adopt(key, staging)
        log.info(
            "fetched image %s:%s (%d bytes) for user %s in %.1fs",
            manifest.name,
            manifest.version,
            manifest.size,
            owner,
            time.monotonic() - started,
        )
        return image

    def _verify(self, name: str, record: dict) -> Manifest:
        """The manifest, once its publisher's signature holds and it names the image asked for."""
        assert self.hub is not None
        publisher = record.get("publisher")
        try:
            reply = self.hub.user_keys(int(publisher))  # type: ignore[arg-type]
            keys = [parse_public_key(k["public_key"]) for k in reply["keys"] if not k["revoked"]]
            payload, _ = verify_envelope(record.get("envelope"), IMAGE_TYPE, keys)
            manifest = parse_manifest(payload)
        except (LedgerRefused, LedgerUnavailable, TypeError, ValueError, KeyError) as exc:
            raise ImageError(f"image {name!r}: cannot check its publisher's keys: {exc}") from None
        except SignatureError as exc:
            raise ImageError(
                f"image {name!r}: the manifest is not signed by its publisher ({exc.message}); "
                "refusing it"
            ) from None
        except ManifestError as exc:
            raise ImageError(f"image {name!r}: its manifest is invalid: {exc}") from None
        if manifest.name != name:
            raise ImageError(f"image {name!r}: the signed manifest is for {manifest.name!r}")
        return manifest

    def _download(
        self, owner: int, name: str, part: Part, dest: Path, check: Callable[[], None]
    ) -> None:
        """One part, verified, with retries; a refused copy is deleted, never kept."""
        delay = self.retry_delay
        for attempt in range(1, self.attempts + 1):
            check()
            try:
                self._download_once(owner, part, dest, check)
                return
            except (PartRefused, LedgerUnavailable) as exc:
                dest.unlink(missing_ok=True)
                log.warning(
                    "image %s: part %s refused (attempt %d of %d): %s",
                    name,
                    part.role,
                    attempt,
                    self.attempts,
                    exc,
                )
                reason = exc
            except LedgerRefused as exc:
                dest.unlink(missing_ok=True)
                raise ImageError(
                    f"image {name!r}: the control plane refused part {part.role}: {exc.message}"
                ) from None
            if attempt < self.attempts:
                time.sleep(delay)
                delay *= 2
        raise ImageError(
            f"image {name!r}: part {part.role} ({part.sha256[:12]}…) did not arrive intact in "
            f"{self.attempts} attempts ({reason}); it was not used"
        )

    def _download_once(self, owner: int, part: Part, dest: Path, check: Callable[[], None]) -> None:
        assert self.hub is not None
        digest = hashlib.sha256()
        received = 0
        response = self.hub.download(f"/api/v1/node-fetch/blobs/{part.sha256}?owner={owner}")
        try:
            with response, open(dest, "wb") as out:
                for chunk in response.iter_content(CHUNK):
                    received += len(chunk)
                    if received > part.size:
                        raise PartRefused(f"longer than the {part.size} bytes the manifest says")
                    digest.update(chunk)
                    out.write(chunk)
                    check()
                out.flush()
                os.fsync(out.fileno())
        except requests.RequestException as exc:
            raise PartRefused(f"the download broke off after {received} bytes: {exc}") from None
        if received != part.size:
            raise PartRefused(f"{received} bytes arrived, the manifest says {part.size}")
        if digest.hexdigest() != part.sha256:
            raise PartRefused(f"its sha256 is {digest.hexdigest()}, not {part.sha256}")

    # --- eviction -----------------------------------------------------------------------------

    def _limit(self) -> int:
        if self.limit_bytes:
            return self.limit_bytes
        return shutil.disk_usage(self.cache.root).total // DEFAULT_LIMIT_SHARE

    def make_room(self, needed: int, fetching: str) -> None:
        """Evict least-recently-used fetched images no VM uses until `needed` bytes fit."""
        root = self.cache.root
        limit = self._limit()
        images = {p.name: p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir()}
        used = sum(_disk_usage(p) for p in images.values())
        busy = self.in_use()
        now = time.time()
        candidates = []
        for key, path in images.items():
            stamp = path / LAST_USED
            if not (path / HUB_FILE).is_file() or key in busy or not stamp.exists():
                continue
            last = stamp.stat().st_mtime
            if now - last >= self.evict_grace:
                candidates.append((last, key, path))
        candidates.sort()

        def short() -> bool:
            free = shutil.disk_usage(root).free
            return used + needed > limit or free < needed

        while short() and candidates:
            _last, key, path = candidates.pop(0)
            if self._try_evict(key, path):
                used = sum(_disk_usage(p) for p in images.values() if p.exists())
        if short():
            raise ImageError(
                f"image {fetching!r} needs {needed} bytes but the image cache cannot make room: "
                f"{used} of its {limit}-byte limit are images in use, recently used or installed "
                "offline, and the pool has "
                f"{shutil.disk_usage(root).free} bytes free"
            )

    def _try_evict(self, key: str, path: Path) -> bool:
        """Remove one image unless another job holds its lock right now."""
        hub_name = key.split(".u", 1)[0]
        with open(self.cache.root / LOCKS / f"{hub_name}.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    return False
                raise
            try:
                self.cache.remove(key)
                log.info("evicted image %s from the cache (least recently used)", key)
                return True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
