"""Hostile clients against a real daphne: oversized frames, a flooding node, slow clients.

In process (tests/security/test_hostile_input.py) covers what the application does with bad
input; these cover what only a real server shows: the transport's limits and whether one
abusive connection holds up everyone else.
"""

import json
import socket
from collections.abc import Iterator

import pytest
import requests
from nacl.signing import SigningKey
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from signing.keys import b64encode, public_key_hex
from signing.node_request import sign_request
from tests.conftest import CAPACITY
from tests.integration.conftest import ControlPlane, bootstrap

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory) -> Iterator[ControlPlane]:
    """One control plane for the module: each test's abuse must leave it serving the next."""
    plane = ControlPlane(var_dir=tmp_path_factory.mktemp("plane") / "var")
    plane.var_dir.mkdir()
    plane.migrate()
    plane.start()
    plane.info = bootstrap(plane)
    yield plane
    plane.kill()


@pytest.fixture(scope="module")
def node_key(control_plane: ControlPlane) -> SigningKey:
    """A node key registered with the farm's enrollment token (so approved at once)."""
    plane, info = control_plane, control_plane.info
    key = SigningKey.generate()
    body = json.dumps(
        {
            "farm": info["farm"],
            "enroll_token": info["token"],
            "capacity": CAPACITY,
            "interfaces": [],
            "serial": "SN-1",
            "agent_version": "0.1.0",
        }
    ).encode()
    response = requests.post(
        f"{plane.url}/api/v1/nodes",
        data=body,
        headers={
            "Authorization": sign_request(key, "POST", "/api/v1/nodes", body),
            "Content-Type": "application/json",
        },
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "online"
    return key


def link(plane: ControlPlane, key: SigningKey):
    ws = connect(plane.url.replace("http://", "ws://") + "/ws/node/", open_timeout=10)
    challenge = json.loads(ws.recv(timeout=10))
    signature = key.sign(b"zos-ws-v1\n" + challenge["nonce"].encode()).signature
    ws.send(json.dumps({"type": "hello", "key": public_key_hex(key), "sig": b64encode(signature)}))
    assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
    return ws


def answers(plane: ControlPlane) -> bool:
    return requests.get(f"{plane.url}/api/v1/catalog", timeout=10).status_code == 200


def test_a_frame_over_the_limit_cuts_that_link_and_nothing_else(control_plane, node_key):
    key = node_key
    ws = link(control_plane, key)
    # daphne's limit (1 MiB a message): autobahn fails the connection by dropping it, so the
    # node sees the link end without a close code (possibly while still sending the frame), and
    # reconnects as after any network fault.
    with pytest.raises(ConnectionClosed):
        ws.send(json.dumps({"type": "event", "log": "x" * (2 * MIB)}))
        while True:
            ws.recv(timeout=10)
    assert answers(control_plane)
    link(control_plane, key).close()  # the node links again


def test_a_node_flooding_its_link_is_served_in_turn_and_others_are_not_held_up(
    control_plane, node_key
):
    key = node_key
    ws = link(control_plane, key)
    count = 2000
    for n in range(count):
        ws.send(json.dumps({"type": "event", "id": f"{n}-0", "status": "running"}))
    assert answers(control_plane)  # while the flood is worked through
    acked = set()
    while len(acked) < count:
        message = json.loads(ws.recv(timeout=60))
        if message["type"] == "ack":
            acked.update(message["ids"])
    assert acked == {f"{n}-0" for n in range(count)}
    ws.close()


def test_slow_clients_do_not_hold_up_the_others(control_plane):
    """Connections that send half a request and then nothing (slowloris), and one that sends
    a body far slower than it announced: everyone else is still answered."""
    slow = []
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", control_plane.port), timeout=10)
        sock.sendall(b"GET /api/v1/farms HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        slow.append(sock)
    body_sock = socket.create_connection(("127.0.0.1", control_plane.port), timeout=10)
    body_sock.sendall(
        b"POST /api/v1/deployments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    )
    slow.append(body_sock)
    try:
        assert answers(control_plane)
    finally:
        for sock in slow:
            sock.close()


def test_an_oversized_body_is_a_413_with_the_error_body(control_plane):
    response = requests.post(
        f"{control_plane.url}/api/v1/auth/token",
        data=b"{" + b" " * (2 * MIB) + b"}",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
