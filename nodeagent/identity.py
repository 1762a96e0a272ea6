"""The node's ed25519 identity (ARCHITECTURE §2 step 4).

The seed is the node: lose it and the ledger sees a new node, with a new id and none of its
history. So it lives on the cache and on every storage pool, any copy can bring the others back,
and a copy that looks wrong stops the agent instead of being replaced: only the operator knows
whether the disk or the seed is the thing to trust.
"""

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import nacl.utils
from nacl.signing import SigningKey

log = logging.getLogger(__name__)

SEED_SIZE = 32
SEED_DIR = "identity"
SEED_NAME = "seed"


class IdentityError(Exception):
    """The identity cannot be trusted or kept; the message names the file and the fix."""


@dataclass(frozen=True)
class NodeIdentity:
    # repr=False: the seed is the private key and must never reach a log line.
    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_SIZE:
            raise ValueError(f"an ed25519 seed is {SEED_SIZE} bytes, got {len(self.seed)}")

    @cached_property
    def signing_key(self) -> SigningKey:
        return SigningKey(self.seed)

    @cached_property
    def public_key_hex(self) -> str:
        """The node id on the wire until the ledger assigns a number."""
        return self.signing_key.verify_key.encode().hex()

    def sign(self, message: bytes) -> bytes:
        """Return the raw 64-byte signature, detached from the message."""
        return self.signing_key.sign(message).signature


def seed_path(root: Path) -> Path:
    """Where the seed lives under a data or mirror directory."""
    return Path(root) / SEED_DIR / SEED_NAME


def load_or_create_identity(data_dir: Path, mirrors: Sequence[Path] = ()) -> NodeIdentity:
    """Load the node identity from any copy, or create one, and put it in every location.

    Every existing copy is read before anything is written, so a corrupt or disagreeing copy is
    reported rather than overwritten. A location that cannot be written (a read-only pool) is
    logged and skipped; it is an error only when no location holds the seed afterwards, because
    then the node would come back with another identity at the next boot.
    """
    locations = _unique([seed_path(data_dir), *(seed_path(m) for m in mirrors)])
    copies = {path: seed for path in locations if (seed := _read_seed(path)) is not None}

    distinct = set(copies.values())
    if len(distinct) > 1:
        listing = ", ".join(
            f"{path} (public key {NodeIdentity(seed).public_key_hex[:16]}…)"
            for path, seed in copies.items()
        )
        raise IdentityError(
            f"node identity copies disagree: {listing}. Keep the copy of the identity this node "
            "is registered with (its public key is in the ledger) and delete the others."
        )
    if distinct:
        seed = distinct.pop()
    else:
        seed = nacl.utils.random(SEED_SIZE)
        log.info("no node identity found in %s: created a new one", _names(locations))
    identity = NodeIdentity(seed)

    failures = []
    for path in locations:
        if path in copies:
            continue
        try:
            _write_seed(path, seed)
        except OSError as exc:
            failures.append(f"{path}: {exc}")
            log.warning("cannot write the node identity to %s: %s", path, exc)
        else:
            copies[path] = seed
            log.info("node identity %s written to %s", identity.public_key_hex, path)
    if not copies:
        raise IdentityError(
            f"cannot store the node identity anywhere: {'; '.join(failures)}. "
            "Make the data directory (or a mirror) writable."
        )
    return identity


def _unique(paths: list[Path]) -> list[Path]:
    """Drop repeats, e.g. a mirror that is the data directory under another name."""
    seen: set[Path] = set()
    unique = []
    for path in paths:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(path)
    return unique


def _names(paths: list[Path]) -> str:
    return ", ".join(str(p) for p in paths)


def _read_seed(path: Path) -> bytes | None:
    """Return the seed at `path`, None when there is none, or raise when the copy is corrupt."""
    fix = (
        f"Restore {path} from another copy of the identity (a mirror's {SEED_DIR}/{SEED_NAME}), "
        "or delete it to give this node a new identity (the ledger will see a new node)."
    )
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        # NotADirectoryError: a file stands where a directory should be, so no seed is there;
        # writing one will fail and say so.
        return None
    except OSError as exc:
        raise IdentityError(f"node identity {path} is unreadable ({exc}). {fix}") from exc
    if len(data) != SEED_SIZE:
        raise IdentityError(
            f"node identity {path} is corrupt: {len(data)} bytes, a seed is {SEED_SIZE}. {fix}"
        )
    _tighten_mode(path)
    return data


def _tighten_mode(path: Path) -> None:
    """A seed others can read is a leaked key waiting to happen; narrow it, keep the content."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(0o400)
            log.warning("node identity %s was mode %o: set to 0400", path, mode)
    except OSError as exc:
        log.warning("cannot check the mode of node identity %s: %s", path, exc)


def _write_seed(path: Path, seed: bytes) -> None:
    """Write via a synced temp file and rename, so a crash leaves the old state or the new one."""
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{SEED_NAME}-")
    try:
        os.fchmod(fd, 0o400)
        view = memoryview(seed)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
