"""Deployment envelopes verify with signing.dsse and carry the payload of docs/deployments.md."""

import json

import pytest
from nacl.signing import SigningKey

from client.errors import CliError
from contracts.payload_types import DEPLOYMENT_TYPE
from signing import SignatureError
from signing.dsse import verify_envelope
from zoscli.envelope import (
    build_payload,
    name_from_path,
    parse_size,
    read_script,
    sign_deployment,
)


def test_signed_envelope_verifies_and_round_trips_the_payload():
    key = SigningKey.generate()
    payload = build_payload(
        script='log("héllo");',
        target={"node": 3},
        name="hello",
        resources={"cru": 1, "mru": 2**30},
        now=1_700_000_000,
    )
    envelope = sign_deployment(key, payload)
    assert envelope["payloadType"] == DEPLOYMENT_TYPE
    body, signer = verify_envelope(envelope, DEPLOYMENT_TYPE, [key.verify_key])
    assert signer == key.verify_key
    assert json.loads(body) == payload
    assert payload["expires_at"] - payload["issued_at"] == 3600
    assert payload["target"] == {"node": 3}
    assert payload["resources"] == {"cru": 1, "mru": 2**30}


def test_a_different_key_does_not_verify():
    envelope = sign_deployment(
        SigningKey.generate(), build_payload(script="1", target={"farm": 1}, name="x")
    )
    with pytest.raises(SignatureError) as caught:
        verify_envelope(envelope, DEPLOYMENT_TYPE, [SigningKey.generate().verify_key])
    assert caught.value.code == "signature_invalid"


def test_every_envelope_has_a_fresh_hex_nonce():
    nonces = {build_payload(script="1", target={"node": 1}, name="x")["nonce"] for _ in range(50)}
    assert len(nonces) == 50
    assert all(len(n) == 32 and int(n, 16) >= 0 for n in nonces)


def test_optional_fields_are_left_out_unless_given():
    payload = build_payload(script="1", target={"node": 1}, name="x")
    assert "resources" not in payload and "timeout" not in payload
    assert build_payload(script="1", target={"node": 1}, name="x", timeout=60)["timeout"] == 60


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad_Name"}, "invalid deployment name"),
        ({"target": {"node": 1, "farm": 2}}, "exactly one"),
        ({"target": {"vm": 1}}, "exactly one"),
        ({"lifetime": 8 * 24 * 3600}, "lifetime"),
    ],
)
def test_payload_rules_are_checked_before_signing(kwargs, message):
    args = {"script": "1", "target": {"node": 1}, "name": "ok", **kwargs}
    with pytest.raises(CliError, match=message):
        build_payload(**args)


@pytest.mark.parametrize(
    ("path", "name"),
    [("hello.rhai", "hello"), ("My Script_v2.rhai", "my-script-v2"), ("__.rhai", "deployment")],
)
def test_name_from_path(path, name):
    assert name_from_path(path) == name


def test_read_script_checks_existence_encoding_and_size(tmp_path):
    with pytest.raises(CliError, match="does not exist"):
        read_script(str(tmp_path / "missing.rhai"))
    with pytest.raises(CliError, match="not a file"):
        read_script(str(tmp_path))
    latin = tmp_path / "latin.rhai"
    latin.write_bytes(b'log("caf\xe9");')
    with pytest.raises(CliError, match="not UTF-8"):
        read_script(str(latin))
    big = tmp_path / "big.rhai"
    big.write_text("1;" * 40_000)
    with pytest.raises(CliError, match="limit"):
        read_script(str(big))
    empty = tmp_path / "empty.rhai"
    empty.write_text("  \n")
    with pytest.raises(CliError, match="empty"):
        read_script(str(empty))
    good = tmp_path / "good.rhai"
    good.write_text('log("ok");\n')
    assert read_script(str(good)) == 'log("ok");\n'


@pytest.mark.parametrize(
    ("text", "size"),
    [("1024", 1024), ("512M", 512 * 2**20), ("2G", 2 * 2**30), ("2GiB", 2 * 2**30), ("1t", 2**40)],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_parse_size_rejects_garbage():
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
