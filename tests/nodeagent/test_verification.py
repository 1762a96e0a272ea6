"""The node's own checks on a hand-made dispatch: each forgery is refused, naming the check."""

import json
import time

import pytest
from nacl.signing import SigningKey

from contracts.payload_types import CANCEL_TYPE, DEPLOYMENT_TYPE, DISPATCH_TYPE
from nodeagent.verification import DispatchRejected, NodeAudience, verify_cancel, verify_dispatch
from signing.dsse import sign_envelope
from signing.keys import b64decode, b64encode, public_key_hex

COORDINATOR = SigningKey.generate()
USER = SigningKey.generate()
NODE = SigningKey.generate()
AUDIENCE = NodeAudience(public_key=public_key_hex(NODE), node_id=7, farm_id=3)


def _sign(key: SigningKey, payload_type: str, payload: dict) -> dict:
    return sign_envelope(key, payload_type, json.dumps(payload).encode())


def deployment(**overrides) -> dict:
    now = int(time.time())
    payload = {
        "script": 'log("hi")',
        "target": {"node": 7},
        "nonce": "ab" * 16,
        "issued_at": now,
        "expires_at": now + 600,
        "name": "hello",
    }
    return {**payload, **overrides}


def dispatch(
    *, user_key=USER, coordinator_key=COORDINATOR, deployment_envelope=None, **overrides
) -> dict:
    now = int(time.time())
    payload = {
        "job_id": "f" * 32,
        "attempt": 1,
        "node": public_key_hex(NODE),
        "owner": 42,
        "deployment": deployment_envelope or _sign(user_key, DEPLOYMENT_TYPE, deployment()),
        "timeout": 60,
        "issued_at": now,
        "expires_at": now + 600,
        **overrides,
    }
    return _sign(coordinator_key, DISPATCH_TYPE, payload)


def verify(envelope, *, keys=(USER,)):
    return verify_dispatch(
        envelope,
        coordinator_key=COORDINATOR.verify_key,
        audience=AUDIENCE,
        user_keys=lambda owner: [k.verify_key for k in keys] if owner == 42 else [],
    )


def test_a_genuine_dispatch_is_verified():
    job = verify(dispatch())
    assert (job.job_id, job.attempt, job.owner, job.timeout) == ("f" * 32, 1, 42, 60)
    assert job.signer == public_key_hex(USER)
    assert job.script == 'log("hi")'


def test_a_farm_wide_deployment_is_for_this_node_too():
    envelope = _sign(USER, DEPLOYMENT_TYPE, deployment(target={"farm": 3}))
    assert verify(dispatch(deployment_envelope=envelope)).name == "hello"


def _tampered_deployment() -> dict:
    envelope = _sign(USER, DEPLOYMENT_TYPE, deployment())
    payload = json.loads(b64decode(envelope["payload"], what="payload"))
    payload["script"] = 'vm_delete("all")'
    return {**envelope, "payload": b64encode(json.dumps(payload).encode())}


@pytest.mark.parametrize(
    ("envelope", "code"),
    [
        (lambda: dispatch(coordinator_key=SigningKey.generate()), "dispatch_signature"),
        (lambda: {**dispatch(), "payloadType": CANCEL_TYPE}, "dispatch_signature"),
        (lambda: dispatch(node=public_key_hex(SigningKey.generate())), "wrong_node"),
        (lambda: dispatch(expires_at=int(time.time()) - 1), "dispatch_expired"),
        (lambda: dispatch(user_key=SigningKey.generate()), "signature_invalid"),
        (lambda: dispatch(owner=43), "signature_invalid"),
        (lambda: dispatch(deployment_envelope=_tampered_deployment()), "signature_invalid"),
        (
            lambda: dispatch(
                deployment_envelope=_sign(USER, DEPLOYMENT_TYPE, deployment(expires_at=1))
            ),
            "expired",
        ),
        (
            lambda: dispatch(
                deployment_envelope=_sign(USER, DEPLOYMENT_TYPE, deployment(target={"node": 8}))
            ),
            "wrong_target",
        ),
        (
            lambda: dispatch(
                deployment_envelope=_sign(USER, DEPLOYMENT_TYPE, deployment(target={"farm": 4}))
            ),
            "wrong_target",
        ),
        (lambda: "not an envelope", "dispatch_signature"),
    ],
    ids=[
        "forged-by-other-key",
        "wrong-type",
        "other-node",
        "dispatch-expired",
        "user-key-unknown",
        "owner-swapped",
        "script-tampered",
        "deployment-expired",
        "other-node-target",
        "other-farm-target",
        "garbage",
    ],
)
def test_forgeries_are_refused_naming_the_check(envelope, code):
    with pytest.raises(DispatchRejected) as caught:
        verify(envelope())
    assert caught.value.code == code
    assert caught.value.message


def test_a_revoked_key_is_not_trusted():
    with pytest.raises(DispatchRejected) as caught:
        verify(dispatch(), keys=())
    assert caught.value.code == "signature_invalid"


def test_cancel_must_come_from_the_coordinator_for_this_node():
    now = int(time.time())
    payload = {"job_id": "a" * 32, "node": public_key_hex(NODE), "issued_at": now}
    good = _sign(COORDINATOR, CANCEL_TYPE, {**payload, "expires_at": now + 60})
    assert (
        verify_cancel(good, coordinator_key=COORDINATOR.verify_key, audience=AUDIENCE) == "a" * 32
    )
    forged = _sign(SigningKey.generate(), CANCEL_TYPE, {**payload, "expires_at": now + 60})
    elsewhere = _sign(
        COORDINATOR,
        CANCEL_TYPE,
        {**payload, "node": public_key_hex(SigningKey.generate()), "expires_at": now + 60},
    )
    for envelope, code in ((forged, "cancel_signature"), (elsewhere, "wrong_node")):
        with pytest.raises(DispatchRejected) as caught:
            verify_cancel(envelope, coordinator_key=COORDINATOR.verify_key, audience=AUDIENCE)
        assert caught.value.code == code
