"""The coordinator's ed25519 key, which signs every dispatch sent to nodes.

The private part lives in a file (ZOS_COORDINATOR_KEY_FILE, mode 0400), never in the database,
so a database dump cannot forge dispatches. It is generated once, on first use.
"""

import functools
from pathlib import Path

from django.conf import settings
from nacl.signing import SigningKey

from signing.key_files import load_or_create_seed


@functools.cache
def coordinator_signing_key() -> SigningKey:
    return load_or_create_seed(
        Path(settings.ZOS_COORDINATOR_KEY_FILE),
        if_lost="deleting it makes a new key that nodes will not trust until they refetch it",
    )
