"""Following a deployment live: state changes and log lines as they happen, until it ends.

The events endpoint (`/events?after=<seq>`) is the source of truth: every event has a `seq`, and
the cursor makes each one shown exactly once, in order, whatever else happens. The WebSocket feed
(`/ws/deployments/`, API-token auth) only says "something happened" so the next page is fetched at
once instead of at the next poll; it carries events of this process's nodes only, so it cannot be
the only source. Without it (refused, unreachable, dropped) the follower polls every 0.5 s.

The job runs on its node whether or not the control plane answers, so an outage (a restart, a
deploy, a network blip) is not the end of following: the follower keeps the cursor, retries with
capped, jittered backoff, and catches up from the cursor when the server is back, so no line is
lost or shown twice. It gives up only after a long outage (`--wait`), with its own exit code.
"""

import contextlib
import json
import random
import sys
import time
from collections.abc import Callable
from typing import TextIO, TypeVar

from client.api import Api, ApiError
from client.errors import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    CliError,
)
from zoscli.output import parse_time

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
EXIT_BY_STATE = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}
POLL_INTERVAL = 0.5
WS_POLL_INTERVAL = 2.0
WS_OPEN_TIMEOUT = 3.0
# Reconnecting: the first retry comes quickly (a restart takes a second or two), later ones back
# off to at most RECONNECT_MAX so a long outage is not hammered; each delay is jittered so many
# followers do not return in lockstep when the server comes back.
RECONNECT_FIRST = 0.5
RECONNECT_MAX = 5.0
# How long an outage may last before following gives up; a control-plane upgrade fits in it.
DEFAULT_OUTAGE_WAIT = 300.0
# Answers that mean "the server is down or restarting", not "the request is wrong".
OUTAGE_HTTP_STATUSES = frozenset({502, 503, 504})
# The node's event when a job re-runs there (runner or agent died); its log says why.
RESTARTED = "restarted"
RETRYING = "retrying"

T = TypeVar("T")


class Display:
    """Prints events as `[elapsed] state  text`, log lines indented under their state.

    Elapsed time is each event's own `ts` (when it happened: the node's clock for what the node
    reports) counted from `origin` (the deployment's creation), so it is the same whether the
    events are watched live, caught up in a burst after a reconnect, or read back later. A new
    attempt or a restart on the node gets a boundary line, so the lines after it are not mistaken
    for a continuation of the run before. On a terminal a status line shows the current state and
    how long it has lasted while nothing is printed. Notices about the connection go to `err`, so
    `out` stays the deployment's own story.
    """

    def __init__(
        self, out: TextIO = sys.stdout, *, origin: str | None = None, err: TextIO | None = None
    ) -> None:
        self.out = out
        self.err = err or sys.stderr
        self.origin = parse_time(origin)
        self.state: str | None = None
        self.attempt = 1
        self.retry_reason = ""
        self.live = out.isatty()
        self._status_shown = False

    def _elapsed(self, event: dict) -> str:
        moment = parse_time(event.get("ts")) or parse_time(event.get("created"))
        if self.origin is None or moment is None:
            return "       "
        return f"{max(0.0, (moment - self.origin).total_seconds()):6.1f}s"

    def _clear_status(self) -> None:
        if self._status_shown:
            self.out.write("\r\033[K")
            self.out.flush()
            self._status_shown = False

    def event(self, event: dict) -> None:
        self._clear_status()
        status = str(event.get("status", ""))
        attempt = event.get("attempt") or self.attempt
        stamp = f"[{self._elapsed(event)}]"
        text = event.get("log") or ""
        if attempt != self.attempt:
            why = f" (retried by the coordinator: {self.retry_reason})" if self.retry_reason else ""
            self.out.write(f"{stamp} ── attempt {attempt}{why} ──\n")
            self.state, self.attempt = None, attempt
        if status == RETRYING:
            self.retry_reason = str(event.get("error") or text)
        if status == RESTARTED:
            why = text if text.lower().startswith(RESTARTED) else f"restarted on the node: {text}"
            self.out.write(f"{stamp} ── {why.rstrip(': ')} ──\n")
            self.state = None  # the re-run's states are news again
        elif status != self.state:
            self.out.write(f"{stamp} {status:<12} {text}".rstrip() + "\n")
            self.state = status
        elif text:
            self.out.write(f"{stamp}   | {text}\n")
        if event.get("error"):
            self.out.write(f"{stamp}   ! {event['error']}\n")
        self.out.flush()

    def notice(self, text: str) -> None:
        """A line about the connection, not the deployment: on stderr, after the status line."""
        self._clear_status()
        self.err.write(text + "\n")
        self.err.flush()

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


