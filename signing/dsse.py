"""DSSE envelopes (ARCHITECTURE §4): signing and verifying one, whatever its payload type.

The payload types and the statements themselves are the wire contract (`contracts/`).

Verification returns the exact payload bytes that were verified; callers parse those bytes and
nothing else, so what is acted on is always what was signed.
"""

import json
from collections.abc import Iterable

from nacl.signing import SigningKey, VerifyKey

from signing.errors import SignatureError
from signing.keys import b64decode, b64encode, key_id, verify_signature


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def sign_envelope(signing_key: SigningKey, payload_type: str, payload: bytes) -> dict:
    sig = signing_key.sign(pae(payload_type, payload)).signature
    return {
        "payloadType": payload_type,
        "payload": b64encode(payload),
        "signatures": [{"keyid": key_id(signing_key.verify_key), "sig": b64encode(sig)}],
    }


def verify_envelope(
    envelope: object, payload_type: str, trusted_keys: Iterable[VerifyKey]
) -> tuple[bytes, VerifyKey]:
    """Return (payload bytes, verifying key), or raise SignatureError naming the failed check."""
    if not isinstance(envelope, dict):
        raise SignatureError("envelope_malformed", "envelope must be a JSON object")
    if envelope.get("payloadType") != payload_type:
        raise SignatureError(
            "envelope_type",
            f"payloadType must be {payload_type!r}, got {envelope.get('payloadType')!r}",
        )
    payload_b64 = envelope.get("payload")
    signatures = envelope.get("signatures")
    if not isinstance(payload_b64, str) or not isinstance(signatures, list) or not signatures:
        raise SignatureError(
            "envelope_malformed",
            "envelope needs a base64 'payload' and a non-empty 'signatures' list",
        )
    payload = b64decode(payload_b64, what="payload")
    message = pae(payload_type, payload)
    keys = list(trusted_keys)
    for entry in signatures:
        if not isinstance(entry, dict) or not isinstance(entry.get("sig"), str):
            raise SignatureError("envelope_malformed", "each signature needs a base64 'sig'")
        sig = b64decode(entry["sig"], what="signature")
        hinted = [k for k in keys if key_id(k) == entry.get("keyid")]
        for candidate in hinted + [k for k in keys if k not in hinted]:
            try:
                verify_signature(candidate, message, sig)
            except SignatureError:
                continue
            return payload, candidate
    raise SignatureError(
        "signature_invalid", "no signature verifies against any of the signer's registered keys"
    )


def canonical_json(value: object) -> bytes:
    """Sorted keys, no spaces, UTF-8: what a browser's canonical stringify yields byte for byte."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
