"""Key encodings used on the wire: hex public keys, base64 signatures, key ids."""

import base64
import binascii
import hashlib
import re

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from signing.errors import SignatureError

PUBLIC_KEY_HEX_LEN = 64
_CANONICAL_KEY_RE = re.compile(r"[0-9a-f]{64}")


def parse_public_key(value: str) -> VerifyKey:
    """Decode a hex ed25519 public key; only the canonical spelling (64 lowercase hex) is accepted.

    One key must have exactly one spelling: the hex is used as a name (node lookup, the replay
    cache's nonce key, uniqueness of user keys), so accepting "AB" beside "ab" would let one
    captured request be replayed under a second name.
    """
    if not isinstance(value, str) or not _CANONICAL_KEY_RE.fullmatch(value):
        raise SignatureError(
            "bad_public_key",
            "public key must be exactly 64 lowercase hex characters (a 32-byte ed25519 key)",
        )
    return VerifyKey(bytes.fromhex(value))


def public_key_hex(key: SigningKey | VerifyKey) -> str:
    verify_key = key.verify_key if isinstance(key, SigningKey) else key
    return bytes(verify_key).hex()


def key_id(public_key: bytes | VerifyKey) -> str:
    """First 16 hex chars of sha256(public key): a lookup hint, never trusted on its own."""
    return hashlib.sha256(bytes(public_key)).hexdigest()[:16]


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(value: str, *, what: str) -> bytes:
    """Strict base64 decoding; `what` names the field in the error so the client can fix it."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise SignatureError("bad_base64", f"{what} is not valid base64") from exc


def verify_signature(verify_key: VerifyKey, message: bytes, signature: bytes) -> None:
    try:
        verify_key.verify(message, signature)
    except (BadSignatureError, ValueError) as exc:
        raise SignatureError(
            "signature_invalid", "signature does not verify for this key and content"
        ) from exc
