"""What a script is told when a gateway call cannot be honoured, before anything is reserved.

The real bindings in a real Rhai engine, with the registry stand-in of test_catalog_fields
(it stops a create at the reservation): each refusal names the function and what to do.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from nodeagent.functions import bind
from nodeagent.functions.context import JobContext
from nodeagent.functions.gateways import GatewayFunctions
from nodeagent.functions.resources import NodeResources
from rhai import Engine, RhaiError
from sal.caddy import Caddy
from tests.nodeagent.test_catalog_fields import REACHED, Events, Registry

GATEWAY = json.dumps({"domain": "gw.test", "addresses": [], "any_backend": False})


class EmptyRegistry(Registry):
    """The stand-in with no workloads recorded yet."""

    def get(self, owner: int, kind: str, name: str) -> None:
        return None


def _engine(gateway: str | None) -> tuple[Engine, Registry]:
    registry = EmptyRegistry(redis=SimpleNamespace(get=lambda key: gateway))
    resources = NodeResources(pool=None, herodb=None)
    functions = GatewayFunctions(resources, registry, Caddy(Path("/nonexistent")), None)
    engine = Engine()
    ctx = JobContext(job_id="j", owner=1, signer="ab" * 32, name="t", timeout=30, events=Events())
    bind(engine, ctx, functions.table())
    return engine, registry


def _error(script: str, gateway: str | None = GATEWAY) -> str:
    engine, _ = _engine(gateway)
    with pytest.raises(RhaiError) as failed:
        engine.eval(script)
    return str(failed.value)


def test_on_a_node_that_is_not_a_gateway_the_script_is_told_where_to_go():
    message = _error('gateway_name_create(#{name: "blog", backends: ["[400::1]:80"]})', None)
    assert "gateway_name_create: this node is not a gateway" in message
    assert "/api/v1/nodes?gateway=true" in message
    assert "not a gateway" in _error("gateway_list()", None)


@pytest.mark.parametrize(
    ("backends", "expected"),
    [
        ("[]", "backends must be 1 to 16 strings"),
        ('"400::1"', "is not an address and port"),
        ('["[400::1]:99999"]', "is not an address and port"),
        ("42", "backends must be 1 to 16 strings"),
    ],
)
def test_bad_backends_are_refused_with_the_form_to_write(backends, expected):
    message = _error(f'gateway_name_create(#{{name: "blog", backends: {backends}}})')
    assert expected in message


def test_a_good_name_reaches_the_reservation_with_its_host_and_canonical_backends():
    engine, registry = _engine(GATEWAY)
    with pytest.raises(RhaiError, match=REACHED):
        engine.eval('gateway_name_create(#{name: "blog", backends: ["[0400::0001]:80"]})')
    [workload] = registry.reserved
    assert workload.kind == "gateway" and workload.name == "blog"
    assert workload.spec == {
        "type": "name",
        "host": "blog.gw.test",
        "backends": ["[400::1]:80"],
        "tls": True,
    }
    assert workload.reserved == {}


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ('gateway_name_create(#{name: "Blog", backends: ["[400::1]:80"]})', "name 'Blog'"),
        (
            'gateway_name_create(#{name: "blog", backends: ["[400::1]:80"], tls: "yes"})',
            "tls must be true or false",
        ),
        (
            'gateway_fqdn_create(#{fqdn: "www.gw.test", backends: ["[400::1]:80"]})',
            "under this gateway's domain: use gateway_name_create",
        ),
        (
            'gateway_fqdn_create(#{fqdn: "not a domain", backends: ["[400::1]:80"]})',
            "is not a valid host name",
        ),
        ('gateway_info("nothing")', "you have no gateway named 'nothing'"),
    ],
)
def test_other_mistakes_are_named(script, expected):
    assert expected in _error(script)
