"""The strict stub itself: it must refuse what the spec does not allow, or the driver tests that
rely on it prove nothing."""

import json
from pathlib import Path

import pytest

from sal.unix_http import HttpApi
from tests.sal.spec_stub import SPECS_DIR, Reply, load_spec_stub, read_log

JSON = {"Content-Type": "application/json"}
pytestmark = pytest.mark.skipif(
    not SPECS_DIR.is_dir(), reason=f"needs the published API specs in {SPECS_DIR}"
)


def body(value) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture
def ch():
    stub = load_spec_stub("cloud-hypervisor.yaml")
    stub.on("PUT", "/vm.create")(lambda req: Reply(204))
    stub.on("GET", "/vmm.ping")(lambda req: Reply(200, {"version": "v0-stub"}))
    return stub


@pytest.fixture
def myc():
    stub = load_spec_stub("mycelium.yaml")
    stub.on("GET", "/api/v1/messages")(lambda req: Reply(204))
    stub.on("DELETE", "/api/v1/admin/peers/{endpoint}")(lambda req: Reply(204))
    return stub


VALID_VM = {
    "cpus": {"boot_vcpus": 1, "max_vcpus": 1},
    "memory": {"size": 256 * 2**20},
    "payload": {"kernel": "/k", "cmdline": "console=ttyS0"},
}


def test_prefix_comes_from_the_servers_url(ch, myc):
    assert ch.prefix == "/api/v1"
    assert myc.prefix == ""


def test_valid_request_reaches_the_handler(ch):
    reply = ch.dispatch("PUT", "/api/v1/vm.create", JSON, body(VALID_VM))
    assert reply.status == 204
    assert ch.violations == []


def test_unknown_path_is_refused(ch):
    assert ch.dispatch("GET", "/api/v1/vm.nosuch", {}, b"").status == 400
    assert ch.dispatch("GET", "/vmm.ping", {}, b"").status == 400  # prefix missing
    assert [v.reason for v in ch.violations] == ["unknown path", "unknown path"]


def test_wrong_method_is_refused(ch):
    reply = ch.dispatch("GET", "/api/v1/vm.create", {}, b"")
    assert reply.status == 400
    assert "method GET not allowed (spec allows PUT)" in ch.violations[0].reason


def test_missing_required_field_is_refused(ch):
    vm = dict(VALID_VM)
    del vm["payload"]
    assert ch.dispatch("PUT", "/api/v1/vm.create", JSON, body(vm)).status == 400
    assert "'payload' is a required property" in ch.violations[0].reason


def test_nested_required_field_is_refused(ch):
    vm = {**VALID_VM, "cpus": {"boot_vcpus": 1}}
    assert ch.dispatch("PUT", "/api/v1/vm.create", JSON, body(vm)).status == 400
    assert "cpus: 'max_vcpus' is a required property" in ch.violations[0].reason


def test_wrong_type_and_range_are_refused(ch):
    vm = {**VALID_VM, "cpus": {"boot_vcpus": 0, "max_vcpus": "1"}}
    assert ch.dispatch("PUT", "/api/v1/vm.create", JSON, body(vm)).status == 400
    reason = ch.violations[0].reason
    assert "0 is less than the minimum of 1" in reason
    assert "'1' is not of type 'integer'" in reason


def test_unknown_property_is_refused(ch):
    vm = {**VALID_VM, "cpus": {"boot_vcpu": 1, "boot_vcpus": 1, "max_vcpus": 1}}
    assert ch.dispatch("PUT", "/api/v1/vm.create", JSON, body(vm)).status == 400
    assert "'boot_vcpu' was unexpected" in ch.violations[0].reason


def test_enum_is_enforced(ch):
    vm = {**VALID_VM, "serial": {"mode": "file"}}
    assert ch.dispatch("PUT", "/api/v1/vm.create", JSON, body(vm)).status == 400
    assert "'file' is not one of" in ch.violations[0].reason


def test_integer_format_is_enforced(ch):
    vm = {**VALID_VM, "disks": [{"path": "/d", "pci_device_id": 300}]}
    assert ch.dispatch("PUT", "/api/v1/vm.create", JSON, body(vm)).status == 400
    assert "is not a 'uint8'" in ch.violations[0].reason


def test_missing_required_body_and_wrong_content_type(ch):
    assert ch.dispatch("PUT", "/api/v1/vm.create", {}, b"").status == 400
    assert ch.dispatch("PUT", "/api/v1/vm.create", {"Content-Type": "text/plain"}, body(VALID_VM))
    assert ch.dispatch("PUT", "/api/v1/vm.create", JSON, b"{not json").status == 400
    reasons = [v.reason for v in ch.violations]
    assert reasons[0] == "request body required"
    assert reasons[1].startswith("content type 'text/plain'")
    assert reasons[2].startswith("body is not JSON")


