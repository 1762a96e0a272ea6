"""Following a deployment live: state changes and log lines as they happen, until it ends.

The events endpoint (`/events?after=<seq>`) is the source of truth: every event has a `seq`, and
the cursor makes each one shown exactly once, in order, whatever else happens. The WebSocket feed
(`/ws/deployments/`, API-token auth) only says "something happened" so the next page is fetched at
once instead of at the next poll; it carries events of this process's nodes only, so it cannot be
the only source. Without it (refused, unreachable, dropped) the follower polls every 0.5 s.
"""

import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import TextIO

from zoscli.api import Api
from zoscli.errors import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, CliError
from zoscli.output import parse_time

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
EXIT_BY_STATE = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}
POLL_INTERVAL = 0.5
WS_POLL_INTERVAL = 2.0
WS_OPEN_TIMEOUT = 3.0


class Display:
    """Prints events as `[elapsed] state  text`, log lines indented under their state.

    Elapsed time is measured on the server's clock from `origin` (the deployment's creation), so
    it is the same whether the events are watched live or read back later. On a terminal a status
    line shows the current state and how long it has lasted while nothing is printed.
    """

    def __init__(self, out: TextIO = sys.stdout, *, origin: str | None = None) -> None:
        self.out = out
        self.origin = parse_time(origin)
        self.state: str | None = None
        self.attempt = 1
        self.live = out.isatty()
        self._status_shown = False

    def _elapsed(self, event: dict) -> str:
        moment = parse_time(event.get("created")) or parse_time(event.get("ts"))
        if self.origin is None or moment is None:
            return "       "
        return f"{max(0.0, (moment - self.origin).total_seconds()):6.1f}s"

    def _clear_status(self) -> None:
        if self._status_shown:
            self.out.write("\r\033[K")
            self._status_shown = False

    def event(self, event: dict) -> None:
        self._clear_status()
        status = str(event.get("status", ""))
        attempt = event.get("attempt") or self.attempt
        stamp = f"[{self._elapsed(event)}]"
        text = event.get("log") or ""
        if status != self.state or attempt != self.attempt:
            label = status if attempt == 1 else f"{status} (attempt {attempt})"
            self.out.write(f"{stamp} {label:<12} {text}".rstrip() + "\n")
            self.state, self.attempt = status, attempt
        elif text:
            self.out.write(f"{stamp}   | {text}\n")
        if event.get("error"):
            self.out.write(f"{stamp}   ! {event['error']}\n")
        self.out.flush()

    def waiting(self, seconds: float) -> None:
        if self.live and self.state and self.state not in FINAL_STATES:
            self.out.write(f"\r\033[K  … {self.state}, {seconds:.0f}s elapsed")
            self.out.flush()
            self._status_shown = True

    def close(self) -> None:
        self._clear_status()
        self.out.flush()


def ws_url(http_url: str) -> str:
    scheme, _, rest = http_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest.rstrip('/')}/ws/deployments/"


class Feed:
    """The live WebSocket feed, or nothing: any failure turns it off and polling carries on."""

    def __init__(self, url: str, token: str | None) -> None:
        self.connection = None
        # connect() is a context manager; the stack keeps it open until close().
        self._stack = contextlib.ExitStack()
        if not token:
            return
        try:
            from websockets.sync.client import connect

            self.connection = self._stack.enter_context(
                connect(
                    ws_url(url),
                    additional_headers={"Authorization": f"Token {token}"},
                    open_timeout=WS_OPEN_TIMEOUT,
                )
            )
        except Exception:  # any failure means "poll instead", by design
            self.connection = None

    @property
    def active(self) -> bool:
        return self.connection is not None

    def wait(self, deployment_id: int, seconds: float) -> None:
        """Return when an event for this deployment arrives, or after `seconds`."""
        if self.connection is None:
            time.sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self.connection.recv(timeout=left))
            except TimeoutError:
                return
            except Exception:  # closed or garbled: fall back to polling
                self.close()
                return
            if isinstance(message, dict) and message.get("deployment") == deployment_id:
                return

    def close(self) -> None:
        self.connection = None
        with contextlib.suppress(Exception):
            self._stack.close()


def drain(api: Api, deployment_id: int, after: int, on_event: Callable[[dict], None]) -> tuple:
    """Show every event after the cursor; return (deployment status, new cursor)."""
    while True:
        page = api.events(deployment_id, after=after)
        for event in page.get("results", []):
            on_event(event)
        new_after = int(page.get("next", after))
        if new_after == after or not page.get("results"):
            return page.get("status"), new_after
        after = new_after


def follow(
    api: Api,
    deployment_id: int,
    display: Display,
    *,
    timeout: float | None = None,
    live: bool = True,
    after: int = 0,
) -> str:
    """Show events until the deployment ends; return its final state.

    Raises CliError with exit code 4 if `timeout` seconds pass first; the deployment itself goes
    on, and the message says how to look at it again or cancel it.
    """
    started = time.monotonic()
    feed = Feed(api.url, api.token) if live else Feed(api.url, None)
    interval = WS_POLL_INTERVAL if feed.active else POLL_INTERVAL
    try:
        while True:
            status, after = drain(api, deployment_id, after, display.event)
            if status in FINAL_STATES:
                return str(status)
            elapsed = time.monotonic() - started
            if timeout is not None and elapsed >= timeout:
                raise CliError(
                    f"deployment {deployment_id} is still {status} after {timeout:g}s",
                    hint=f"it keeps going: `zos logs {deployment_id} --follow` to watch again, "
                    f"`zos cancel {deployment_id}` to stop it",
                    exit_code=EXIT_TIMEOUT,
                )
            display.waiting(elapsed)
            wait = interval if timeout is None else min(interval, timeout - elapsed)
            feed.wait(deployment_id, max(0.05, wait))
            if not feed.active:
                interval = POLL_INTERVAL
    finally:
        feed.close()
        display.close()
