"""The node's function tables accept exactly the spec fields the catalog lists, apply its defaults
and enforce its ranges -- checked through the real bindings in a real Rhai engine.

No pool, hypervisor or Redis: the SALs are stand-ins and the registry records the workload a
create would reserve and stops there, so what reaches it is what the node checked and
defaulted.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from contracts.catalog import CATALOG, CatalogFunction
from nodeagent.functions import IMPLEMENTATIONS, MAX_SLEEP_MS, bind
from nodeagent.functions.context import JobContext
from nodeagent.functions.gateways import GatewayFunctions
from nodeagent.functions.registry import Workload, WorkloadError
from nodeagent.functions.resources import NodeResources
from nodeagent.functions.vms import VmFunctions
from nodeagent.functions.workloads import WorkloadFunctions
from rhai import Engine, RhaiError
from sal.caddy import Caddy
from sal.images import Image, ImageError

REACHED = "reached the registry"

# A valid value for every spec field; the test below insists it covers the catalog exactly.
SAMPLES: dict[str, dict[str, Any]] = {
    "vm_create": {
        "name": "web",
        "image": "alpine",
        "kind": "container",
        "cpus": 2,
        "memory_mb": 1024,
        "disk_gb": 3,
        "ssh_keys": ["ssh-ed25519 AAAA me@laptop"],
        "mycelium": False,
        "env": {"MODE": "prod"},
        "entrypoint": ["/bin/sh", "-c", "true"],
        "volumes": [{"name": "data", "mount": "/data"}],
    },
    "herodb_create": {"name": "cache", "memory_mb": 64, "disk_gb": 2, "password": "secret"},
    "gateway_name_create": {"name": "blog", "backends": ["[400::1]:80"], "tls": False},
    "gateway_fqdn_create": {
        "fqdn": "www.example.org",
        "backends": ["[400::1]:80", "[400::2]:80"],
        "tls": False,
    },
}
# runcmd is for kind "vm" and entrypoint for "container": the VM sample covers the one the
# container sample cannot have.
VM_SAMPLE = {
    **{k: v for k, v in SAMPLES["vm_create"].items() if k != "entrypoint"},
    "image": "debian-12",
    "kind": "vm",
    "runcmd": ["busybox httpd -p 80 -h /srv"],
}
REQUIRED_ONLY = {
    "vm_create": {"name": "web", "image": "debian-12", "mycelium": False},
    "herodb_create": {"name": "cache"},
    "gateway_name_create": {"name": "blog", "backends": "[400::1]:80"},
    "gateway_fqdn_create": {"fqdn": "www.example.org", "backends": ["[400::1]:80"]},
}
# The node is a gateway (what the ledger's uptime reply said, kept in its Redis).
GATEWAY = json.dumps({"domain": "gw.test", "addresses": [], "any_backend": False})
MAP_FUNCTIONS = [name for name, f in CATALOG.items() if f.spec_fields]


class Images:
    """An image cache with one VM image (minimum disk 2 GiB) and one container image."""

    def __init__(self) -> None:
        self.images = {
            "debian-12": Image("debian-12", Path("/i"), Path("/k"), None, None, "", 2),
            "alpine": Image("alpine", Path("/a"), None, None, None, "", 1, rootfs=Path("/r")),
        }

    def get(self, name: str) -> Image:
        if name not in self.images:
            raise ImageError(f"no image {name}")
        return self.images[name]

    def list(self) -> list[Image]:
        return list(self.images.values())


@dataclass
class Registry:
    """Records what a create would reserve, then stops it there."""

    reserved: list[Workload] = field(default_factory=list)
    redis: Any = field(
        default_factory=lambda: SimpleNamespace(
            get=lambda key: GATEWAY if key == "zos:gateway" else None
        )
    )

    def require(self, owner: int, kind: str, name: str) -> Workload:
        """Every volume a sample names exists, ready (vm_create checks before reserving)."""
        return Workload(owner, kind, name, {"size_gb": 1}, {}, state="ready")

    def reserve(self, workload: Workload) -> tuple[Workload, bool]:
        self.reserved.append(workload)
        raise WorkloadError(REACHED)


class Events:
    def log(self, job_id: str, message: str) -> None:
        return None

    def cancel_requested(self, job_id: str) -> bool:
        return False

    def node_info(self) -> dict:
        return {}


@pytest.fixture
def node() -> tuple[Engine, Registry]:
    registry = Registry()
    # Stand-ins for the pool, the database SAL and the VM host: nothing past the registry runs.
    resources = NodeResources(
        pool=object(), herodb=object(), vms=SimpleNamespace(images=Images(), fetcher=None)
    )
    tables = {
        **IMPLEMENTATIONS,
        **WorkloadFunctions(resources, registry).table(),
        **VmFunctions(resources, registry).table(),
        **GatewayFunctions(resources, registry, Caddy(Path("/nonexistent")), None).table(),
    }
    engine = Engine()
    ctx = JobContext(job_id="j", owner=1, signer="ab" * 32, name="t", timeout=30, events=Events())
    bind(engine, ctx, tables)
    return engine, registry


def rhai(value: Any) -> str:
    """`value` as a Rhai literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(rhai(v) for v in value) + "]"
    if isinstance(value, dict):
        return "#{" + ", ".join(f"{k}: {rhai(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def create(node: tuple[Engine, Registry], function: str, spec: dict) -> str:
    """Call `function(spec)`; the error message (REACHED when every check passed)."""
    engine, _ = node
    with pytest.raises(RhaiError) as failed:
        engine.eval(f"{function}({rhai(spec)})")
    return str(failed.value)


def test_the_samples_cover_exactly_the_catalogs_fields():
    for name in MAP_FUNCTIONS:
        covered = {*SAMPLES[name], *(VM_SAMPLE if name == "vm_create" else ())}
        assert covered == {f.name for f in CATALOG[name].spec_fields}


@pytest.mark.parametrize("function", MAP_FUNCTIONS)
def test_every_field_the_catalog_lists_is_accepted(node, function):
    assert REACHED in create(node, function, SAMPLES[function])
    if function == "vm_create":
        assert REACHED in create(node, function, VM_SAMPLE)


def test_runcmd_and_entrypoint_each_belong_to_their_own_kind(node):
    container = create(node, "vm_create", {**SAMPLES["vm_create"], "runcmd": ["true"]})
    assert 'runcmd applies to kind: "vm" only' in container
    vm = create(node, "vm_create", {**VM_SAMPLE, "entrypoint": ["/bin/true"]})
    assert 'entrypoint applies to kind: "container" only' in vm


@pytest.mark.parametrize("function", MAP_FUNCTIONS)
def test_a_field_the_catalog_does_not_list_is_refused_naming_the_known_ones(node, function):
    message = create(node, function, {**SAMPLES[function], "colour": "blue"})
    known = ", ".join(sorted(f.name for f in CATALOG[function].spec_fields))
    assert f"unknown spec fields: colour (known: {known})" in message


@pytest.mark.parametrize("function", MAP_FUNCTIONS)
def test_a_spec_that_is_not_a_map_is_shown_the_catalogs_shape(node, function):
    engine, _ = node
    with pytest.raises(RhaiError, match=f"spec must be a map: {CATALOG[function].shape()}"):
        engine.eval(f'{function}("web")')


@pytest.mark.parametrize("function", MAP_FUNCTIONS)
def test_left_out_fields_get_the_catalogs_defaults(node, function):
    assert REACHED in create(node, function, REQUIRED_ONLY[function])
    reserved = node[1].reserved[-1].spec
    for arg in CATALOG[function].spec_fields:
        if arg.default is not None and arg.name not in REQUIRED_ONLY[function]:
            assert reserved[arg.name] == arg.default, arg.name


def test_a_vm_disk_defaults_to_its_images_minimum_and_mycelium_to_on(node):
    assert REACHED in create(node, "vm_create", REQUIRED_ONLY["vm_create"])
    assert node[1].reserved[-1].spec["disk_gb"] == 2
    without = {k: v for k, v in REQUIRED_ONLY["vm_create"].items() if k != "mycelium"}
    assert "runs no Mycelium overlay" in create(node, "vm_create", without)  # default true


def _number_fields(function: CatalogFunction) -> list[str]:
    return [f.name for f in function.spec_fields if f.minimum is not None]


@pytest.mark.parametrize(
    ("function", "name"),
    [(f, n) for f in MAP_FUNCTIONS for n in _number_fields(CATALOG[f])],
)
def test_number_fields_take_the_catalogs_range_and_nothing_beyond(node, function, name):
    arg = CATALOG[function].field(name)
    for inside in (arg.minimum, arg.maximum):
        assert REACHED in create(node, function, {**SAMPLES[function], name: inside})
    for outside in (arg.minimum - 1, arg.maximum + 1):
        message = create(node, function, {**SAMPLES[function], name: outside})
        assert f"{name} must be a whole number from {arg.minimum} to {arg.maximum}" in message


def test_volume_size_and_sleep_take_the_catalogs_range(node):
    engine, _ = node
    size = CATALOG["volume_create"].param("size_gb")
    with pytest.raises(RhaiError, match=REACHED):
        engine.eval(f'volume_create("data", {size.maximum})')
    with pytest.raises(RhaiError, match=f"from {size.minimum} to {size.maximum}"):
        engine.eval(f'volume_create("data", {size.maximum + 1})')
    assert CATALOG["sleep"].param("ms").maximum == MAX_SLEEP_MS
    with pytest.raises(RhaiError, match=f"between 0 and {MAX_SLEEP_MS}"):
        engine.eval(f"sleep({MAX_SLEEP_MS + 1})")
