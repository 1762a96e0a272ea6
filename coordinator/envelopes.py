"""Dispatch and cancel envelopes, signed with the coordinator key (docs/deployments.md §2)."""

import json
import time

from contracts.payload_types import CANCEL_TYPE, DISPATCH_TYPE
from coordinator.keys import coordinator_signing_key
from coordinator.models import Job
from signing.dsse import sign_envelope

DISPATCH_LIFETIME = 3600


def _encode(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")


def dispatch_envelope(job: Job) -> dict:
    now = int(time.time())
    deployment = job.deployment
    return sign_envelope(
        coordinator_signing_key(),
        DISPATCH_TYPE,
        _encode(
            {
                "job_id": job.uuid.hex,
                "attempt": job.attempt,
                "node": job.node.public_key,
                "owner": deployment.owner_id,
                "deployment": deployment.envelope,
                "timeout": job.timeout,
                "issued_at": now,
                "expires_at": now + DISPATCH_LIFETIME,
            }
        ),
    )


def cancel_envelope(job: Job) -> dict:
    now = int(time.time())
    return sign_envelope(
        coordinator_signing_key(),
        CANCEL_TYPE,
        _encode(
            {
                "job_id": job.uuid.hex,
                "node": job.node.public_key,
                "issued_at": now,
                "expires_at": now + DISPATCH_LIFETIME,
            }
        ),
    )
