"""The follow loop's pieces: the event display, the WebSocket feed with its polling fallback, and
riding out an outage of the control plane."""

import io
import json
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

from client.api import ApiError
from client.errors import EXIT_UNREACHABLE, CliError
from tests.cli.fake_plane import event
from zoscli.follow import Display, Feed, Reconnector, ws_url


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_display_shows_states_logs_errors_and_attempts():
    out = io.StringIO()
    display = Display(out, origin="2026-11-25T06:00:00+00:00")
    display.event(event(1, "queued", log="queued for node 1"))
    display.event(event(2, "running", second=2))
    display.event(event(3, "running", log="hello", second=3))
    display.event(event(4, "retrying", error="node went offline", second=5))
    display.event(event(5, "queued", log="again", attempt=2, second=6))
    display.close()
    assert out.getvalue().splitlines() == [
        "[   0.0s] queued       queued for node 1",
        "[   2.0s] running",
        "[   3.0s]   | hello",
        "[   5.0s] retrying",
        "[   5.0s]   ! node went offline",
        "[   6.0s] ── attempt 2 (retried by the coordinator: node went offline) ──",
        "[   6.0s] queued       again",
    ]


def test_display_marks_a_restart_on_the_node_and_runs_again_from_there():
    out = io.StringIO()
    display = Display(out, origin="2026-11-25T06:00:00+00:00")
    display.event(event(1, "running", log="step 1", second=1))
    display.event(event(2, "restarted", log="runner 4711 died mid-job (run 2)", second=4))
    display.event(event(3, "running", log="step 1", second=4))
    display.event(event(4, "restarted", log="restarted on the node: agent died", second=9))
    display.close()
    assert out.getvalue().splitlines() == [
        "[   1.0s] running      step 1",
        "[   4.0s] ── restarted on the node: runner 4711 died mid-job (run 2) ──",
        "[   4.0s] running      step 1",
        "[   9.0s] ── restarted on the node: agent died ──",
    ]


def test_display_times_are_when_it_happened_not_when_it_arrived():
    out = io.StringIO()
    display = Display(out, origin="2026-11-25T06:00:00+00:00")
    late = {**event(1, "running", log="x", second=3), "created": "2026-11-25T06:00:50+00:00"}
    display.event(late)
    assert out.getvalue().startswith("[   3.0s] running")


def test_display_status_line_only_on_a_terminal():
    plain, tty = io.StringIO(), Tty()
    for out in (plain, tty):
        display = Display(out, origin="2026-11-25T06:00:00+00:00")
        display.event(event(1, "running"))
        display.waiting(4.2)
        display.event(event(2, "running", log="x"))
    assert "elapsed" not in plain.getvalue()
    assert "… running, 4s elapsed" in tty.getvalue()
    assert "\r\033[K[" in tty.getvalue()  # the status line is erased before the next event


@pytest.mark.parametrize(
    ("http", "ws"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/deployments/"),
        ("https://grid.example/", "wss://grid.example/ws/deployments/"),
    ],
)
def test_ws_url(http, ws):
    assert ws_url(http) == ws


@pytest.fixture
def ws_server():
    """A feed that checks the token, then sends whatever the test queues."""
    seen_headers: list[str | None] = []
    outgoing: list[dict] = []

    def handler(connection) -> None:
        seen_headers.append(connection.request.headers.get("Authorization"))
        if connection.request.headers.get("Authorization") != "Token good":
            connection.close(code=4401)
            return
        while True:
            while outgoing:
                connection.send(json.dumps(outgoing.pop(0)))
            try:
                connection.recv(timeout=0.02)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return

    server = serve(handler, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.socket.getsockname()[1]
    yield f"http://127.0.0.1:{port}", seen_headers, outgoing
    server.shutdown()


def test_feed_wakes_up_for_its_deployment_only(ws_server):
    url, headers, outgoing = ws_server
    feed = Feed(url, "good")
    assert feed.active
    outgoing.append({"deployment": 99, "status": "running"})
    started = time.monotonic()
    feed.wait(7, 0.4)
    assert time.monotonic() - started >= 0.35  # another deployment's event does not wake us
    outgoing.append({"deployment": 7, "status": "running"})
    started = time.monotonic()
    feed.wait(7, 5)
    assert time.monotonic() - started < 2
    assert headers == ["Token good"]
    feed.close()
    assert not feed.active


def test_feed_refused_or_unreachable_falls_back_to_polling(ws_server):
    url, _, _ = ws_server
    refused = Feed(url, "bad")
    # The server closes right after the handshake: the first wait notices and turns the feed off.
    refused.wait(7, 1)
    assert not refused.active
    assert not Feed("http://127.0.0.1:9", "good").active
    assert not Feed(url, None).active
    started = time.monotonic()
    Feed(url, None).wait(7, 0.2)
    assert 0.15 < time.monotonic() - started < 1


def _unreachable() -> ApiError:
    return ApiError(0, "unreachable", "cannot connect to http://127.0.0.1:9")


def test_reconnector_says_so_once_backs_off_with_a_cap_and_comes_back():
    out, err = io.StringIO(), io.StringIO()
    now = [0.0]
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    answers = [_unreachable()] * 8 + [ApiError(503, "server_error", "restarting"), "page"]

    def request() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    reconnector = Reconnector(Display(out, err=err), 7, wait=300, clock=lambda: now[0], sleep=sleep)
    assert reconnector.call(request) == "page"
    assert err.getvalue().count("reconnecting…") == 1
    assert err.getvalue().endswith("reconnected\n")
    assert out.getvalue() == ""  # the deployment's own output is left alone
    assert 0.25 <= pauses[0] <= 0.5
    assert all(0 < p <= 5.0 for p in pauses) and max(pauses) > 2.5


def test_reconnector_gives_up_after_the_wait_with_its_own_exit_code():
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def request() -> str:
        raise _unreachable()

    err = io.StringIO()
    reconnector = Reconnector(
        Display(io.StringIO(), err=err), 7, wait=30, clock=lambda: now[0], sleep=sleep
    )
    with pytest.raises(CliError) as raised:
        reconnector.call(request)
    assert raised.value.exit_code == EXIT_UNREACHABLE == 5
    assert "has not answered for 30s" in raised.value.message
    assert "zos logs 7 --follow" in raised.value.hint
    assert 30 <= now[0] < 31
    refused = Reconnector(Display(io.StringIO(), err=err), 7)
    with pytest.raises(ApiError):  # a real refusal is not an outage: no waiting
        refused.call(lambda: (_ for _ in ()).throw(ApiError(404, "not_found", "no such")))
