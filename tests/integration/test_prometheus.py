"""A real Prometheus scrapes a real control plane's /metrics with the bearer token."""

import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import ControlPlane, free_port, wait_for

pytestmark = pytest.mark.integration

TOKEN = "scrape-me-0123456789abcdef"

SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: zos
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials: {token}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
  - job_name: zos-wrong-token
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials: not-the-token
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


@pytest.fixture
def metrics_plane(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ZOS_METRICS_TOKEN", TOKEN)
    plane = ControlPlane(var_dir=tmp_path / "var")
    plane.var_dir.mkdir()
    plane.migrate()
    plane.start()
    yield plane
    plane.kill()


@pytest.fixture
def prometheus(tmp_path: Path, metrics_plane: ControlPlane):
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    config = tmp_path / "prometheus.yml"
    config.write_text(SCRAPE_CONFIG.format(token=TOKEN, port=metrics_plane.port))
    port = free_port()
    with open(tmp_path / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=20)


def query(prometheus: str, promql: str) -> list[dict]:
    try:
        reply = requests.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=2)
    except requests.ConnectionError:
        return []
    return reply.json()["data"]["result"] if reply.ok else []


def test_prometheus_scrapes_the_grid_with_the_token_and_is_refused_without(
    metrics_plane, prometheus
):
    metrics_plane.manage(
        "shell",
        "-c",
        "from ledger.models import Farm, Node; from django.contrib.auth.models import User; "
        "farm = Farm.objects.create(name='f', owner=User.objects.create_user('o')); "
        "Node.objects.create(farm=farm, public_key='ab' * 32, status='online', cru=8, "
        "mru=16 * 2**30, used_cru=3)",
    )

    online = wait_for(
        lambda: query(prometheus, 'zos_nodes{job="zos",state="online"}'),
        timeout=60,
        what="Prometheus to scrape zos_nodes",
    )
    assert online[0]["value"][1] == "1"
    used = query(prometheus, 'zos_capacity_used{job="zos",resource="cpu"}')
    assert used[0]["value"][1] == "3"

    def statuses() -> set[str]:
        scrapes = query(prometheus, 'zos_http_requests_total{job="zos",view="ops:metrics"}')
        return {s["metric"]["status"] for s in scrapes}

    # A scrape is counted after its answer, so its own 200 shows in the next one: wait for both.
    wait_for(
        lambda: statuses() >= {"200", "401"},
        timeout=20,
        what="both the good and the refused scrapes to be counted",
    )

    up = {s["metric"]["job"]: s["value"][1] for s in query(prometheus, "up")}
    assert up == {"zos": "1", "zos-wrong-token": "0"}
