"""kill -9 of the control plane's processes on the production profile, during a steady stream of
deployments (ISSUE 19, Faults): a coordinator worker, an ASGI worker, the control-plane Redis and
PostgreSQL.

Each fault strikes at a seeded random moment (ZOS_FAULT_SEED; the seed is in every failure
message) once some job of the stream is running. The box's supervisor restarts what died, as
systemd would on a real grid; nobody else steps in. Redis and PostgreSQL are held down a while
first (Supervisor.held), so the outage is long enough to be seen: a deployment accepted while
Redis is down, 503s while PostgreSQL is. Afterwards, for every deployment the API
accepted: it ends succeeded, its stored history is whole (queued first, one final state last,
nothing twice, every attempt in order), and the owner's live feed told each event once; the
profile then serves a new deployment.
"""

import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from tests.box.test_up import alive
from tests.integration.conftest import wait_for
from tests.integration.test_process_faults import check_history
from tests.production.conftest import Owner, Profile
from tests.production.test_profile import (
    FINAL,
    Feed,
    assert_complete,
    link_holder,
    other_worker,
    post_deployment,
    stored_events,
    submit,
)

pytestmark = [pytest.mark.integration, pytest.mark.production]

SEED = int(os.environ.get("ZOS_FAULT_SEED", "19"))
SCRIPT = 'log("start"); sleep(1500); log("end"); 42'
EVERY = 0.7  # seconds between submissions: about what the node's runners keep up with
SETTLE = 180  # seconds every accepted deployment has to reach its final state


@dataclass
class Stream:
    """Deployments submitted one after another from a thread, until stopped: what the API
    accepted (2xx) and every other answer it gave, kept to be checked."""

    url: str
    owner: Owner
    accepted: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                answer = post_deployment(self.url, self.owner, SCRIPT)
            except requests.RequestException as exc:
                self.refused.append((0, repr(exc)))
            else:
                if answer.status_code == 201:
                    self.accepted.append(answer.json()["id"])
                else:
                    self.refused.append((answer.status_code, answer.text))
            self.stopping.wait(EVERY)

    def stop(self) -> list[int]:
        self.stopping.set()
        self.thread.join(timeout=60)
        return list(self.accepted)


def fault_moment(name: str) -> float:
    """Seconds to let the stream run before this fault strikes: random, but the same for a seed."""
    return random.Random(f"{SEED}:{name}").uniform(0.5, 3.0)


def running_job(url: str, owner: Owner, deployments: list[int]) -> bool:
    """Some deployment of the stream is running its script right now."""
    for deployment in deployments[-4:]:
        events = stored_events(url, owner, deployment)
        logs = [e["log"] for e in events]
        if "start" in logs and not any(e["status"] in FINAL for e in events):
            return True
    return False


def strike(profile: Profile, owner: Owner, stream: Stream, victim: str) -> int:
    """kill -9 the victim component at the seeded moment while a job runs; its old pid."""
    time.sleep(fault_moment(victim))
    wait_for(
        lambda: running_job(profile.settings.url, owner, stream.accepted),
        timeout=60,
        what=f"a job of the stream to be running (seed {SEED})",
    )
    pid = profile.pid(victim)
    os.kill(pid, signal.SIGKILL)
    return pid


def restarted(profile: Profile, name: str, old: int) -> None:
    """The supervisor saw the component die and started it again, and said so."""
    wait_for(
        lambda: (
            any(f"{name} restarted" in line for line in profile.output) and profile.pid(name) != old
        ),
        timeout=60,
        what=f"the supervisor to restart {name}",
    )
    assert not alive(old)


def settle(url: str, owner: Owner, deployments: list[int]) -> dict[int, list[dict]]:
    """Every accepted deployment succeeded with its history whole; their stored events."""
    assert deployments, "the stream had nothing accepted"
    histories = {}
    for deployment in deployments:

        def final(deployment: int = deployment) -> dict | None:
            found = requests.get(
                f"{url}/api/v1/deployments/{deployment}", headers=owner.headers, timeout=10
            )
            return found.json() if found.ok and found.json()["status"] in FINAL else None

        done = wait_for(final, timeout=SETTLE, what=f"deployment {deployment} to end (seed {SEED})")
        events = stored_events(url, owner, deployment)
        assert done["status"] == "succeeded", (SEED, done, events)
        # Every line the script logged was stored once: no node event lost or doubled.
        logs = [e["log"] for e in events if e["status"] == "running" and e["log"]]
        assert logs == ["start", "end"], (SEED, deployment, events)
        try:
            check_history(events)
        except AssertionError as exc:
            raise AssertionError(f"seed {SEED}, deployment {deployment}: {events}") from exc
        histories[deployment] = events
    return histories


def feed_told(feed: Feed, histories: dict[int, list[dict]]) -> None:
    """The owner's feed carried every stored event of every deployment once, in order."""
    for deployment, stored in histories.items():
        told = len(stored)
        try:
            wait_for(
                lambda deployment=deployment, told=told: len(feed.of(deployment)) >= told,
                timeout=30,
                what=f"deployment {deployment}'s events on the owner's feed (seed {SEED})",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}: told {feed.of(deployment)}, stored {stored}") from exc
        assert_complete(feed.of(deployment), stored)


