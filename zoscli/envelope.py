"""Building and signing the deployment envelope (docs/deployments.md §1).

The payload is serialised once, signed, and sent as those exact bytes inside the DSSE envelope;
the coordinator and the node parse what was verified, so nothing is re-encoded on the way.
"""

import json
import re
import secrets
import time
from pathlib import Path

from nacl.signing import SigningKey

from client.errors import CliError
from contracts.payload_types import DEPLOYMENT_TYPE
from signing.dsse import sign_envelope

MAX_SCRIPT_BYTES = 64 * 1024
MAX_LIFETIME = 7 * 24 * 3600
DEFAULT_LIFETIME = 3600
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
RESOURCE_KEYS = ("cru", "mru", "sru", "hru")


def read_script(path: str) -> str:
    """The script's text, or a CliError saying exactly what is wrong with the file."""
    file = Path(path)
    if not file.exists():
        raise CliError(f"script {path} does not exist", hint="check the path")
    if not file.is_file():
        raise CliError(f"{path} is not a file", hint="pass the path of a .rhai script")
    data = file.read_bytes()
    if len(data) > MAX_SCRIPT_BYTES:
        raise CliError(
            f"script {path} is {len(data)} bytes; the limit is {MAX_SCRIPT_BYTES}",
            hint="split the work into several deployments",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(
            f"script {path} is not UTF-8 (byte {exc.start} is {data[exc.start]:#04x})",
            hint="save the file as UTF-8",
        ) from None
    if not text.strip():
        raise CliError(f"script {path} is empty", hint="see examples/hello.rhai")
    return text


def name_from_path(path: str) -> str:
    """A valid deployment name from a file name: `My Script.rhai` → `my-script`."""
    stem = re.sub(r"[^a-z0-9-]+", "-", Path(path).stem.lower()).strip("-")
    return stem[:63].rstrip("-") or "deployment"


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise CliError(
            f"invalid deployment name {name!r}",
            hint="use 1-63 lowercase letters, digits or '-', starting with a letter or digit",
        )
    return name


def build_payload(
    *,
    script: str,
    target: dict[str, int],
    name: str,
    resources: dict[str, int] | None = None,
    timeout: int | None = None,
    lifetime: int = DEFAULT_LIFETIME,
    now: int | None = None,
    nonce: str | None = None,
) -> dict:
    """The signed fields; a fresh random nonce each time so a signed envelope is used once."""
    if len(target) != 1 or next(iter(target)) not in ("node", "farm"):
        raise CliError("a deployment targets exactly one node or one farm", hint="--node or --farm")
    if not 0 < lifetime <= MAX_LIFETIME:
        raise CliError(
            f"envelope lifetime must be 1..{MAX_LIFETIME} seconds, got {lifetime}",
            hint="pass --expires with a value up to 7 days",
        )
    issued = int(time.time()) if now is None else now
    payload: dict = {
        "script": script,
        "target": dict(target),
        "nonce": nonce or secrets.token_hex(16),
        "issued_at": issued,
        "expires_at": issued + lifetime,
        "name": check_name(name),
    }
    if resources:
        unknown = set(resources) - set(RESOURCE_KEYS)
        if unknown:
            raise CliError(f"unknown resource {sorted(unknown)}", hint="use cru, mru, sru, hru")
        payload["resources"] = {k: int(v) for k, v in resources.items()}
    if timeout is not None:
        payload["timeout"] = timeout
    return payload


def sign_deployment(key: SigningKey, payload: dict) -> dict:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sign_envelope(key, DEPLOYMENT_TYPE, body.encode("utf-8"))


_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """Bytes from `1073741824`, `512M`, `2G`, `2GiB` (binary units, as the ledger counts)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a size; use bytes or a unit: 512M, 2G, 1T")
    return int(float(match.group(1)) * _UNITS[match.group(2)])
