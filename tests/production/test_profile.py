"""The production profile as a grid runs it: work and events cross ASGI workers through Redis,
and a node whose worker dies reconnects through HAProxy with nothing lost.

Worker B is whichever worker HAProxy gave the node's link; worker A is the other one. The owner
talks to worker A directly (as a client HAProxy sent there would), so every message between
the owner and the node has to cross from one worker process to the other.
"""

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from websockets.sync.client import connect

from tests.box.test_up import alive
from tests.integration.conftest import wait_for
from tests.production.conftest import Owner, Profile
from zoscli.envelope import build_payload, sign_deployment

pytestmark = [pytest.mark.integration, pytest.mark.production]

FINAL = {"succeeded", "failed", "cancelled"}
SLOW = 'log("before");\nsleep(4000);\nlog("after");\n42\n'


class Feed:
    """The owner's live feed (/ws/deployments/) on one worker, recorded in a thread."""

    def __init__(self, url: str, owner: Owner) -> None:
        self.ws = connect(
            url.replace("http://", "ws://") + "/ws/deployments/", additional_headers=owner.headers
        )
        self.events: list[dict] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                with self.lock:
                    self.events.append(json.loads(raw))
        except Exception:  # closed with the test; what it got is asserted
            return

    def of(self, deployment: int) -> list[dict]:
        with self.lock:
            return [e for e in self.events if e.get("deployment") == deployment]

    def close(self) -> None:
        self.ws.close()


def post_deployment(url: str, owner: Owner, script: str) -> requests.Response:
    """A signed deployment of the script to the owner's node, and the API's answer as it is."""
    body = build_payload(script=script, target={"node": owner.node}, name="production")
    envelope = sign_deployment(owner.key, body)
    return requests.post(
        f"{url}/api/v1/deployments", json={"envelope": envelope}, headers=owner.headers, timeout=30
    )


def submit(url: str, owner: Owner, script: str) -> int:
    response = post_deployment(url, owner, script)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def stored_events(url: str, owner: Owner, deployment: int) -> list[dict]:
    """The deployment's stored events. A 503 is asked again after its Retry-After, as a client
    does: just after a restart of PostgreSQL a worker's pooled connection may fail once."""
    deadline = time.monotonic() + 30
    while True:
        response = requests.get(
            f"{url}/api/v1/deployments/{deployment}/events", headers=owner.headers, timeout=10
        )
        if response.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(int(response.headers.get("Retry-After", "1")))
    response.raise_for_status()
    return response.json()["results"]


def link_holder(profile: Profile) -> str:
    """The worker holding the node's link: the one HAProxy keeps a session open to, the same
    answer twice in a row (an uptime report in flight is a session too, briefly)."""

    def holder() -> str | None:
        first, second = profile.sessions(), (time.sleep(0.3), profile.sessions())[1]
        held = [name for name, count in first.items() if count == 1 and second[name] == 1]
        others = [n for n in first if n not in held and (first[n] or second[n])]
        return held[0] if len(held) == 1 and not others else None

    return wait_for(holder, timeout=60, what="the node's link to be held through HAProxy")


def other_worker(profile: Profile, name: str) -> str:
    index = 1 if name == "asgi-1" else 0
    return profile.settings.worker_url(index)


def assert_complete(feed: list[dict], stored: list[dict]) -> None:
    """Every stored event reached the feed once, in order; no event is there twice (a node
    event re-sent after a reconnect is stored once); the run's story is whole."""
    seqs = [e["seq"] for e in feed]
    assert len(seqs) == len(set(seqs)), f"duplicates on the feed: {feed}"
    assert seqs == [e["seq"] for e in stored], (feed, stored)
    told = Counter((e["status"], e["log"], e["error"]) for e in stored)
    assert max(told.values()) == 1, f"an event stored twice: {stored}"
    statuses = [e["status"] for e in stored]
    for status in ("queued", "dispatched", "accepted", "running", "succeeded"):
        assert status in statuses, statuses
    assert statuses[-1] == "succeeded", statuses


def test_a_node_linked_through_one_worker_runs_what_another_worker_accepted(
    profile: Profile, owner: Owner
):
    worker_b = link_holder(profile)
    worker_a = other_worker(profile, worker_b)
    feed = Feed(worker_a, owner)
    try:
        deployment = submit(worker_a, owner, 'log("hello from B"); 6 * 7')
        wait_for(
            lambda: any(e["status"] in FINAL for e in feed.of(deployment)),
            timeout=60,
            what="the node's final event on worker A's feed",
        )
        stored = stored_events(worker_a, owner, deployment)
        assert_complete(feed.of(deployment), stored)
        assert [e["log"] for e in stored if e["status"] == "running" and e["log"]] == [
            "hello from B"
        ]
    finally:
        feed.close()


def test_killing_the_nodes_worker_moves_its_link_to_the_other_with_nothing_lost(
    profile: Profile, owner: Owner
):
    worker_b = link_holder(profile)
    worker_a = other_worker(profile, worker_b)
    feed = Feed(worker_a, owner)
    try:
        deployment = submit(worker_a, owner, SLOW)
        wait_for(
            lambda: any(e.get("log") == "before" for e in feed.of(deployment)),
            timeout=60,
            what="the script to start running",
        )
        killed = profile.pid(worker_b)
        os.kill(killed, signal.SIGKILL)
        wait_for(
            lambda: any(e["status"] in FINAL for e in feed.of(deployment)),
            timeout=90,
            what="the deployment to finish after its node's worker died",
        )
        stored = stored_events(worker_a, owner, deployment)
        assert_complete(feed.of(deployment), stored)
        assert [e["log"] for e in stored if e["status"] == "running" and e["log"]] == [
            "before",
            "after",
        ]
        assert stored[-1]["result"] == 42
        # The node came back through HAProxy, to the worker that stayed up.
        assert link_holder(profile) != worker_b
        assert not alive(killed)
    finally:
        feed.close()


def test_stopping_the_profile_leaves_nothing_behind(profile: Profile):
    pids = [entry.process.pid for entry in profile.supervisor.running if entry.process]
    profile.stop()
    assert not profile.thread.is_alive()
    assert [pid for pid in pids if alive(pid)] == []
    postgres_log = Path(profile.settings.logs / "postgres.log").read_text()
    assert "database system is shut down" in postgres_log.splitlines()[-1], postgres_log[-2000:]
