"""Messages to Channels groups, sent only once the transaction that caused them commits.

`node-<id>` groups hold a node's link; `user-<id>` groups hold that user's dashboard sockets.
With the in-memory layer these reach only this process; each process's link loop also polls
(coordinator/linkloop.py), so work queued by another process (the coordinator worker) still goes
out within a poll interval.

Sending from sync code means a hop to the event loop and back (async_to_sync), and on a busy
machine every hop waits for the scheduler. So the hot paths gather their messages instead:
a node link's consumer runs its service call `collecting` and sends what it returns from the
loop itself, and a `batched` service (a submit) sends all of its messages in one hop at its end.
Messages keep their order either way, and only committed transactions' messages are sent.

A message the channel layer cannot take (its Redis is down or restarting) is logged and dropped,
never raised: the change it announces is committed, so failing the caller would tell a user whose
deployment was stored that it was not. Nothing is lost by dropping it: work reaches the node's
link through the link loop's catch-up poll (coordinator/linkloop.py), and a live feed that lost
its socket with the Redis reads the stored events when it reconnects.
"""

import functools
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

Message = tuple[str, dict]
P = ParamSpec("P")
log = logging.getLogger(__name__)
T = TypeVar("T")

_outbox: ContextVar[list[Message] | None] = ContextVar("zos_notify_outbox", default=None)


def node_group(node_id: int) -> str:
    return f"node-{node_id}"


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def _coalesced(messages: list[Message]) -> list[Message]:
    """Consecutive live-feed events for one owner as ONE `deployment.events` message.

    A link's batch in a burst stores many events of one owner's jobs at once, and each
    `group_send` costs the worker Redis round trips and the feed a message to dispatch; a feed
    still sends each event as its own frame, in the same order (DeploymentFeedConsumer)."""
    out: list[Message] = []
    for group, message in messages:
        if message["type"] != "deployment.event" or not out or out[-1][0] != group:
            out.append((group, message))
            continue
        last = out[-1][1]
        if last["type"] == "deployment.event":
            out[-1] = (group, {"type": "deployment.events", "events": [last["event"]]})
        elif last["type"] != "deployment.events":
            out.append((group, message))
            continue
        out[-1][1]["events"].append(message["event"])
    return out


async def send_all(messages: list[Message]) -> None:
    """Send gathered messages, in order (from async code)."""
    layer = get_channel_layer()
    if layer is None:
        return
    messages = _coalesced(messages)
    for index, (group, message) in enumerate(messages):
        try:
            await layer.group_send(group, message)
        except (redis.RedisError, OSError) as exc:
            log.warning(
                "channel layer unavailable (%s); %d message(s) left to the catch-up poll and "
                "stored events",
                exc,
                len(messages) - index,
            )
            return


def _send_now(messages: list[Message]) -> None:
    if messages:
        async_to_sync(send_all)(messages)


def _send_on_commit(group: str, message: dict) -> None:
    def send() -> None:
        outbox = _outbox.get()
        if outbox is not None:
            outbox.append((group, message))
        else:
            _send_now([(group, message)])

    transaction.on_commit(send)


def collecting(func: Callable[P, T]) -> Callable[P, tuple[T, list[Message]]]:
    """`func` returning also the messages its committed transactions would have sent, for the
    async caller to send; if it raises, what it committed before is sent here and now."""

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> tuple[T, list[Message]]:
        messages: list[Message] = []
        token = _outbox.set(messages)
        try:
            result = func(*args, **kwargs)
        except BaseException:
            _outbox.reset(token)
            _send_now(messages)
            raise
        _outbox.reset(token)
        return result, messages

    return run


def batched(func: Callable[P, T]) -> Callable[P, T]:
    """`func` sending all its messages in one hop once it returns (or raises); inside a
    `collecting` call they simply join that one's."""

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        if _outbox.get() is not None:
            return func(*args, **kwargs)
        result, messages = collecting(func)(*args, **kwargs)
        _send_now(messages)
        return result

    return run


def dispatch_on_node(
    node_id: int, job_uuid: str, attempt: int, envelope: dict | None = None
) -> None:
    """Push one job to its node's link. With its signed dispatch (the job is `dispatched`
    already) the link sends it as it comes; without, the link's next batch marks, signs and
    sends it. Either way just that job: reading every undelivered job of the node at each push
    made a burst quadratic."""
    message = {"type": "link.dispatch", "job": job_uuid, "attempt": attempt}
    if envelope is not None:
        message["envelope"] = envelope
    _send_on_commit(node_group(node_id), message)


def cancel_on_node(node_id: int, job_uuid: str) -> None:
    _send_on_commit(node_group(node_id), {"type": "link.cancel", "job": job_uuid})


def push_to_owner(owner_id: int, event: dict) -> None:
    _send_on_commit(user_group(owner_id), {"type": "deployment.event", "event": event})
