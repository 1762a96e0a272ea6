"""The agent keeps its link alive with a `beat` at the interval the coordinator's `welcome`
names, and answers pings (not beating) when the welcome names none (an older coordinator)."""

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from nodeagent.identity import load_or_create_identity
from nodeagent.jobstore import JobStore
from nodeagent.supervisor import Supervisor
from tests.nodeagent.test_supervisor import Ledger
from tests.nodeagent.test_verification import AUDIENCE


class Coordinator:
    """Welcomes the node (with `beat` seconds, or none), pings it if asked, and records what
    the node sends as (monotonic time, message type)."""

    def __init__(self, *, beat: float | None, ping_after: float | None = None) -> None:
        self.beat = beat
        self.ping_after = ping_after
        self.hello: dict = {}
        self.heard: queue.Queue[tuple[float, str]] = queue.Queue()

    def handle(self, ws: ServerConnection) -> None:
        ws.send(json.dumps({"type": "challenge", "nonce": "00" * 16}))
        self.hello = json.loads(ws.recv(timeout=10))
        welcome = {"type": "welcome", "node": 1}
        if self.beat is not None:
            welcome["beat"] = self.beat
        ws.send(json.dumps(welcome))
        pinged = False
        started = time.monotonic()
        try:
            while True:
                if self.ping_after and not pinged and time.monotonic() - started > self.ping_after:
                    ws.send(json.dumps({"type": "ping", "id": 7}))
                    pinged = True
                try:
                    message = json.loads(ws.recv(timeout=0.1))
                except TimeoutError:
                    continue
                self.heard.put((time.monotonic(), message.get("type")))
        except ConnectionClosed:
            return

    def wait_for(self, kind: str, count: int, timeout: float = 30) -> list[tuple[float, str]]:
        """Everything heard until `count` messages of `kind` came (fails at the deadline)."""
        deadline = time.monotonic() + timeout
        heard = []
        while sum(1 for _, k in heard if k == kind) < count:
            heard.append(self.heard.get(timeout=max(0.01, deadline - time.monotonic())))
        return heard


@pytest.fixture
def link(store: JobStore, tmp_path) -> Iterator[Callable[[Coordinator], None]]:
    started: list[tuple[Server, Supervisor, threading.Thread]] = []

    def start(coordinator: Coordinator) -> None:
        server = serve(coordinator.handle, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        supervisor = Supervisor(
            ws_url=f"ws://127.0.0.1:{server.socket.getsockname()[1]}/ws/node/",
            identity=load_or_create_identity(tmp_path / "data"),
            store=store,
            client=Ledger(),
            audience=lambda: AUDIENCE,
            stop=threading.Event(),
        )
        thread = threading.Thread(target=supervisor.run, daemon=True)
        thread.start()
        started.append((server, supervisor, thread))

    yield start
    for server, supervisor, thread in started:
        supervisor.stop.set()
        thread.join(timeout=10)
        server.shutdown()


def test_the_agent_beats_at_the_interval_the_welcome_names(link):
    coordinator = Coordinator(beat=0.2)
    link(coordinator)
    beats = [t for t, kind in coordinator.wait_for("beat", 4) if kind == "beat"]
    assert "beat" in coordinator.hello["features"]
    # At the interval, not faster: 4 beats span at least 3 intervals.
    assert beats[-1] - beats[0] >= 3 * 0.2 * 0.9


def test_without_a_beat_interval_the_agent_does_not_beat_and_answers_pings(link):
    coordinator = Coordinator(beat=None, ping_after=1.0)
    link(coordinator)
    heard = coordinator.wait_for("pong", 1)
    assert "beat" not in [kind for _, kind in heard]
