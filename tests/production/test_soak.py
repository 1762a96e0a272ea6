"""The soak on the production profile: a steady stream of deployments for ZOS_SOAK_MINUTES (30 by
default), behind the same flag as the default profile's (tests/integration/test_soak.py):

    ZOS_SOAK=1 .venv/bin/python -m pytest tests/production/test_soak.py -s

Every process of the profile is sampled (RSS; the node as its whole tree: launcher, agent,
runners, its redis-server), and so is submit → succeeded latency through HAProxy, with the
owner's live feed open. After a warm-up (the first fifth), the last fifth must be flat against
the second (tests/soak_helpers.py has the rule); and the feed told every deployment's end.
Printed as a table, so a run is also a figure.
"""

import time

import pytest
import requests

from tests.integration.conftest import wait_for
from tests.integration.test_process_faults import children
from tests.production.conftest import Owner, Profile
from tests.production.test_profile import FINAL, Feed, submit
from tests.soak_helpers import SKIP_REASON, SOAK, Soak, rss_kib

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


@pytest.mark.skipif(not SOAK, reason=SKIP_REASON)
def test_memory_and_latency_stay_flat_on_the_production_profile(profile: Profile, owner: Owner):
    url = profile.settings.url
    feed = Feed(url, owner)
    deployments = []
    soak = Soak()
    try:
        while soak.running():
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
            soak.finished(submitted, lambda: sample(profile))
        wait_for(
            lambda: all(any(e["status"] == "succeeded" for e in feed.of(d)) for d in deployments),
            timeout=60,
            what="the owner's feed to tell every deployment's end",
        )
    finally:
        feed.close()
    soak.assert_flat("production soak")
