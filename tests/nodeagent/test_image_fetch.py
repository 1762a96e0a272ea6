"""The node's fetch against a hub that misbehaves on purpose: a part cut off mid-stream, a
manifest signed by a stranger. A real HTTP server on loopback serves real bytes, the way the
control plane's endpoints do (hub/node_views.py); the integration test covers the real hub.
"""

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from nacl.signing import SigningKey

from contracts.image_manifest import Manifest, Part, sign_manifest
from nodeagent.identity import NodeIdentity
from nodeagent.image_fetch import HUB_FILE, ImageFetcher
from nodeagent.ledger_client import LedgerClient
from sal.images import ImageCache, ImageError
from signing.keys import public_key_hex

KERNEL = os.urandom(300_000)
OWNER, PUBLISHER = 5, 9


class Hub:
    """What the hub answers, and how often each part is cut off before it is served whole."""

    def __init__(self, signer: SigningKey, publisher_key: SigningKey) -> None:
        manifest = Manifest(
            name="tiny",
            version="1",
            kind="vm",
            parts=(Part("kernel", hashlib.sha256(KERNEL).hexdigest(), len(KERNEL)),),
        )
        self.record = {
            "id": 1,
            "name": "tiny",
            "version": "1",
            "kind": "vm",
            "public": False,
            "publisher": PUBLISHER,
            "envelope": sign_manifest(signer, manifest),
        }
        self.keys = {"user": PUBLISHER, "keys": [{"public_key": public_key_hex(publisher_key),
                                                  "revoked": False}]}  # fmt: skip
        self.cut_off = 0
        self.blob_requests = 0


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _json(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            assert self.headers["Authorization"].startswith("ZOS-Ed25519 ")
            if self.path == f"/api/v1/node-fetch/images/tiny?owner={OWNER}":
                return self._json(hub.record)
            if self.path == f"/api/v1/users/{PUBLISHER}/keys":
                return self._json(hub.keys)
            assert self.path.startswith("/api/v1/node-fetch/blobs/")
            hub.blob_requests += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(KERNEL)))
            self.end_headers()
            if hub.cut_off:
                hub.cut_off -= 1
                self.wfile.write(KERNEL[: len(KERNEL) // 2])
                self.close_connection = True
                return None
            self.wfile.write(KERNEL)
            return None

    return Handler


@pytest.fixture
def serve(tmp_path) -> Iterator:
    servers = []

    def start(hub: Hub) -> ImageFetcher:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        client = LedgerClient(
            f"http://127.0.0.1:{server.server_port}", NodeIdentity(os.urandom(32)), timeout=5
        )
        cache = ImageCache(tmp_path / "images")
        return ImageFetcher(lambda: cache, client, in_use=set, limit_bytes=2**30, retry_delay=0)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_part_cut_off_mid_stream_is_refused_and_fetched_again(serve, caplog):
    publisher = SigningKey.generate()
    hub = Hub(publisher, publisher)
    hub.cut_off = 2
    fetcher = serve(hub)
    image = fetcher.ensure(OWNER, "tiny")
    assert image.name == f"tiny.u{OWNER}" and image.kernel.read_bytes() == KERNEL
    assert hub.blob_requests == 3
    assert caplog.text.count("part kernel refused") == 2
    assert json.loads((image.path / HUB_FILE).read_text())["owner"] == OWNER
    assert fetcher.ensure(OWNER, "tiny").path == image.path and hub.blob_requests == 3  # cached


def test_a_part_that_never_arrives_whole_is_never_installed(serve):
    publisher = SigningKey.generate()
    hub = Hub(publisher, publisher)
    hub.cut_off = 3
    fetcher = serve(hub)
    with pytest.raises(ImageError, match="did not arrive intact in 3 attempts"):
        fetcher.ensure(OWNER, "tiny")
    assert [p.name for p in fetcher.cache.root.iterdir()] == [".locks"]


def test_a_manifest_not_signed_by_its_publisher_is_refused_before_any_download(serve):
    hub = Hub(SigningKey.generate(), SigningKey.generate())
    fetcher = serve(hub)
    with pytest.raises(ImageError, match="not signed by its publisher"):
        fetcher.ensure(OWNER, "tiny")
    assert hub.blob_requests == 0
    assert [p.name for p in fetcher.cache.root.iterdir()] == [".locks"]