def is_outage(exc: ApiError) -> bool:
    """True when the server could not be reached or said it is down: worth waiting out."""
    return exc.code == "unreachable" or exc.status in OUTAGE_HTTP_STATUSES


class Reconnector:
    """Runs API calls through control-plane outages: retry with backoff, say so once, give up late.

    One outage prints `reconnecting…` once and `reconnected` when a call succeeds again; it gives
    up (exit code 5) when the server has not answered for `wait` seconds in a row. `before_retry`
    runs before each pause, so the caller's own deadline (`--timeout`) still counts meanwhile.
    """

    def __init__(
        self,
        display: Display,
        deployment_id: int,
        *,
        wait: float = DEFAULT_OUTAGE_WAIT,
        before_retry: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.display = display
        self.deployment_id = deployment_id
        self.wait = wait
        self.before_retry = before_retry
        self.clock = clock
        self.sleep = sleep
        self.down_since: float | None = None
        self.retries = 0
        self.recoveries = 0  # outages survived, so the caller can reopen what the outage broke

    def call(self, request: Callable[[], T]) -> T:
        while True:
            try:
                value = request()
            except ApiError as exc:
                if not is_outage(exc):
                    raise
                self._pause(exc)
                continue
            if self.down_since is not None:
                self.display.notice("reconnected")
                self.down_since, self.retries = None, 0
                self.recoveries += 1
            return value

    def _pause(self, exc: ApiError) -> None:
        now = self.clock()
        if self.down_since is None:
            self.down_since = now
            self.display.notice(
                f"reconnecting… ({exc.text}; the deployment goes on, following resumes where it "
                f"left off)"
            )
        left = self.down_since + self.wait - now
        if left <= 0:
            n = self.deployment_id
            raise CliError(
                f"gave up following deployment {n}: the control plane has not answered for "
                f"{self.wait:g}s ({exc.text})",
                hint=f"the deployment keeps going on its node: `zos logs {n} --follow` picks it "
                "up again when the control plane is back (--wait S waits longer)",
                exit_code=EXIT_UNREACHABLE,
            )
        self.before_retry()
        delay = min(RECONNECT_MAX, RECONNECT_FIRST * 2**self.retries)
        self.retries += 1
        self.sleep(min(left, delay * random.uniform(0.5, 1.0)))  # noqa: S311  (jitter, not crypto)


def follow(
    api: Api,
    deployment_id: int,
    display: Display,
    *,
    timeout: float | None = None,
    live: bool = True,
    after: int = 0,
    wait: float = DEFAULT_OUTAGE_WAIT,
) -> str:
    """Show events until the deployment ends; return its final state.

    Raises CliError with exit code 4 if `timeout` seconds pass first, or 5 if the control plane
    stays unreachable for `wait` seconds; either way the deployment itself goes on, and the
    message says how to look at it again or cancel it. Shorter outages are waited out.
    """
    started = time.monotonic()

    def check_timeout(status: str | None = None) -> None:
        if timeout is not None and time.monotonic() - started >= timeout:
            state = f"still {status}" if status else "not finished"
            raise CliError(
                f"deployment {deployment_id} is {state} after {timeout:g}s",
                hint=f"it keeps going: `zos logs {deployment_id} --follow` to watch again, "
                f"`zos cancel {deployment_id}` to stop it",
                exit_code=EXIT_TIMEOUT,
            )

    reconnector = Reconnector(display, deployment_id, wait=wait, before_retry=check_timeout)
    token = api.token if live else None
    feed = Feed(api.url, token)
    recoveries = 0
    try:
        while True:
            # One page per call, so the cursor moves past each event as soon as it is shown and
            # an outage in the middle of a burst resumes right after the last line printed.
            page = reconnector.call(lambda after=after: api.events(deployment_id, after=after))
            results = page.get("results") or []
            for event in results:
                display.event(event)
            new_after = int(page.get("next", after))
            if results and new_after != after:
                after = new_after
                continue
            status = page.get("status")
            if status in FINAL_STATES:
                return str(status)
            check_timeout(status)
            elapsed = time.monotonic() - started
            display.waiting(elapsed)
            if reconnector.recoveries != recoveries and token and not feed.active:
                feed = Feed(api.url, token)  # back from an outage: live again
            recoveries = reconnector.recoveries
            interval = WS_POLL_INTERVAL if feed.active else POLL_INTERVAL
            pause = interval if timeout is None else min(interval, timeout - elapsed)
            feed.wait(deployment_id, max(0.05, pause))
    finally:
        feed.close()
        display.close()