def test_body_on_an_operation_without_request_body_is_refused(ch):
    assert ch.dispatch("GET", "/api/v1/vmm.ping", JSON, b"{}").status == 400
    assert "declares no request body" in ch.violations[0].reason


def test_query_parameters_are_checked(myc):
    ok = myc.dispatch("GET", "/api/v1/messages?peek=true&timeout=0", {}, b"")
    assert ok.status == 204 and myc.violations == []
    assert myc.dispatch("GET", "/api/v1/messages?peek=yes", {}, b"").status == 400
    assert myc.dispatch("GET", "/api/v1/messages?timeout=-1", {}, b"").status == 400
    assert myc.dispatch("GET", "/api/v1/messages?colour=red", {}, b"").status == 400
    assert myc.dispatch("GET", "/api/v1/messages?peek=true&peek=false", {}, b"").status == 400
    reasons = [v.reason for v in myc.violations]
    assert "not a boolean" in reasons[0]
    assert "less than the minimum of 0" in reasons[1]
    assert "'colour' is not declared" in reasons[2]
    assert "given 2 times" in reasons[3]


def test_path_parameters_are_decoded_and_matched(myc):
    seen = []

    @myc.on("DELETE", "/api/v1/admin/peers/{endpoint}")
    def remove(req):
        seen.append(req.path_params["endpoint"])
        return Reply(204)

    encoded = "/api/v1/admin/peers/tcp%3A%2F%2F192.0.2.6%3A9651"
    assert myc.dispatch("DELETE", encoded, {}, b"").status == 204
    assert seen == ["tcp://192.0.2.6:9651"]
    # unencoded, the slashes split the path: no such route in the spec
    assert myc.dispatch("DELETE", "/api/v1/admin/peers/tcp://192.0.2.6:9651", {}, b"").status == 400
    assert myc.violations[0].reason == "unknown path"


def test_unimplemented_operation_is_a_violation(ch):
    assert ch.dispatch("PUT", "/api/v1/vm.nmi", {}, b"").status == 501
    assert "does not implement" in ch.violations[0].reason


def test_replies_are_checked_against_the_spec(ch):
    ch.on("GET", "/vm.info")(lambda req: Reply(200, {"state": "Running"}))  # config missing
    ch.on("PUT", "/vm.boot")(lambda req: Reply(200))  # spec says 204
    ch.dispatch("GET", "/api/v1/vm.info", {}, b"")
    ch.dispatch("PUT", "/api/v1/vm.boot", {}, b"")
    reasons = [v.reason for v in ch.violations]
    assert "'config' is a required property" in reasons[0]
    assert "handler answered 200, spec declares [204, 404]" in reasons[1]


def test_handlers_only_for_spec_operations(ch):
    with pytest.raises(ValueError, match="not an operation"):
        ch.on("POST", "/vm.create")


def test_extra_bodies_supplement_must_name_a_spec_operation():
    with pytest.raises(ValueError, match="operations the spec lacks"):
        load_spec_stub("mycelium.yaml", extra_bodies={("POST", "/nope"): {"type": "object"}})


def test_serves_over_a_unix_socket_and_logs(tmp_path: Path, ch):
    ch.log_path = tmp_path / "log.jsonl"
    server = ch.serve_unix(tmp_path / "api.sock")
    try:
        api = HttpApi(socket_path=str(tmp_path / "api.sock"), prefix="/api/v1")
        assert api.request("GET", "/vmm.ping").json() == {"version": "v0-stub"}
        assert api.request("PUT", "/vm.create", json_body={"cpus": {}}).status == 400
    finally:
        server.shutdown()
        server.server_close()
    log = read_log(ch.log_path)
    assert log[0] == {"method": "GET", "path": "/api/v1/vmm.ping", "body": None, "status": 200}
    assert "violation" in log[1]


def test_spec_gaps_are_listed(myc):
    assert myc.spec_gaps == [
        "DELETE /api/v1/admin/peers/{endpoint}: path parameter endpoint undeclared"
    ]


def test_replies_are_checked_against_the_operation_of_their_method(myc):
    # GET /admin/peers declares 200, POST declares 204: each reply is held to its own method
    myc.on("GET", "/api/v1/admin/peers")(lambda req: Reply(200, []))
    myc.on("POST", "/api/v1/admin/peers")(lambda req: Reply(204))
    myc.dispatch("GET", "/api/v1/admin/peers", {}, b"")
    myc.dispatch("POST", "/api/v1/admin/peers", {}, b"")
    assert myc.violations == []
