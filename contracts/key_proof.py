"""The key-proof statement: a key signs it to prove its holder is registering it (§4).

The ledger issues the challenge and checks these fields (ledger/services.py); the CLI signs them
here, and the browser's envelope code must produce the same canonical bytes.
"""

from typing import TYPE_CHECKING

from contracts.payload_types import KEY_PROOF_TYPE
from signing.dsse import canonical_json, sign_envelope
from signing.keys import public_key_hex

if TYPE_CHECKING:  # the key type only: contracts load nothing beyond signing at run time
    from nacl.signing import SigningKey


def sign_key_proof(signing_key: "SigningKey", *, user: int, challenge: str, issued_at: int) -> dict:
    """Proof that the holder of `signing_key` registers it, for this user and ledger challenge."""
    payload = {
        "user": user,
        "public_key": public_key_hex(signing_key),
        "challenge": challenge,
        "issued_at": issued_at,
    }
    return sign_envelope(signing_key, KEY_PROOF_TYPE, canonical_json(payload))
