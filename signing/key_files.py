"""Server signing keys kept as 32-byte ed25519 seeds in files (mode 0400), never in a database.

Made once on first use; concurrent first uses agree on one key (O_EXCL). A file that is not a
seed is an error, never silently replaced: a new key would be refused by everyone who trusts
the old one.
"""

import os
from pathlib import Path

from nacl.signing import SigningKey


class KeyFileError(Exception):
    """The key file exists but does not hold a seed; the message says how to recover."""


def load_or_create_seed(path: Path, *, if_lost: str) -> SigningKey:
    """The key in `path`, generated there first if missing. `if_lost` ends the error message."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        except FileExistsError:
            pass  # another process made it first; use theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(bytes(SigningKey.generate()))
                handle.flush()
                os.fsync(handle.fileno())
    seed = path.read_bytes()
    if len(seed) != 32:
        raise KeyFileError(
            f"{path} holds {len(seed)} bytes, not a 32-byte ed25519 seed; restore it from backup "
            f"({if_lost})"
        )
    return SigningKey(seed)
