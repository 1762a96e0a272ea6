"""Deployments and their events made inside a running control plane's environment, as a node's
link would make them: run with `manage.py shell -c` (ControlPlane.manage), printing JSON.

Used by the browser tests when no agent runs: the coordinator's own services record the events
and push them to the owner's feed through the shared Redis channel layer.
"""

import json
import secrets
import time

from nacl.signing import SigningKey

from contracts.payload_types import DEPLOYMENT_TYPE
from signing.dsse import sign_envelope
from signing.keys import public_key_hex


def submit(username: str, script: str = 'log("hi")') -> None:
    """A deployment of `username` on a fresh online node (its link down: the job waits)."""
    from django.contrib.auth import get_user_model

    from coordinator import services
    from ledger.choices import NodeStatus
    from ledger.models import Farm, Node
    from ledger.services import add_user_key
    from tests.conftest import CAPACITY

    user = get_user_model().objects.get(username=username)
    key = SigningKey.generate()
    add_user_key(user=user, name=f"feed-{secrets.token_hex(3)}", public_key=public_key_hex(key))
    farm = Farm.objects.create(name=f"farm-{secrets.token_hex(4)}", owner=user)
    node = Node.objects.create(
        farm=farm,
        public_key=public_key_hex(SigningKey.generate()),
        status=NodeStatus.ONLINE,
        **CAPACITY,
    )
    now = int(time.time())
    payload = {
        "script": script,
        "target": {"node": node.pk},
        "nonce": secrets.token_hex(16),
        "issued_at": now,
        "expires_at": now + 3600,
        "name": "live",
    }
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    deployment = services.submit_deployment(
        owner=user, envelope=sign_envelope(key, DEPLOYMENT_TYPE, body)
    )
    print(json.dumps({"id": deployment.pk, "job": deployment.job.uuid.hex, "node": node.pk}))


def report(job: str, node: int, events: list[dict]) -> None:
    """The node's side: take the job, then report `events` (status, log, result, error)."""
    from coordinator import services

    services.pending_dispatches(node)
    services.job_accepted(node_id=node, job_id=job, attempt=1)
    for event in events:
        message = {
            "id": f"{time.time_ns()}-0",
            "job_id": job,
            "attempt": 1,
            "ts": time.time(),
            **event,
        }
        services.record_node_event(node_id=node, message=message)
