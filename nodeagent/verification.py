"""The node's own checks on a dispatch, before anything is queued (docs/deployments.md §2).

A node trusts nobody's word for a script: the coordinator must have signed the dispatch for this
node, and the user must have signed the deployment for this node or its farm, recently, once.
Checks run in a fixed order and the first failure names itself.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from nacl.signing import VerifyKey

from contracts.payload_types import CANCEL_TYPE, DEPLOYMENT_TYPE, DISPATCH_TYPE
from signing import SignatureError
from signing.dsse import verify_envelope

MAX_CLOCK_AHEAD = 300


class DispatchRejected(Exception):
    def __init__(self, code: str, message: str, *, job_id: str = "", attempt: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.job_id = job_id
        self.attempt = attempt


@dataclass(frozen=True)
class NodeAudience:
    public_key: str
    node_id: int | None
    farm_id: int


@dataclass(frozen=True)
class VerifiedDispatch:
    job_id: str
    attempt: int
    owner: int
    signer: str
    name: str
    script: str
    nonce: str
    timeout: int
    expires_at: int


def _json_object(payload: bytes, what: str) -> dict:
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise DispatchRejected("payload_invalid", f"{what} payload is not a JSON object")
    return data


def _int(data: dict, key: str, what: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DispatchRejected("payload_invalid", f"{what} field {key!r} must be an integer")
    return value


def verify_dispatch(
    envelope: object,
    *,
    coordinator_key: VerifyKey,
    audience: NodeAudience,
    user_keys: Callable[[int], list[VerifyKey]],
    now: float | None = None,
) -> VerifiedDispatch:
    now = time.time() if now is None else now
    try:
        payload, _ = verify_envelope(envelope, DISPATCH_TYPE, [coordinator_key])
    except SignatureError as exc:
        raise DispatchRejected(
            "dispatch_signature", f"dispatch not signed by the coordinator: {exc.message}"
        ) from exc
    dispatch = _json_object(payload, "dispatch")
    job_id, attempt = str(dispatch.get("job_id", "")), _int(dispatch, "attempt", "dispatch")

    def reject(code: str, message: str) -> DispatchRejected:
        return DispatchRejected(code, message, job_id=job_id, attempt=attempt)

    if dispatch.get("node") != audience.public_key:
        raise reject("wrong_node", "the dispatch is addressed to another node")
    if _int(dispatch, "expires_at", "dispatch") <= now:
        raise reject("dispatch_expired", "the dispatch has expired")
    owner = _int(dispatch, "owner", "dispatch")
    try:
        deployment_bytes, signer = verify_envelope(
            dispatch.get("deployment"), DEPLOYMENT_TYPE, user_keys(owner)
        )
    except SignatureError as exc:
        raise reject(exc.code, f"deployment signature: {exc.message}") from exc
    deployment = _json_object(deployment_bytes, "deployment")
    if _int(deployment, "expires_at", "deployment") <= now:
        raise reject("expired", "the user's deployment envelope has expired")
    if _int(deployment, "issued_at", "deployment") > now + MAX_CLOCK_AHEAD:
        raise reject("not_yet_valid", "the user's deployment envelope is issued in the future")
    target = deployment.get("target")
    addressed = isinstance(target, dict) and (
        (audience.node_id is not None and target.get("node") == audience.node_id)
        or target.get("farm") == audience.farm_id
    )
    if not addressed:
        raise reject("wrong_target", f"the deployment targets {target}, not this node or its farm")
    script, nonce = deployment.get("script"), deployment.get("nonce")
    if not isinstance(script, str) or not isinstance(nonce, str) or not nonce:
        raise reject("payload_invalid", "the deployment needs a script and a nonce")
    timeout = dispatch.get("timeout", 300)
    return VerifiedDispatch(
        job_id=job_id,
        attempt=attempt,
        owner=owner,
        signer=bytes(signer).hex(),
        name=str(deployment.get("name", "")),
        script=script,
        nonce=nonce,
        timeout=timeout if isinstance(timeout, int) and timeout > 0 else 300,
        expires_at=deployment["expires_at"],
    )


def verify_cancel(
    envelope: object,
    *,
    coordinator_key: VerifyKey,
    audience: NodeAudience,
    now: float | None = None,
) -> str:
    """Return the job id a valid cancel names for this node."""
    now = time.time() if now is None else now
    try:
        payload, _ = verify_envelope(envelope, CANCEL_TYPE, [coordinator_key])
    except SignatureError as exc:
        raise DispatchRejected("cancel_signature", exc.message) from exc
    cancel = _json_object(payload, "cancel")
    if cancel.get("node") != audience.public_key:
        raise DispatchRejected("wrong_node", "the cancel is addressed to another node")
    if _int(cancel, "expires_at", "cancel") <= now:
        raise DispatchRejected("dispatch_expired", "the cancel has expired")
    return str(cancel.get("job_id", ""))
