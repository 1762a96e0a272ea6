"""Many rows for one user, made fast with bulk inserts: what the page-speed tests and
bench/dashboard_bench.py render the dashboard against.

Rows are shaped as the services would leave them (a deployment with its job and its events, a
node's uptime counted per hour as record_uptime counts it), without signing a thousand
envelopes one by one.
"""

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from nacl.signing import SigningKey

from coordinator.choices import JobState
from coordinator.models import Deployment, Job, JobEvent, Workload
from ledger.choices import NodeStatus
from ledger.models import Farm, Node, UptimeHour, UserKey
from ledger.uptime import HOUR, floor
from signing.keys import public_key_hex
from tests.conftest import CAPACITY

STATES = [
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.RUNNING,
    JobState.QUEUED,
    JobState.CANCELLED,
]
KINDS = ["vm", "volume", "herodb"]
SCRIPT = 'log("hello from a ZOS node");\n40 + 2\n'


@dataclass
class Seeded:
    user: object
    nodes: list[Node]
    deployments: int = 0
    workloads: int = 0


def seed_nodes(owner, *, nodes: int = 2, report_days: int = 1) -> list[Node]:
    """A farm of `owner` with online nodes, each fully reported for the last `report_days`."""
    farm = Farm.objects.create(name=f"farm-of-{owner.username}", owner=owner)
    now = timezone.now()
    made = Node.objects.bulk_create(
        Node(
            farm=farm,
            public_key=public_key_hex(SigningKey.generate()),
            status=NodeStatus.ONLINE,
            agent_version="1.0.0",
            last_seen=now,
            used_cru=1,
            used_mru=2**30,
            **CAPACITY,
        )
        for _ in range(nodes)
    )
    Node.objects.filter(pk__in=[n.pk for n in made]).update(
        registered_at=now - timedelta(days=report_days + 1)
    )
    this_hour, per_hour = floor(now, HOUR), 3600 // settings.ZOS_UPTIME_INTERVAL
    UptimeHour.objects.bulk_create(
        (
            UptimeHour(node=node, hour=hour, day=hour.date(), reports=per_hour)
            for node in made
            for hour in (this_hour - timedelta(hours=back) for back in range(report_days * 24))
        ),
        batch_size=2000,
    )
    return list(Node.objects.filter(farm=farm))


def seed_user(username: str, *, nodes: int = 2, report_days: int = 1) -> Seeded:
    """A user with a signing key and a farm of nodes (seed_nodes)."""
    user = get_user_model().objects.create_user(username, password=secrets.token_urlsafe(16))
    key = public_key_hex(SigningKey.generate())
    UserKey.objects.create(user=user, name="laptop", public_key=key)
    return Seeded(user, seed_nodes(user, nodes=nodes, report_days=report_days))


def add_deployments(seeded: Seeded, count: int, *, events: int = 3) -> None:
    """`count` more deployments of the user across its nodes, each with its job and events."""
    key = UserKey.objects.filter(user=seeded.user).first() or UserKey.objects.create(
        user=seeded.user, name="seed", public_key=public_key_hex(SigningKey.generate())
    )
    now = timezone.now()
    payloads = []
    for n in range(seeded.deployments, seeded.deployments + count):
        node = seeded.nodes[n % len(seeded.nodes)]
        payloads.append(
            (
                n,
                node,
                json.dumps(
                    {"script": SCRIPT, "target": {"node": node.pk}, "name": f"app-{n}"},
                    sort_keys=True,
                ),
            )
        )
    deployments = Deployment.objects.bulk_create(
        Deployment(
            owner=seeded.user,
            name=f"app-{n}",
            envelope={"payloadType": "application/vnd.zos.deployment.v1+json", "payload": ""},
            payload=payload,
            signer=key,
            script_sha256=hashlib.sha256(SCRIPT.encode()).hexdigest(),
            nonce=secrets.token_hex(16),
            target_node=node,
            expires_at=now + timedelta(hours=1),
            status=STATES[n % len(STATES)],
        )
        for n, node, payload in payloads
    )
    jobs = Job.objects.bulk_create(
        Job(deployment=d, node=d.target_node, state=d.status, result={"n": 42}) for d in deployments
    )
    JobEvent.objects.bulk_create(
        (
            JobEvent(job=job, attempt=1, status=job.state, log=f"line {i}", ts=now)
            for job in jobs
            for i in range(events)
        ),
        batch_size=2000,
    )
    seeded.deployments += count


def add_workloads(seeded: Seeded, count: int) -> None:
    """`count` more workloads of the user, spread over its nodes and kinds."""
    Workload.objects.bulk_create(
        Workload(
            node=seeded.nodes[n % len(seeded.nodes)],
            owner=seeded.user,
            kind=KINDS[n % len(KINDS)],
            name=f"wl-{n}",
            state="running",
            reserved={"cru": 1, "mru": 2**30},
            details={"mycelium_ip": "400::1"},
        )
        for n in range(seeded.workloads, seeded.workloads + count)
    )
    seeded.workloads += count
