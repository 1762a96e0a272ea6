"""`python -m image release`: bundle this checkout's agent, have the ledger sign it, roll it out.

The ledger signs what it receives with its release key; we check the answer against what we
sent (the same sha256 and size) and the signature against the key the ledger publishes, so
the operator sees which key nodes will verify it with. `--farm` then sets those farms' desired
agent version (their nodes move at their next uptime report, ARCHITECTURE §2 step 7).
"""

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nacl.signing import VerifyKey

from bootimage.tools import BuildError
from client.api import DEFAULT_TIMEOUT, Api, ApiError
from contracts.payload_types import RELEASE_TYPE
from contracts.release_bundle import build_bundle
from contracts.versions import check_version
from image.progress import say
from image.upload import MultipartBody, human_size, ledger_errors, post_multipart, resolve_ledger
from signing import SignatureError
from signing.dsse import verify_envelope
from signing.keys import key_id

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ReleaseOptions:
    version: str
    ledger: str | None = None  # URL; None: ZOS_LEDGER, else the zos CLI's
    token: str | None = None  # None: ZOS_TOKEN, else the zos CLI's
    source: Path = REPO
    # Farm ids whose nodes move to the release; None: every farm; empty: none.
    farms: list[int] | None = field(default_factory=list)


def parse_farms(values: list[str]) -> list[int] | None:
    """`--farm` values: ids, or `all` (None)."""
    if "all" in values:
        return None
    try:
        farms = [int(value) for value in values]
    except ValueError:
        raise BuildError(f"--farm takes farm ids or 'all', got {values}") from None
    if any(farm < 1 for farm in farms):
        raise BuildError(f"farm ids are positive numbers, got {values}")
    return farms


def release(options: ReleaseOptions) -> dict:
    """Publish the bundle; the ledger's answer (version, sha256, size, envelope)."""
    check_version(options.version)
    started = time.monotonic()
    bundle = build_bundle(options.source, options.version)
    sha256 = hashlib.sha256(bundle).hexdigest()
    say(
        f"bundle {options.version}: {human_size(len(bundle))}, sha256 {sha256} "
        f"({time.monotonic() - started:.1f}s)"
    )
    ledger = resolve_ledger(options.ledger, options.token)
    api = ledger.api(timeout=DEFAULT_TIMEOUT)
    with ledger_errors(ledger.url):
        _check_farms(api, options.farms or [])
        body = MultipartBody(
            {"version": options.version},
            [("bundle", f"zos-agent-{options.version}.tar.gz", bundle)],
        )
        answer = post_multipart(ledger.api(), "/api/v1/releases", body)
        signer = _check(answer, sha256, len(bundle), api.get("/api/v1/releases/key"))
        moved: list[int] | None = None  # None: no rollout asked for
        if options.farms != []:
            moved = api.request(
                "POST",
                f"/api/v1/releases/{options.version}/rollout",
                json={"farms": "all" if options.farms is None else options.farms},
            )["farms"]
    lines = [
        f"agent release {answer['version']} published on {ledger.url}: "
        f"{human_size(answer['size'])}, sha256 {answer['sha256']}, signed by release key {signer}"
    ]
    if moved is None:
        lines.append("no farm wants it yet: pass --farm ID (or --farm all) to roll it out")
    else:
        lines.append(
            f"desired by farm(s) {', '.join(map(str, moved)) or '(none: there are no farms)'}; "
            "their nodes move at their next uptime report"
        )
    print("\n".join(lines), file=sys.stdout, flush=True)
    return answer


def _check_farms(api: Api, farms: list[int]) -> None:
    """Every named farm exists, before anything is published (a typo publishes nothing)."""
    for farm in farms:
        try:
            api.get(f"/api/v1/farms/{farm}")
        except ApiError as exc:
            if exc.status == 404:
                raise BuildError(
                    f"there is no farm {farm} on {api.url}: nothing published"
                ) from None
            raise


def _check(answer: dict, sha256: str, size: int, key: dict) -> str:
    """The stored release is the bundle we sent, signed by the ledger's published key."""
    if (answer.get("sha256"), answer.get("size")) != (sha256, size):
        raise BuildError(
            f"the ledger stored sha256 {answer.get('sha256')} ({answer.get('size')} bytes), "
            f"not the {sha256} ({size} bytes) sent"
        )
    try:
        verify_key = VerifyKey(bytes.fromhex(key["public_key"]))
        payload, _ = verify_envelope(answer["envelope"], RELEASE_TYPE, [verify_key])
    except (SignatureError, KeyError, ValueError) as exc:
        raise BuildError(
            f"the release's signature does not verify with the ledger's key: {exc}"
        ) from None
    statement = json.loads(payload)
    if statement != {"version": answer["version"], "sha256": sha256, "size": size}:
        raise BuildError(f"the ledger signed {statement}, not this bundle")
    return key_id(verify_key)
