"""The workloads pages through Django's test client: owner-scoped (a foreign id is 404), the
generated delete and console scripts pass the coordinator's check, and a constant number of
queries however many workloads a user has."""

import re

import pytest

from contracts.scripts import check_script
from coordinator import workloads as service
from coordinator.models import Workload
from coordinator.serializers import NAME_PATTERN
from rhai.engine import Engine
from tests.conftest import make_farm
from tests.coordinator.conftest import make_online_node, make_tenant

pytestmark = pytest.mark.django_db

GIB = 2**30


def _workload(owner, node, kind: str = "herodb", name: str = "cache", **fields) -> Workload:
    defaults = {"state": "ready", "reserved": {"mru": 64 * 2**20, "sru": GIB}, "details": {}}
    return Workload.objects.create(
        owner=owner, node=node, kind=kind, name=name, **{**defaults, **fields}
    )


def test_the_list_shows_kind_name_node_state_address_and_capacity_of_the_owners_only():
    node = make_online_node(make_farm())
    ann, bob = make_tenant("ann"), make_tenant("bob")
    _workload(ann.user, node, details={"address": "[400:1::1]:6379"})
    _workload(
        ann.user,
        node,
        kind="vm",
        name="web",
        state="running",
        reserved={"cru": 2, "mru": 2 * GIB, "sru": 10 * GIB},
        details={"mycelium_ip": "400:1::5", "image": "debian-12"},
    )
    _workload(bob.user, node, kind="volume", name="bobs-data")
    page = ann.api.get("/workloads").content.decode()
    assert "cache" in page and "[400:1::1]:6379" in page and "64 MiB memory · 1 GiB SSD" in page
    assert "web" in page and "400:1::5" in page and "2 cores · 2 GiB memory · 10 GiB SSD" in page
    assert f"node {node.pk}" in page and "running" in page
    assert "bobs-data" not in page
    assert "cache" not in bob.api.get("/workloads").content.decode()
    assert "No workloads yet" in make_tenant("cy").api.get("/workloads").content.decode()


def test_a_volume_shows_the_vm_it_is_attached_to_in_the_list_and_on_its_page():
    node = make_online_node(make_farm())
    ann = make_tenant("ann")
    held = _workload(ann.user, node, kind="volume", name="data", details={"attached_to": "web"})
    free = _workload(ann.user, node, kind="volume", name="spare")
    listing = ann.api.get("/workloads").content.decode()
    assert "attached to vm <code>web</code>" in listing
    assert ann.api.get(f"/workloads/{held.pk}").content.decode().count("<code>web</code>") == 1
    assert "free to attach or delete" in ann.api.get(f"/workloads/{free.pk}").content.decode()


def test_a_workload_page_is_its_owners_only_and_a_missing_one_is_404(client):
    node = make_online_node(make_farm())
    ann, bob = make_tenant("ann"), make_tenant("bob")
    cache = _workload(ann.user, node)
    assert ann.api.get(f"/workloads/{cache.pk}").status_code == 200
    assert bob.api.get(f"/workloads/{cache.pk}").status_code == 404
    assert ann.api.get(f"/workloads/{cache.pk + 1000}").status_code == 404
    assert client.get(f"/workloads/{cache.pk}")["Location"].startswith("/sign-in")
    assert client.get("/workloads")["Location"].startswith("/sign-in")


def test_a_vm_page_offers_its_console_and_every_page_its_delete_script():
    node = make_online_node(make_farm())
    ann = make_tenant("ann")
    vm = _workload(ann.user, node, kind="vm", name="web", details={"mycelium_ip": "400:1::5"})
    db = _workload(ann.user, node)
    vm_page = ann.api.get(f"/workloads/{vm.pk}").content.decode()
    assert 'id="refresh-console"' in vm_page and "vm_info(&quot;web&quot;)" in vm_page
    assert "vm_delete(&quot;web&quot;);" in vm_page and f'data-node="{node.pk}"' in vm_page
    db_page = ann.api.get(f"/workloads/{db.pk}").content.decode()
    assert 'id="refresh-console"' not in db_page
    assert "herodb_delete(&quot;cache&quot;);" in db_page and 'role="dialog"' not in db_page
    assert "<dialog" in db_page and 'aria-labelledby="delete-title"' in db_page


@pytest.mark.parametrize("kind", ["vm", "volume", "herodb"])
def test_the_generated_scripts_pass_the_coordinators_check(kind):
    node = make_online_node(make_farm())
    workload = _workload(make_tenant("ann").user, node, kind=kind, name="data-1")
    delete = service.delete_script(workload)
    assert f"{kind}_delete" in check_script(delete.script)
    assert delete.name == f"delete-{kind}-data-1"
    if kind == "vm":
        assert check_script(service.console_script(workload).script) == ["vm_info"]


@pytest.mark.parametrize("name", ['x"); vm_delete("other', "a\\b\nc\u00e9\U0001f600", "`${x}`"])
def test_any_name_stays_inside_its_string_literal(name):
    """Run the generated script: it deletes exactly the named workload and nothing else."""
    node = make_online_node(make_farm())
    workload = _workload(make_tenant("ann").user, node, kind="vm", name=name)
    deleted, logged = [], []
    engine = Engine()
    engine.register_fn("vm_delete", deleted.append)
    engine.register_fn("log", logged.append)
    engine.run(service.delete_script(workload).script)
    assert deleted == [name] and logged == [f"deleted vm {name}"]
    assert re.fullmatch(NAME_PATTERN, service.delete_script(workload).name)


def test_the_pages_cost_the_same_queries_for_one_workload_or_a_hundred(
    django_assert_num_queries,
):
    node = make_online_node(make_farm())
    other = make_online_node(make_farm("farm2"))
    ann = make_tenant("ann")
    first = _workload(ann.user, node, kind="vm", name="vm-0", details={"mycelium_ip": "400::1"})
    with django_assert_num_queries(3):  # session, user, the workloads with their nodes
        assert ann.api.get("/workloads").status_code == 200
    Workload.objects.bulk_create(
        Workload(
            owner=ann.user,
            node=(node, other)[i % 2],
            kind=("vm", "volume", "herodb")[i % 3],
            name=f"w-{i}",
            state="ready",
            reserved={"sru": GIB},
            details={"address": "[400::1]:6379"},
        )
        for i in range(99)
    )
    with django_assert_num_queries(3):
        page = ann.api.get("/workloads")
    assert page.status_code == 200 and page.content.decode().count('href="/workloads/') == 100
    with django_assert_num_queries(3):  # session, user, the workload with its node
        assert ann.api.get(f"/workloads/{first.pk}").status_code == 200
