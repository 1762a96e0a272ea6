"""The operator's admin actions and pages: cancel, retry, roll out, make current, drain and
undrain, the node page."""

import pytest

from coordinator import services
from coordinator.choices import JobState
from coordinator.inventory import record_inventory
from coordinator.links import link_up
from coordinator.models import Deployment, Job
from ledger.choices import AuditKind, NodeStatus
from ledger.models import AgentRelease, AuditEntry, BootImage, Farm, Node
from tests.conftest import NodeClient, make_farm, make_user
from tests.coordinator.conftest import deployment_payload, make_online_node, make_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(make_user("op", staff=True))
    return client


@pytest.fixture
def node(db):
    return make_online_node(make_farm("farm-a"))


def deploy(tenant, node, name: str = "d") -> Deployment:
    response = tenant.submit(deployment_payload(target={"node": node.pk}, name=name))
    assert response.status_code == 201, response.json()
    return Deployment.objects.get(pk=response.json()["id"])


def act(client, model: str, action: str, ids: list[int], **extra):
    return client.post(
        f"/admin/{model}/",
        {"action": action, "_selected_action": ids, **extra},
        follow=True,
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_cancel_ends_an_undelivered_job_and_stores_a_durable_cancel_for_a_delivered_one(
    staff, node
):
    tenant = make_tenant("alice")
    waiting = deploy(tenant, node, "waiting")
    delivered = deploy(tenant, node, "delivered")
    services.pending_dispatches(node.pk)  # both sent to the node ...
    Job.objects.filter(deployment=waiting).update(dispatched_at=None)  # ... one never was

    page = act(staff, "coordinator/deployment", "cancel", [waiting.pk, delivered.pk])

    assert "2 deployment(s) cancelled" in messages_of(page)
    waiting.refresh_from_db()
    assert waiting.status == JobState.CANCELLED
    assert waiting.job.events.last().log == "cancelled by operator op before any node had it"
    job = Job.objects.get(deployment=delivered)
    assert job.state == JobState.CANCELLING and job.cancel_requested_at is not None
    assert [job_id for job_id, _ in services.pending_cancels(node.pk)] == [job.uuid.hex]


def test_retry_starts_the_next_attempt_now_and_refuses_finished_jobs(staff, node):
    tenant = make_tenant("alice")
    stuck = deploy(tenant, node, "stuck")
    services.pending_dispatches(node.pk)
    done = deploy(tenant, node, "done")
    services.cancel_deployment(deployment=done)

    page = act(staff, "coordinator/deployment", "retry", [stuck.pk, done.pk])

    job = Job.objects.get(deployment=stuck)
    assert (job.state, job.attempt) == (JobState.DISPATCHED, 2)
    assert job.events.filter(status=JobState.RETRYING, error="retried by operator op").exists()
    assert "1 deployment(s) retried" in messages_of(page)
    assert any(f"#{done.pk}: deployment {done.pk} is cancelling" in m for m in messages_of(page))
    assert Job.objects.get(deployment=done).attempt == 1


def test_roll_out_asks_for_the_release_then_sets_it_on_the_selected_farms(staff):
    farms = [make_farm("a"), make_farm("b"), make_farm("c")]
    AgentRelease.objects.create(version="1.2.0", sha256="0" * 64, size=1, envelope={})
    ids = [farms[0].pk, farms[1].pk]

    ask = act(staff, "ledger/farm", "roll_out_release", ids)
    assert ask.status_code == 200 and b'<option value="1.2.0">' in ask.content
    assert not Farm.objects.exclude(desired_agent_version="").exists()

    refused = act(staff, "ledger/farm", "roll_out_release", ids, apply="1", release="9.9.9")
    assert b"Select a valid choice" in refused.content

    done = act(staff, "ledger/farm", "roll_out_release", ids, apply="1", release="1.2.0")
    assert "2 farm(s) now run agent 1.2.0" in messages_of(done)
    assert dict(Farm.objects.values_list("name", "desired_agent_version")) == {
        "a": "1.2.0",
        "b": "1.2.0",
        "c": "",
    }


def test_make_current_switches_the_boot_image(staff):
    old = BootImage.objects.create(version="1.0.0", is_current=True)
    new = BootImage.objects.create(version="1.1.0")
    page = act(staff, "ledger/bootimage", "make_current", [new.pk])
    assert "1.1.0 is now the current boot image" in messages_of(page)
    assert list(BootImage.objects.filter(is_current=True)) == [new]
    assert act(staff, "ledger/bootimage", "make_current", [old.pk, new.pk]).status_code == 200
    assert list(BootImage.objects.filter(is_current=True)) == [new]  # two at once: refused


def test_drain_moves_waiting_farm_jobs_off_the_nodes_and_undrain_lets_work_back(staff):
    farm = make_farm("farm-d")
    # The scheduler's first choice, its link down: the job waits there, not sent.
    roomy = make_online_node(farm, linked=False, mru=64 * 2**30)
    tenant = make_tenant("alice")
    waiting = tenant.submit(deployment_payload(target={"farm": farm.pk}, name="waiting"))
    assert Job.objects.get(deployment_id=waiting.json()["id"]).node == roomy
    other = make_online_node(farm, mru=8 * 2**30)

    page = act(staff, "ledger/node", "drain", [roomy.pk])

    assert "1 node(s) drained" in messages_of(page)
    job = Job.objects.get(deployment_id=waiting.json()["id"])
    assert (job.node, job.state, job.attempt) == (other, JobState.DISPATCHED, 1)
    entry = AuditEntry.objects.get(kind=AuditKind.NODE_DRAINED, node=roomy)
    assert entry.actor == "user:op" and "1 waiting farm job(s) moved" in entry.message
    later = tenant.submit(deployment_payload(target={"farm": farm.pk}, name="later"))
    assert Job.objects.get(deployment_id=later.json()["id"]).node == other
    drained = staff.get("/admin/ledger/node/", {"drained_at__isnull": "False"}).content.decode()
    assert "1 node" in drained and f"/admin/ledger/node/{roomy.pk}/change/" in drained

    page = act(staff, "ledger/node", "undrain", [roomy.pk])

    assert "1 node(s) undrained" in messages_of(page)
    assert AuditEntry.objects.get(kind=AuditKind.NODE_UNDRAINED, node=roomy).actor == "user:op"
    link_up(roomy.pk, "test-session")  # the node came back too
    again = tenant.submit(deployment_payload(target={"farm": farm.pk}, name="again"))
    assert Job.objects.get(deployment_id=again.json()["id"]).node == roomy


def test_drain_and_undrain_name_each_node_they_refuse_and_go_on_with_the_rest(staff, node):
    pending = make_online_node(node.farm)
    Node.objects.filter(pk=pending.pk).update(status=NodeStatus.PENDING)

    page = act(staff, "ledger/node", "drain", [node.pk, pending.pk])

    assert (
        f"node {pending.pk} is pending; only an approved node (online, degraded or offline) "
        "can be drained: approve it first" in messages_of(page)
    )
    assert "1 node(s) drained" in messages_of(page)
    again = act(staff, "ledger/node", "drain", [node.pk])
    assert f"node {node.pk} is already drained" in messages_of(again)
    assert "0 node(s) drained" in messages_of(again)
    refused = act(staff, "ledger/node", "undrain", [pending.pk])
    assert f"node {pending.pk} is not drained" in messages_of(refused)
    assert Node.objects.get(pk=node.pk).drained and not Node.objects.get(pk=pending.pk).drained


def test_node_page_shows_workloads_uptime_health_history_link_and_log_panel(staff, client, node):
    tenant = make_tenant("alice")
    deploy(tenant, node)
    record_inventory(
        node.pk, [{"kind": "vm", "name": "web", "owner": tenant.user.pk, "state": "running"}]
    )
    reporter = NodeClient(client, key=node.signing_key)
    for health in ([], ["redis_down"], ["redis_down"], []):
        assert reporter.uptime(node.pk, health=health).status_code == 200

    page = staff.get(f"/admin/ledger/node/{node.pk}/change/").content.decode()

    assert "web" in page and "running" in page  # the workload inline
    assert "Uptime history" in page
    history = page.split("Health history")[1].split("</table>")[0]
    assert history.count("redis_down") == 1 and history.count("healthy") == 2  # changes only
    assert "up since" in page
    assert f'data-url="/operator/nodes/{node.pk}/logs"' in page
    assert "ops/nodelog.js" in page


def test_lists_filter_and_search_where_an_operator_looks(staff, node):
    tenant = make_tenant("alice")
    make_tenant("bob")
    deploy(tenant, node, "alice-app")
    other = make_online_node(make_farm("farm-b"))
    Node.objects.filter(pk=other.pk).update(status="offline")

    by_owner = staff.get("/admin/coordinator/deployment/", {"q": "alice"}).content.decode()
    assert "alice-app" in by_owner
    assert (
        "alice-app"
        not in staff.get("/admin/coordinator/deployment/", {"q": "bob"}).content.decode()
    )
    jobs = staff.get("/admin/coordinator/job/", {"state__exact": "dispatched"})
    assert jobs.status_code == 200 and "1 job" in jobs.content.decode()
    assert (
        "0 jobs"
        in staff.get("/admin/coordinator/job/", {"state__exact": "failed"}).content.decode()
    )
    offline = staff.get("/admin/ledger/node/", {"status__exact": "offline"}).content.decode()
    assert "1 node" in offline
    by_farm = staff.get("/admin/ledger/node/", {"q": "farm-b"}).content.decode()
    assert "1 node" in by_farm


def test_non_staff_cannot_reach_the_actions(client, node):
    client.force_login(make_user("mallory"))
    deployment = deploy(make_tenant("alice"), node)
    response = act(client, "coordinator/deployment", "cancel", [deployment.pk])
    assert b"cancelled" not in response.content
    assert Deployment.objects.get(pk=deployment.pk).status == JobState.DISPATCHED
    act(client, "ledger/node", "drain", [node.pk])
    assert not Node.objects.get(pk=node.pk).drained
