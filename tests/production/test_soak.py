"""The soak on the production profile: a steady stream of deployments for ZOS_SOAK_MINUTES (30 by
default), behind the same flag as the default profile's (tests/integration/test_soak.py):

    ZOS_SOAK=1 .venv/bin/python -m pytest tests/production/test_soak.py -s

Every process of the profile is sampled (RSS; the node as its whole tree: launcher, agent,
runners, its redis-server), and so is submit → succeeded latency through HAProxy, with the
owner's live feed open. After a warm-up (the first fifth), the last fifth must be flat against
the second: memory within 25 % + 16 MiB, p90 latency within 2x + 0.5 s; and the feed told every
deployment's end. Printed as a table, so a run is also a figure.
"""

import statistics
import time

import pytest
import requests

from tests.integration.conftest import wait_for
from tests.integration.test_process_faults import children
from tests.integration.test_soak import MINUTES, PACE, SOAK, rss_kib
from tests.production.conftest import Owner, Profile
from tests.production.test_profile import FINAL, Feed, submit

pytestmark = [pytest.mark.integration, pytest.mark.production]


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and everything under it."""
    return rss_kib(pid) + sum(tree_rss_kib(child) for child in children(pid))


def sample(profile: Profile) -> dict[str, int]:
    out = {}
    for entry in profile.supervisor.running:
        if entry.process is None:
            continue
        pid = entry.process.pid
        name = entry.component.name
        out[name] = tree_rss_kib(pid) if name == "node" else rss_kib(pid)
    return out


def final(url: str, owner: Owner, deployment: int) -> dict | None:
    found = requests.get(
        f"{url}/api/v1/deployments/{deployment}", headers=owner.headers, timeout=10
    )
    return found.json() if found.json()["status"] in FINAL else None


@pytest.mark.skipif(not SOAK, reason="the 30-minute soak runs only with ZOS_SOAK=1")
def test_memory_and_latency_stay_flat_on_the_production_profile(profile: Profile, owner: Owner):
    url = profile.settings.url
    feed = Feed(url, owner)
    samples: list[tuple[float, dict[str, int]]] = []
    latencies: list[tuple[float, float]] = []
    deployments = []
    start = time.monotonic()
    end = start + MINUTES * 60
    try:
        while time.monotonic() < end:
            submitted = time.monotonic()
            deployment = submit(url, owner, 'log("soak"); 40 + 2')
            deployments.append(deployment)
            done = wait_for(
                lambda d=deployment: final(url, owner, d),
                timeout=60,
                what="a soak deployment to finish",
                every=0.02,
            )
            assert done["status"] == "succeeded", done
            latencies.append((submitted - start, time.monotonic() - submitted))
            if not samples or time.monotonic() - start - samples[-1][0] >= 10:
                samples.append((time.monotonic() - start, sample(profile)))
            time.sleep(PACE)
        wait_for(
            lambda: all(any(e["status"] == "succeeded" for e in feed.of(d)) for d in deployments),
            timeout=60,
            what="the owner's feed to tell every deployment's end",
        )
    finally:
        feed.close()

    span = time.monotonic() - start

    def window(rows, fifth: int):
        return [r for t, r in rows if fifth * span / 5 <= t < (fifth + 1) * span / 5]

    print(f"\nproduction soak: {len(latencies)} deployments in {span / 60:.1f} min")
    print(f"{'process':<16}{'RSS 2nd fifth MiB':>20}{'RSS last fifth MiB':>20}")
    growing = []
    for name in samples[0][1]:
        early = max(s.get(name, 0) for s in window(samples, 1)) / 1024
        late = max(s.get(name, 0) for s in window(samples, 4)) / 1024
        print(f"{name:<16}{early:>20.1f}{late:>20.1f}")
        if late > early * 1.25 + 16:
            growing.append(name)
    early_p90 = statistics.quantiles(window(latencies, 1), n=10)[-1]
    late_p90 = statistics.quantiles(window(latencies, 4), n=10)[-1]
    print(f"submit → succeeded p90: {early_p90 * 1000:.0f} ms then {late_p90 * 1000:.0f} ms")
    assert not growing, f"memory grew: {growing}"
    assert late_p90 <= early_p90 * 2 + 0.5
