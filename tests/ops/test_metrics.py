"""/metrics: bearer-token protected, the grid's state read at scrape time in fixed queries."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from coordinator import services
from coordinator.inventory import record_inventory
from coordinator.models import Deployment
from ops.metrics import GRID_REGISTRY
from tests.conftest import make_farm
from tests.coordinator.conftest import deployment_payload, make_online_node, make_tenant

pytestmark = pytest.mark.django_db

TOKEN = "metrics-test-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def metrics_token(settings):
    settings.ZOS_METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_without_a_token_configured_the_endpoint_is_off(client, settings):
    settings.ZOS_METRICS_TOKEN = ""
    response = client.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404
    assert response.json()["error"] == "metrics_disabled"
    assert "ZOS_METRICS_TOKEN" in response.json()["message"]


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Token {TOKEN}", TOKEN])
def test_a_wrong_or_missing_bearer_token_is_refused(client, metrics_token, header):
    headers = {"Authorization": header} if header else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"zos_nodes" not in response.content


def test_scrape_reports_the_grid_requests_and_job_timings(client, metrics_token):
    farm = make_farm()
    node = make_online_node(farm, used_cru=1, used_mru=2**30)
    tenant = make_tenant("alice")
    reply = tenant.submit(deployment_payload(target={"node": node.pk}))
    deployment = Deployment.objects.get(pk=reply.json()["id"])
    job = deployment.job
    services.pending_dispatches(node.pk)
    before = scrape(client)
    services.job_accepted(node_id=node.pk, job_id=job.uuid.hex, attempt=1)
    record_inventory(
        node.pk,
        [{"kind": "vm", "name": "web", "owner": tenant.user.pk, "state": "running"}],
    )

    after = scrape(client)

    assert after[("zos_nodes", (("state", "online"),))] == 1
    assert after[("zos_jobs", (("state", "accepted"),))] == 1
    assert after[("zos_deployments", (("state", "accepted"),))] == 1
    assert after[("zos_node_links_connected", ())] == 1
    assert after[("zos_capacity_total", (("resource", "cpu"),))] == 4
    assert after[("zos_capacity_used", (("resource", "memory"),))] == 2**30
    node_cpu = (("farm", str(farm.pk)), ("node", str(node.pk)), ("resource", "cpu"))
    assert after[("zos_node_used", node_cpu)] == 1
    assert after[("zos_workloads", (("kind", "vm"),))] == 1
    accepted = ("zos_job_submit_to_accepted_seconds_count", ())
    assert after[accepted] == before.get(accepted, 0) + 1
    submits = (
        "zos_http_requests_total",
        (("method", "POST"), ("status", "201"), ("view", "deployment-list")),
    )
    assert after[submits] >= 1
    assert ("zos_http_request_duration_seconds_count", (("view", "ops:metrics"),)) in after


def test_scrape_time_gauges_cost_the_same_queries_for_a_bigger_grid(django_assert_num_queries):
    farm = make_farm()
    make_online_node(farm)
    with django_assert_num_queries(7):
        list(GRID_REGISTRY.collect())
    for _ in range(5):
        make_online_node(farm)
    with django_assert_num_queries(7):
        families = list(GRID_REGISTRY.collect())
    nodes = next(f for f in families if f.name == "zos_nodes")
    assert {s.labels["state"]: s.value for s in nodes.samples}["online"] == 6


WORKER = """
import django
django.setup()
from ops import metrics
metrics.UPTIME_REPORTS.inc()
"""
SCRAPER = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from ops import metrics
print(metrics.exposition().decode())
"""


def test_multiprocess_mode_sums_every_workers_counters(tmp_path):
    """Several ASGI workers: each writes its counters to PROMETHEUS_MULTIPROC_DIR, and a scrape
    answered by any one of them reports the sum (plus the database's gauges, once)."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "ZOS_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "grid.settings",
    }
    env.pop("DATABASE_URL", None)
    for _ in range(2):
        subprocess.run([sys.executable, "-c", WORKER], env=env, cwd=ROOT, check=True, timeout=60)
    scraped = subprocess.run(
        [sys.executable, "-c", SCRAPER],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
    assert "zos_uptime_reports_total 2.0" in scraped.splitlines()
    assert scraped.count("# TYPE zos_nodes gauge") == 1
