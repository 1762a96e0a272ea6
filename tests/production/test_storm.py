"""A reconnect storm on the production profile: a few hundred simulated nodes (the bench's own
simulator, bench/node_sim_bench.py, reconnecting with the agent's backoff) hold links through
HAProxy; the ASGI worker holding most of them is killed with SIGKILL. Every node must link again
through HAProxy (to the other worker, or the restarted one), the control plane must count every
link live again, and a deployment to a node whose link was dropped must succeed."""

import asyncio
import json
import os
import signal
import threading
from collections.abc import Iterator

import pytest
import requests
from nacl.signing import SigningKey

from bench.node_sim_bench import Fleet, register
from tests.integration.conftest import wait_for
from tests.production.conftest import Owner, Profile
from zoscli.envelope import build_payload, sign_deployment

pytestmark = [pytest.mark.integration, pytest.mark.production]

NODES = 300
HANDSHAKES_AT_A_TIME = 50


class RunningFleet:
    """The simulated fleet on its own event loop in a thread, so the test's calls stay plain."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.tasks = self.call(self._start())

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    async def _start(self) -> list[asyncio.Task]:
        gate = asyncio.Semaphore(HANDSHAKES_AT_A_TIME)
        return [asyncio.create_task(self.fleet.node(i, gate)) for i in range(len(self.fleet.keys))]

    async def _stop(self) -> None:
        await self.fleet.close_all()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def stop(self) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def fleet(profile: Profile, owner: Owner) -> Iterator[tuple[RunningFleet, list[int]]]:
    keys = [SigningKey.generate() for _ in range(NODES)]
    boot = json.loads((profile.settings.var_dir / "bootstrap.json").read_text())
    token = profile.manage("create_enrollment_token", str(boot["farm"]), "--uses", str(NODES))
    node_ids = register(profile.settings.port, boot["farm"], token.split()[-1], keys)
    running = RunningFleet(Fleet(profile.settings.url, keys))
    try:
        wait_for(
            lambda: running.fleet.linked == NODES,
            timeout=180,
            what=f"{NODES} simulated nodes to link",
        )
        yield running, node_ids
    finally:
        running.stop()


def live_links(profile: Profile, node_ids: list[int]) -> int:
    """How many of these nodes the control plane counts as linked (what placement asks)."""
    code = f"from coordinator.links import live_node_ids; print(len(live_node_ids({node_ids!r})))"
    return int(profile.manage("shell", "-c", code).split()[-1])


def deploy(profile: Profile, owner: Owner, node: int) -> int:
    body = build_payload(script="40 + 2", target={"node": node}, name="after-the-storm")
    envelope = sign_deployment(owner.key, body)
    response = requests.post(
        f"{profile.settings.url}/api/v1/deployments",
        json={"envelope": envelope},
        headers=owner.headers,
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def deployment_state(profile: Profile, owner: Owner, deployment: int) -> str:
    response = requests.get(
        f"{profile.settings.url}/api/v1/deployments/{deployment}",
        headers=owner.headers,
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["status"]


def test_every_link_of_a_killed_worker_comes_back_and_takes_work(
    profile: Profile, owner: Owner, fleet: tuple[RunningFleet, list[int]]
):
    running, node_ids = fleet
    sim = running.fleet
    wait_for(
        lambda: live_links(profile, node_ids) == NODES,
        timeout=60,
        what="the control plane to count every simulated link live",
    )
    sessions = profile.sessions()
    worker = max(sessions, key=sessions.get)
    assert sessions[worker] >= NODES // 4, sessions  # leastconn spread the links over both
    before = list(sim.sessions)

    os.kill(profile.pid(worker), signal.SIGKILL)

    # Every link the dead worker held is seen dropped, and then every node is linked again.
    wait_for(lambda: sim.dropped > 0, timeout=30, what="the killed worker's links to drop")
    wait_for(
        lambda: sim.linked == NODES,
        timeout=180,
        what=f"all {NODES} nodes to link again (refused or failed attempts: "
        f"{len(sim.refused.get('link-up', []))})",
    )
    relinked = [i for i, count in enumerate(sim.sessions) if count > before[i]]
    assert relinked, "no node's link was dropped"
    wait_for(
        lambda: live_links(profile, node_ids) == NODES,
        timeout=60,
        what="the control plane to count every relinked node live",
    )

    deployment = deploy(profile, owner, node_ids[relinked[0]])
    state = wait_for(
        lambda: (
            (s := deployment_state(profile, owner, deployment)) in {"succeeded", "failed"} and s
        ),
        timeout=60,
        what="the deployment to a relinked node to finish",
    )
    assert state == "succeeded"
