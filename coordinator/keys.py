"""The coordinator's ed25519 key, which signs every dispatch sent to nodes.

The private part lives in a file (ZOS_COORDINATOR_KEY_FILE, mode 0400), never in the database,
so a database dump cannot forge dispatches. It is generated once, on first use.
"""

import functools
import os
from pathlib import Path

from django.conf import settings
from nacl.signing import SigningKey


class CoordinatorKeyError(Exception):
    pass


def _load_or_create(path: Path) -> SigningKey:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        except FileExistsError:
            pass  # another process created it first; read theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(bytes(SigningKey.generate()))
                handle.flush()
                os.fsync(handle.fileno())
    seed = path.read_bytes()
    if len(seed) != 32:
        raise CoordinatorKeyError(
            f"{path} holds {len(seed)} bytes, not a 32-byte ed25519 seed; restore it from backup "
            "(deleting it makes a new key that nodes will not trust until they refetch it)"
        )
    return SigningKey(seed)


@functools.cache
def coordinator_signing_key() -> SigningKey:
    return _load_or_create(Path(settings.ZOS_COORDINATOR_KEY_FILE))
