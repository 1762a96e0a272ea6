"""Deployment submits through the ASGI application, as a worker serves them
(coordinator/submit_ingest.py).

The submit path in front of Django must store and answer a token submit exactly as the DRF view
does — the reply, every refusal — and leave every request it does not plainly own (a session, a
token it does not find, an odd body) to Django's own answer.
"""

import asyncio
import json

import pytest
from rest_framework.authtoken.models import Token

from accounts.services import create_api_token
from coordinator.models import Deployment, JobEvent
from coordinator.submit_ingest import PATH
from ledger.choices import NodeStatus
from tests.coordinator.conftest import deployment_payload, sign
from tests.ledger.asgi_client import asgi_answer

# The ingest writes from its own threads: its rows must be committed to be seen.
pytestmark = pytest.mark.django_db(transaction=True)

# What differs between two deployments submitted alike.
VARYING = {"id", "created", "updated", "expires_at"}


def asgi_post(body: bytes, headers: dict[str, str]) -> dict:
    """One POST to the submit path through grid.asgi: status, headers and the JSON body."""
    return asyncio.run(_post(body, headers))


async def _post(body: bytes, headers: dict[str, str]) -> dict:
    headers = {"Host": "127.0.0.1", "Content-Length": str(len(body)), **headers}
    return await asgi_answer("POST", PATH, body, headers)


def by_token(token: str, envelope: dict, **extra_headers) -> dict:
    body = json.dumps({"envelope": envelope}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
    return asgi_post(body, {**headers, **extra_headers})


def by_django(client, token: str, envelope: dict):
    """The same request through Django and the DRF view (the test client skips grid.asgi)."""
    return client.post(
        PATH,
        {"envelope": envelope},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )


def taken_by_ingest(answer: dict) -> bool:
    return b"allow" not in answer["headers"]  # DRF's header on every answer of its views


@pytest.fixture
def token(alice) -> str:
    return Token.objects.create(user=alice.user).key


def test_a_token_submit_is_stored_and_answered_as_the_api_does(client, alice, online_node, token):
    answer = by_token(token, sign(alice.key, deployment_payload(target={"node": online_node.pk})))
    assert answer["status"] == 201, answer["json"]
    assert taken_by_ingest(answer)
    assert answer["headers"][b"content-type"] == b"application/json"
    deployment = Deployment.objects.get(pk=answer["json"]["id"])
    assert (deployment.owner, deployment.status) == (alice.user, "dispatched")
    assert list(JobEvent.objects.order_by("id").values_list("status", flat=True)) == [
        "queued",
        "dispatched",
    ]

    drf = by_django(
        client, token, sign(alice.key, deployment_payload(target={"node": online_node.pk}))
    )
    assert drf.status_code == 201 and drf.has_header("Allow")
    ours, theirs = answer["json"], drf.json()
    assert ours.keys() == theirs.keys()
    assert {k: v for k, v in ours.items() if k not in VARYING | {"job"}} == {
        k: v for k, v in theirs.items() if k not in VARYING | {"job"}
    }
    assert ours["job"].keys() == theirs["job"].keys()
    assert ours["job"]["state"] == theirs["job"]["state"] == "dispatched"


def test_a_named_api_token_takes_the_same_path(alice, online_node):
    _, secret = create_api_token(user=alice.user, name="ci")
    answer = by_token(secret, sign(alice.key, deployment_payload(target={"node": online_node.pk})))
    assert answer["status"] == 201 and taken_by_ingest(answer)
    assert Deployment.objects.get().owner == alice.user


def refusals(alice, mallory, node) -> dict[str, dict]:
    """One signed envelope per refusal the service makes (the reused nonce's was used once)."""
    used = deployment_payload(target={"node": node.pk})
    return {
        "unknown_node": sign(alice.key, deployment_payload(target={"node": node.pk + 99})),
        "signed_by_another": sign(mallory.key, deployment_payload(target={"node": node.pk})),
        "script_parse": sign(alice.key, deployment_payload("let x = ;", target={"node": node.pk})),
        "expired": sign(
            alice.key, deployment_payload(target={"node": node.pk}, expires_at=1, issued_at=0)
        ),
        "nonce_reused": sign(alice.key, used),
        "used_once": sign(alice.key, used),
    }


def test_every_refusal_is_the_api_answer(client, alice, mallory, online_node, token):
    envelopes = refusals(alice, mallory, online_node)
    assert by_token(token, envelopes.pop("used_once"))["status"] == 201
    for case, envelope in envelopes.items():
        ours = by_token(token, envelope)
        theirs = by_django(client, token, envelope)
        assert taken_by_ingest(ours), case
        assert (ours["status"], ours["json"]) == (theirs.status_code, theirs.json()), case
        assert ours["status"] in (401, 403, 404, 409, 400), case
    online_node.status = NodeStatus.OFFLINE
    online_node.save()
    envelope = sign(alice.key, deployment_payload(target={"node": online_node.pk}))
    ours, theirs = by_token(token, envelope), by_django(client, token, envelope)
    assert (ours["status"], ours["json"]["error"]) == (409, "node_not_online")
    assert (ours["status"], ours["json"]) == (theirs.status_code, theirs.json())
    assert Deployment.objects.count() == 1


@pytest.mark.parametrize(
    "case",
    ["unknown token", "session cookie", "other keys", "not JSON", "envelope not an object"],
)
def test_what_it_does_not_take_gets_djangos_answer(alice, online_node, token, case):
    envelope = sign(alice.key, deployment_payload(target={"node": online_node.pk}))
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
    body = json.dumps({"envelope": envelope}).encode()
    if case == "unknown token":
        headers["Authorization"] = "Token " + "0" * 40
    elif case == "session cookie":
        headers["Cookie"] = "sessionid=nothing"
    elif case == "other keys":
        body = json.dumps({"envelope": envelope, "note": "x"}).encode()
    elif case == "not JSON":
        body = b'{"envelope": '
    else:
        body = b'{"envelope": "text"}'
    answer = asgi_post(body, headers)
    assert not taken_by_ingest(answer), answer
    expected = {
        "unknown token": (401, "authentication_failed"),
        "session cookie": (201, None),
        "other keys": (201, None),
        "not JSON": (400, "malformed_json"),
        "envelope not an object": (400, None),
    }[case]
    assert answer["status"] == expected[0], answer["json"]
    if expected[1]:
        assert answer["json"]["error"] == expected[1]