def serves_again(url: str, owner: Owner) -> None:
    deployment = submit(url, owner, "6 * 7")
    wait_for(
        lambda: any(e["status"] == "succeeded" for e in stored_events(url, owner, deployment)),
        timeout=60,
        what="a new deployment to succeed after the fault",
    )


def only_clear_refusals(stream: Stream) -> None:
    """What the API did not accept during the fault, it refused in JSON, never with a 500."""
    assert all(status in (502, 503) and body.startswith("{") for status, body in stream.refused), (
        stream.refused
    )


def test_a_coordinator_worker_killed_is_restarted_and_every_deployment_ends_once(
    profile: Profile, owner: Owner
):
    url = profile.settings.url
    feed = Feed(url, owner)
    stream = Stream(url, owner)
    try:
        old = strike(profile, owner, stream, "coordinator-1")
        restarted(profile, "coordinator-1", old)
        time.sleep(2 * EVERY)  # the stream goes on past the restart
        histories = settle(url, owner, stream.stop())
        feed_told(feed, histories)
        only_clear_refusals(stream)
        serves_again(url, owner)
    finally:
        stream.stop()
        feed.close()


def test_the_nodes_asgi_worker_killed_mid_stream_loses_nothing(profile: Profile, owner: Owner):
    worker_b = link_holder(profile)
    worker_a = other_worker(profile, worker_b)
    feed = Feed(worker_a, owner)
    stream = Stream(profile.settings.url, owner)
    try:
        old = strike(profile, owner, stream, worker_b)
        restarted(profile, worker_b, old)
        time.sleep(2 * EVERY)
        histories = settle(worker_a, owner, stream.stop())
        feed_told(feed, histories)
        only_clear_refusals(stream)
        serves_again(profile.settings.url, owner)
    finally:
        stream.stop()
        feed.close()


def test_the_control_plane_redis_killed_is_restarted_and_links_and_feeds_come_back(
    profile: Profile, owner: Owner
):
    url = profile.settings.url
    stream = Stream(url, owner)
    try:
        with profile.supervisor.held("redis"):
            old = strike(profile, owner, stream, "redis")
            wait_for(lambda: not alive(old), timeout=30, what="Redis to die")
            # Accepted with Redis down: no push can wake the node's link; the catch-up poll must.
            during = submit(url, owner, SCRIPT)
        restarted(profile, "redis", old)
        time.sleep(2 * EVERY)
        settle(url, owner, [*stream.stop(), during])
        only_clear_refusals(stream)
        link_holder(profile)  # the node's link is up again, through HAProxy
        feed = Feed(url, owner)  # a feed opened now hears what happens now
        try:
            deployment = submit(url, owner, 'log("after redis"); 42')
            wait_for(
                lambda: any(e["status"] in FINAL for e in feed.of(deployment)),
                timeout=60,
                what="the new deployment's final event on the owner's feed",
            )
            assert_complete(feed.of(deployment), stored_events(url, owner, deployment))
        finally:
            feed.close()
    finally:
        stream.stop()


def unavailable(answer: requests.Response) -> bool:
    """The API's answer while its database is down: 503 with the JSON error body."""
    return answer.status_code == 503 and answer.json()["error"] == "unavailable"


def test_postgres_killed_answers_503_meanwhile_and_recovers_with_nothing_lost(
    profile: Profile, owner: Owner
):
    url = profile.settings.url
    workers = {
        name: profile.pid(name)
        for name in ("asgi-1", "asgi-2", "coordinator-1", "coordinator-2", "ledger-monitor")
    }
    feed = Feed(url, owner)
    stream = Stream(url, owner)
    try:
        with profile.supervisor.held("postgres"):
            old = strike(profile, owner, stream, "postgres")
            wait_for(lambda: not alive(old), timeout=30, what="PostgreSQL to die")
            for index in (0, 1):  # each worker, not just the one HAProxy picks
                worker = profile.settings.worker_url(index)
                listed = requests.get(
                    f"{worker}/api/v1/deployments", headers=owner.headers, timeout=10
                )
                assert unavailable(listed), (listed.status_code, listed.text)
                refused = post_deployment(worker, owner, SCRIPT)
                assert unavailable(refused), (refused.status_code, refused.text)
            wait_for(
                lambda: any(status == 503 for status, _ in stream.refused),
                timeout=30,
                what="the stream to be refused while the database is down",
            )
        restarted(profile, "postgres", old)
        time.sleep(2 * EVERY)
        histories = settle(url, owner, stream.stop())
        feed_told(feed, histories)
        only_clear_refusals(stream)
        serves_again(url, owner)
        # The workers rode it out: the same processes serve, their pools reconnected.
        assert {name: profile.pid(name) for name in workers} == workers
    finally:
        stream.stop()
        feed.close()
