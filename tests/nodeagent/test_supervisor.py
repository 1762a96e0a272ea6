"""The supervisor on its own: hand-made dispatches in, the node's Redis and replies out."""

import threading
import time

import pytest
from nacl.signing import SigningKey

from contracts.payload_types import CANCEL_TYPE
from nodeagent.identity import load_or_create_identity
from nodeagent.jobstore import JobStore
from nodeagent.supervisor import Supervisor
from signing.keys import public_key_hex
from tests.nodeagent.test_verification import (
    AUDIENCE,
    COORDINATOR,
    DEPLOYMENT_TYPE,
    NODE,
    USER,
    _sign,
    deployment,
    dispatch,
)


class Ledger:
    """Stands in for the ledger's two read endpoints the supervisor uses."""

    def __init__(self) -> None:
        self.keys = [USER]
        self.key_requests = 0

    def request(self, method: str, path: str) -> dict:
        assert (method, path) == ("GET", "/api/v1/coordinator/key")
        return {"public_key": public_key_hex(COORDINATOR)}

    def user_keys(self, owner: int) -> dict:
        self.key_requests += 1
        keys = self.keys if owner == 42 else []
        return {"keys": [{"public_key": public_key_hex(k), "revoked": False} for k in keys]}


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def supervisor(store: JobStore, ledger: Ledger, tmp_path) -> Supervisor:
    identity = load_or_create_identity(tmp_path / "data")
    return Supervisor(
        ws_url="ws://127.0.0.1:9/ws/node/",
        identity=identity,
        store=store,
        client=ledger,
        audience=lambda: AUDIENCE,
        stop=threading.Event(),
    )


def _queued(store: JobStore) -> int:
    return store.redis.xlen(store.prefix + "jobs")


def test_a_verified_dispatch_is_queued_exactly_once(supervisor, store):
    envelope = dispatch()
    assert supervisor.handle_dispatch(envelope) == {
        "type": "accepted",
        "job_id": "f" * 32,
        "attempt": 1,
    }
    again = supervisor.handle_dispatch(envelope)  # re-sent after a reconnect
    assert again["type"] == "accepted"
    assert _queued(store) == 1
    state = store.job_state("f" * 32)
    assert state["state"] == "queued"
    assert state["signer"] == public_key_hex(USER)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: dispatch(coordinator_key=SigningKey.generate()), "dispatch_signature"),
        (lambda: dispatch(node=public_key_hex(SigningKey.generate())), "wrong_node"),
        (lambda: dispatch(user_key=SigningKey.generate()), "signature_invalid"),
        (
            lambda: dispatch(
                deployment_envelope=_sign(USER, DEPLOYMENT_TYPE, deployment(script="let = ;"))
            ),
            "script_parse",
        ),
        (
            lambda: dispatch(
                deployment_envelope=_sign(USER, DEPLOYMENT_TYPE, deployment(script="rm_rf()"))
            ),
            "unknown_function",
        ),
    ],
    ids=["forged", "other-node", "unknown-user-key", "bad-script", "outside-catalog"],
)
def test_refused_dispatches_queue_nothing_and_say_why(supervisor, store, make, code, caplog):
    reply = supervisor.handle_dispatch(make())
    assert reply["type"] == "rejected"
    assert reply["error"] == code
    assert reply["message"]
    assert _queued(store) == 0
    assert code in caplog.text


def test_a_nonce_cannot_be_replayed_under_another_job_id(supervisor, store):
    user_envelope = _sign(USER, DEPLOYMENT_TYPE, deployment())
    first = supervisor.handle_dispatch(dispatch(deployment_envelope=user_envelope))
    replay = supervisor.handle_dispatch(
        dispatch(deployment_envelope=user_envelope, job_id="e" * 32)
    )
    assert first["type"] == "accepted"
    assert (replay["type"], replay["error"]) == ("rejected", "nonce_replayed")
    assert _queued(store) == 1


def test_a_newly_registered_user_key_is_fetched_again(supervisor, ledger, store):
    late_key = SigningKey.generate()
    supervisor.user_keys.get(42)  # cached without the new key
    ledger.keys = [USER, late_key]
    reply = supervisor.handle_dispatch(dispatch(user_key=late_key))
    assert reply["type"] == "accepted"
    assert ledger.key_requests == 2


def test_unregistered_node_refuses_everything(store, ledger, tmp_path):
    lonely = Supervisor(
        ws_url="ws://127.0.0.1:9/ws/node/",
        identity=load_or_create_identity(tmp_path / "data"),
        store=store,
        client=ledger,
        audience=lambda: None,
        stop=threading.Event(),
    )
    assert lonely.handle_dispatch(dispatch())["error"] == "not_registered"


def _cancel(job_id: str, *, key: SigningKey = COORDINATOR) -> dict:
    now = int(time.time())
    payload = {"job_id": job_id, "node": public_key_hex(NODE), "issued_at": now}
    return _sign(key, CANCEL_TYPE, {**payload, "expires_at": now + 60})


def test_a_cancel_is_stored_then_acknowledged_with_the_jobs_state_here(supervisor, store):
    supervisor.handle_dispatch(dispatch())
    ack = supervisor.handle_cancel(_cancel("f" * 32))
    assert ack == {"type": "cancel_ack", "job_id": "f" * 32, "state": "cancelled"}
    assert store.cancel_requested("f" * 32)


def test_a_cancel_for_a_job_never_seen_here_is_acknowledged_too(supervisor, store):
    # The dispatch was lost with the link: the coordinator must hear it can stop re-sending.
    assert supervisor.handle_cancel(_cancel("c" * 32)) == {
        "type": "cancel_ack",
        "job_id": "c" * 32,
        "state": None,
    }


def test_a_forged_cancel_is_neither_stored_nor_acknowledged(supervisor, store):
    supervisor.handle_dispatch(dispatch())
    assert supervisor.handle_cancel(_cancel("f" * 32, key=SigningKey.generate())) is None
    assert not store.cancel_requested("f" * 32)
