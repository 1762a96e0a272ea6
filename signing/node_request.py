"""Signed node HTTP requests (ARCHITECTURE §4).

Header: ``Authorization: ZOS-Ed25519 key=<hex>,ts=<unix>,nonce=<hex16>,sig=<base64>``; the
signature covers the method, path with query, timestamp, nonce and the sha256 of the exact body
bytes, so neither the body nor the target can be swapped under a valid signature.
"""

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from nacl.signing import SigningKey

from signing.errors import SignatureError
from signing.keys import b64decode, b64encode, parse_public_key, public_key_hex, verify_signature

SCHEME = "ZOS-Ed25519"
CONTEXT = b"zos-req-v1"
MAX_SKEW_SECONDS = 300
NONCE_TTL_SECONDS = 600
_NONCE_RE = re.compile(r"^[0-9a-f]{16}$")


def canonical_request(method: str, path_and_query: str, ts: int, nonce: str, body: bytes) -> bytes:
    return b"\n".join(
        [
            CONTEXT,
            method.upper().encode("ascii"),
            path_and_query.encode("utf-8"),
            str(ts).encode("ascii"),
            nonce.encode("ascii"),
            hashlib.sha256(body).hexdigest().encode("ascii"),
        ]
    )


def sign_request(
    signing_key: SigningKey,
    method: str,
    path_and_query: str,
    body: bytes,
    *,
    ts: int | None = None,
    nonce: str | None = None,
) -> str:
    """Return the Authorization header value for one request."""
    ts = int(time.time()) if ts is None else ts
    nonce = secrets.token_hex(8) if nonce is None else nonce
    sig = signing_key.sign(canonical_request(method, path_and_query, ts, nonce, body)).signature
    return f"{SCHEME} key={public_key_hex(signing_key)},ts={ts},nonce={nonce},sig={b64encode(sig)}"


@dataclass(frozen=True)
class SignedHeader:
    """A parsed header; `key` is the canonical hex of the 32-byte key, safe to use as a name."""

    key: str
    ts: int
    nonce: str
    sig: bytes


def parse_authorization(header: str) -> SignedHeader:
    scheme, _, params = header.strip().partition(" ")
    if scheme != SCHEME:
        raise SignatureError(
            "bad_auth_header", f"Authorization scheme must be {SCHEME}, got {scheme!r}"
        )
    fields: dict[str, str] = {}
    for part in params.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name in fields:
            raise SignatureError("bad_auth_header", f"malformed Authorization field {part!r}")
        fields[name] = value
    missing = {"key", "ts", "nonce", "sig"} - fields.keys()
    if missing:
        raise SignatureError("bad_auth_header", f"Authorization lacks {', '.join(sorted(missing))}")
    if not fields["ts"].isdigit():
        raise SignatureError("bad_auth_header", "ts must be a unix time in whole seconds")
    if not _NONCE_RE.match(fields["nonce"]):
        raise SignatureError("bad_auth_header", "nonce must be 16 lowercase hex characters")
    return SignedHeader(
        key=public_key_hex(parse_public_key(fields["key"])),
        ts=int(fields["ts"]),
        nonce=fields["nonce"],
        sig=b64decode(fields["sig"], what="sig"),
    )


def verify_request(
    header: SignedHeader,
    method: str,
    path_and_query: str,
    body: bytes,
    *,
    now: float | None = None,
) -> None:
    """Check the clock window and the signature; replay protection is left to the caller,
    which owns the storage for seen nonces."""
    now = time.time() if now is None else now
    if abs(now - header.ts) > MAX_SKEW_SECONDS:
        raise SignatureError(
            "timestamp_skew",
            f"request time {header.ts} is more than {MAX_SKEW_SECONDS}s from server time",
            server_time=int(now),
        )
    verify_signature(
        parse_public_key(header.key),
        canonical_request(method, path_and_query, header.ts, header.nonce, body),
        header.sig,
    )
