"""WebSocket consumers: the node link (`/ws/node/`) and the owner's live feed (`/ws/deployments/`).

Thin on purpose: they authenticate, translate messages, and call coordinator.services.
"""

import asyncio
import logging
import secrets
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError
from nacl.exceptions import BadSignatureError

from coordinator import links, nodelogs, notify, services
from coordinator.inventory import record_inventory
from coordinator.link_db import Batched, db_call
from coordinator.linkloop import link_loop, lost_links
from coordinator.notify import node_group, user_group
from coordinator.ws_json import JsonConsumer
from ledger.models import Node
from signing import SignatureError
from signing.keys import b64decode, parse_public_key

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 10
WS_CONTEXT = b"zos-ws-v1\n"
CLOSE_BAD_SIGNATURE = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TIMEOUT = 4408
CLOSE_TRY_AGAIN = 1013  # RFC 6455 "try again later": a backing service is down
# How many dispatches (and cancels) a link remembers having sent, so that it does not send them
# twice in one session. Each is forgotten once the node answers it; this bounds what a node that
# never answers can make its link hold (beyond it the oldest are forgotten, and at worst sent
# again: the node takes a job id once).
MAX_REMEMBERED = 10_000
# The node's messages stored through the link's batch (services.handle_link_messages).
BATCHED = frozenset({"accepted", "rejected", "event", "cancel_ack"})


def _remember(seen: dict, key) -> None:
    seen[key] = None
    if len(seen) > MAX_REMEMBERED:
        del seen[next(iter(seen))]


def _hello_nodes(hellos: list[tuple[str, str]]) -> list[tuple[Node | None, bool]]:
    """At hello, for every link saying hello meanwhile (public key, session) in one trip to
    the database: the approved node with the key (its link recorded up), and whether it has
    dispatches or cancels waiting. Most nodes that link have none, and reading them (a locking
    transaction) was the largest part of a handshake's cost in a reconnect storm. Work queued
    between this check and the link joining its node's group is found by the link loop's
    catch-up poll (ZOS_LINK_POLL)."""
    nodes = links.link_approved_nodes(hellos)
    busy = services.nodes_with_work([node.pk for node in nodes.values()]) if nodes else set()
    return [
        (node, node.pk in busy) if (node := nodes.get(key)) else (None, False) for key, _ in hellos
    ]


_hello_node = Batched(_hello_nodes)
_events_between = db_call(services.events_between)
_latest_event_id = db_call(services.latest_event_id)
# Deployments a feed remembers its last event of; an older one's gaps are left to the client's
# catch-up from the API (a feed that reconnects reads the stored events anyway).
FEED_REMEMBERS = 1000
FEED_DB_ATTEMPTS = 5  # a gap's stored events asked for at most this often, a second apart


def _opens(event: dict) -> bool:
    """Whether a feed event is the first one stored of its deployment."""
    return event.get("status") == "queued" and event.get("attempt") == 1


class NodeLinkConsumer(JsonConsumer):
    """One per connected node: challenge, hello, then dispatches down and events up.

    Liveness: a node whose hello lists the `beat` feature is told in `welcome` to send a `beat`
    every ZOS_LINK_PING_INTERVAL seconds, and its link is marked down and closed once nothing
    came from it for ZOS_LINK_PING_INTERVAL + ZOS_LINK_PING_TIMEOUT (one small message per
    interval instead of a ping and its pong).
    Nodes listing only `pong` are pinged by the process's link loop, and any message answers;
    agents older than both are left to the transport's own checks rather than cut off.

    Database work is batched: the node's job messages and the pushes of dispatches and cancels
    queue in `inbox`, and one task stores everything that arrived while the previous call ran
    in ONE transaction, in arrival order (services.handle_link_messages). A link's messages are
    still handled one batch after another, so a job's events keep their order.
    """

    async def connect(self) -> None:
        self.node_id: int | None = None
        self.session = secrets.token_hex(16)
        # Sent in this session and not answered yet (insertion-ordered, bounded: _remember).
        self.sent: dict[tuple[str, int], None] = {}
        self.cancels_sent: dict[str, None] = {}
        self.inbox: list[tuple[str, dict]] = []
        self.drain: asyncio.Task | None = None
        self.challenge = secrets.token_hex(16)
        self.pings = 0
        self.last_ping = time.monotonic()
        self.last_heard = time.monotonic()
        self.unanswered_since: float | None = None
        self.answers_pings = False
        self.beats = False
        self.features: list = []
        self.log_requests: dict[str, str] = {}  # request id → reply channel (nodelogs)
        self.lost = False
        # Set when the database refused what the node sent: the link is closing, and whatever
        # the node sends until it has closed is ignored, or a later event could be stored before
        # the refused one, which the node sends again on its next link.
        self.refusing = False
        await self.accept()
        await self.send_json({"type": "challenge", "nonce": self.challenge})
        self.hello_timer = asyncio.get_running_loop().call_later(
            HELLO_TIMEOUT, lambda: asyncio.ensure_future(self._timeout())
        )

    async def _timeout(self) -> None:
        if self.node_id is None:
            await self.close(code=CLOSE_TIMEOUT)

    async def disconnect(self, code: int) -> None:
        self.hello_timer.cancel()
        if self.node_id is not None:
            link_loop.remove(self)
            if self.drain is not None:  # what the node sent before it left is still stored
                await asyncio.wait([self.drain])
            # Marked lost first: a discard that fails (the channel layer's Redis is down, which
            # may be why the link closed) must not leave the link looking live.
            await self._mark_lost(f"closed ({code})")
            await self.channel_layer.group_discard(node_group(self.node_id), self.channel_name)

    async def _mark_lost(self, reason: str) -> None:
        if not self.lost:
            self.lost = True
            await lost_links((self.node_id, self.session, reason))

    def beating(self, now: float) -> bool:
        """Whether this link's node beats and was heard from in time: the link loop's check of
        most links, made without a coroutine per link per tick (most of an idle worker's tick)."""
        limit = settings.ZOS_LINK_PING_INTERVAL + settings.ZOS_LINK_PING_TIMEOUT
        return self.beats and not self.lost and now - self.last_heard <= limit

    async def keepalive(self, now: float) -> bool:
        """Ping when due (or, for a beating node, check it beats); False (and the link closed)
        once the node fell silent."""
        if self.lost:
            return False
        if self.beats:
            silent = now - self.last_heard
            limit = settings.ZOS_LINK_PING_INTERVAL + settings.ZOS_LINK_PING_TIMEOUT
            if silent > limit:
                return await self._silent(f"no beat for {silent:.0f}s")
            return True
        if self.answers_pings and self.unanswered_since is not None:
            silent = now - self.unanswered_since
            if silent > settings.ZOS_LINK_PING_TIMEOUT:
                return await self._silent(f"no answer to pings for {silent:.0f}s")
        if now - self.last_ping >= settings.ZOS_LINK_PING_INTERVAL:
            self.pings += 1
            self.last_ping = now
            if self.unanswered_since is None:
                self.unanswered_since = now
            await self.send_json({"type": "ping", "id": self.pings})
        return True

    async def _silent(self, reason: str) -> bool:
        log.warning("node %s: %s", self.node_id, reason)
        await self._mark_lost(reason)
        await self.close(code=CLOSE_TIMEOUT)
        return False

    async def receive_json(self, content, **kwargs) -> None:
        try:
            await self._receive(content)
        except (OperationalError, InterfaceError) as exc:
            # The database is down (PostgreSQL restarting): what the node just sent was not
            # stored, and it sends an outbox entry once per link, so the link is closed: the node
            # reconnects and sends again everything not acknowledged, from its oldest entry.
            await self._refuse(exc)

    async def _refuse(self, exc: Exception) -> None:
        log.warning("node %s: database unavailable (%s); closing its link", self.node_id, exc)
        self.refusing = True
        self.inbox = []
        await self.close(code=CLOSE_TRY_AGAIN)

    async def _receive(self, content) -> None:
        if not isinstance(content, dict) or self.refusing:
            return
        self.unanswered_since = None  # any word from the node shows it is alive
        self.last_heard = time.monotonic()
        kind = content.get("type")
        if not isinstance(kind, str):
            return
        if self.node_id is None:
            if kind == "hello":
                await self._hello(content)
            else:
                await self.close(code=CLOSE_FORBIDDEN)
            return
        if kind in BATCHED:
            self._queue(kind, content)
            return
        handler = {
            "inventory": self._inventory,
            "pong": self._pong,
            "logs": self._logs,
        }.get(kind)
        if handler:
            try:
                await handler(content)
            except (OperationalError, InterfaceError):
                raise
            except Exception:
                # One bad message must not end a node's link (and with it every job on the
                # node); it is logged as the bug it is, and the node told.
                log.exception("node %s: %s message failed: %.300r", self.node_id, kind, content)
                await self._failed(str(kind))

    async def _failed(self, kind: str) -> None:
        await self.send_json(
            {"type": "error", "error": "internal_error", "message": f"{kind} failed"}
        )

    async def _hello(self, content: dict) -> None:
        try:
            key = parse_public_key(str(content.get("key", "")))
            key.verify(
                WS_CONTEXT + self.challenge.encode(),
                b64decode(str(content.get("sig", "")), what="sig"),
            )
        except (SignatureError, BadSignatureError, ValueError):
            await self.close(code=CLOSE_BAD_SIGNATURE)
            return
        node, has_work = await _hello_node((bytes(key).hex(), self.session))
        if node is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.hello_timer.cancel()
        self.node_id = node.pk
        features = content.get("features")
        self.features = features if isinstance(features, list) else []
        self.answers_pings = "pong" in self.features
        self.beats = "beat" in self.features
        await self.channel_layer.group_add(node_group(node.pk), self.channel_name)
        # Our clock, so a node whose clock is off checks expiry and stamps its events by ours.
        welcome = {"type": "welcome", "node": node.pk, "time": time.time()}
        if self.beats:
            welcome["beat"] = settings.ZOS_LINK_PING_INTERVAL
        await self.send_json(welcome)
        link_loop.add(self)
        if has_work:
            await self.send_pending()

    def _queue(self, kind: str, content: dict) -> None:
        """Queue work for the link's next batch, starting the task that drains it if idle."""
        if self.refusing or (kind == "pending" and ("pending", {}) in self.inbox):
            return
        self.inbox.append((kind, content))
        if self.drain is None or self.drain.done():
            self.drain = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while self.inbox:
            messages, self.inbox = self.inbox, []
            # Only a `pending` read needs to know what this session already sent.
            wants_sent = any(kind == "pending" for kind, _ in messages)
            try:
                replies = await self._call(
                    services.handle_link_messages,
                    node_id=self.node_id,
                    messages=messages,
                    sent=frozenset(self.sent) if wants_sent else frozenset(),
                )
                await self._send_replies(replies)
            except (OperationalError, InterfaceError) as exc:
                # The database is down: the node's messages in the batch were not stored, and
                # it sends an outbox entry once per link, so the link is closed and the node
                # sends again all it has not had acknowledged; the link's own work (dispatches,
                # cancels) is read again at the next welcome.
                await self._refuse(exc)
                return
            except Exception:
                log.exception("node %s: a batch of %d messages failed", self.node_id, len(messages))

    async def _send_replies(self, replies: services.LinkReplies) -> None:
        for job_id, attempt, envelope in replies.dispatches:
            await self._send_dispatch(job_id, attempt, envelope)
        for job_id, envelope in replies.cancels:
            if job_id not in self.cancels_sent:
                _remember(self.cancels_sent, job_id)
                await self.send_json({"type": "cancel", "envelope": envelope})
        for key in replies.settled:
            self.sent.pop(key, None)
        for job_id in replies.cancels_settled:
            self.cancels_sent.pop(job_id, None)
        if replies.acks:
            await self.send_json({"type": "ack", "ids": replies.acks})
        for kind in replies.failed:
            await self._failed(kind)

    async def _call(self, service, **kwargs):
        """A service call in the database thread; what it announces is sent from here, so the
        thread never waits for the event loop (coordinator/notify.py)."""
        result, messages = await db_call(notify.collecting(service))(**kwargs)
        await notify.send_all(messages)
        return result

    async def send_pending(self) -> None:
        """Queue a read of every dispatch and cancel the node has not acknowledged: at welcome,
        and when the link loop finds work a push did not bring (sent ones are not re-sent)."""
        self._queue("pending", {})

    async def _inventory(self, content: dict) -> None:
        await db_call(record_inventory)(self.node_id, content.get("workloads"))

    async def _pong(self, content: dict) -> None:
        self.answers_pings = True

    async def _logs(self, content: dict) -> None:
        reply = self.log_requests.pop(str(content.get("id")), None)
        if reply:
            await self.channel_layer.send(reply, nodelogs.reply_from_node(content))

    async def link_logs(self, message: dict) -> None:
        """A staff request for this node's log tail (coordinator.nodelogs): ask the node."""
        if "logs" not in self.features:
            await self.channel_layer.send(message["reply"], nodelogs.NOT_SUPPORTED)
            return
        request_id = secrets.token_hex(8)
        self.log_requests[request_id] = message["reply"]
        if len(self.log_requests) > nodelogs.MAX_OPEN_REQUESTS:  # requesters gave up long ago
            self.log_requests.pop(next(iter(self.log_requests)))
        await self.send_json(
            {"type": "logs", "id": request_id, "lines": message["lines"], "after": message["after"]}
        )

    async def link_dispatch(self, message: dict) -> None:
        """A job for this node (notify.dispatch_on_node). One already dispatched comes with
        its signed dispatch and is sent now; one that only names the job (a job moved here from
        another node, or the push of a process older than the envelope in it) is marked, signed
        and sent by the next batch."""
        envelope = message.get("envelope")
        if envelope is None:
            self._queue("dispatch", {"job_id": message["job"], "attempt": message["attempt"]})
            return
        await self._send_dispatch(message["job"], message["attempt"], envelope)

    async def _send_dispatch(self, job_id: str, attempt: int, envelope: dict) -> None:
        if (job_id, attempt) not in self.sent:
            _remember(self.sent, (job_id, attempt))
            await self.send_json({"type": "dispatch", "envelope": envelope})

    async def link_wake(self, message: dict) -> None:
        """The push of processes that predate `link.dispatch` (a rolling upgrade): read all."""
        await self.send_pending()

    async def link_cancel(self, message: dict) -> None:
        self._queue("cancel", {"job_id": message["job"]})


class DeploymentFeedConsumer(JsonConsumer):
    """Pushes every job event of the logged-in user's deployments, and nobody else's.

    Events are pushed once their transaction commits, so a worker killed between the two stored
    an event that no feed was told. Each feed remembers the last event it sent per deployment;
    an event that does not follow it is preceded by the stored ones in between (one query, only
    then), and one already sent that way is not sent again. A deployment's first event heard
    that is not the one that opens it (`queued`, attempt 1) is preceded the same way by what was
    stored since the feed connected: the events whose pushes were lost with a killed worker may
    be its first ones. So a feed tells every event stored while it is connected once and in
    order (beyond FEED_REMEMBERS deployments at once, from its first event of a deployment on).
    """

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_BAD_SIGNATURE)
            return
        self.user_id = user.pk
        self.told: dict[int, int] = {}  # deployment → seq of the last event sent
        self.forgot = False  # whether a deployment was dropped from `told` (FEED_REMEMBERS)
        self.since = await _latest_event_id()  # the events stored before this feed connected
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def deployment_events(self, message: dict) -> None:
        """Several events of one batch in one message (notify._coalesced), told one by one."""
        for event in message["events"]:
            await self._tell(event)

    async def deployment_event(self, message: dict) -> None:
        await self._tell(message["event"])

    async def _stored_between(self, **query) -> list[dict]:
        """The stored events to fill a gap with. Asked again on a database error: just after
        PostgreSQL restarted, a pooled connection it dropped fails once, and the events that
        follow a restart are the ones a feed must not lose."""
        for _ in range(FEED_DB_ATTEMPTS - 1):
            try:
                return await _events_between(**query)
            except (OperationalError, InterfaceError):
                await asyncio.sleep(1)
        return await _events_between(**query)  # the last attempt's error ends the feed

    async def _tell(self, event: dict) -> None:
        deployment, seq = event["deployment"], event["seq"]
        last = self.told.pop(deployment, None)  # re-inserted below: the newest stay
        if last is None and not self.forgot and seq > self.since and not _opens(event):
            last = self.since  # its earlier events stored since connecting were never pushed
        if last is not None and seq <= last:
            self.told[deployment] = last  # already sent, filling a gap
            return
        if last is not None and seq > last + 1:
            for missed in await self._stored_between(
                owner_id=self.user_id,
                deployment_id=deployment,
                after=last,
                before=seq,
                state=event["state"],
            ):
                await self.send_json(missed)
        self.told[deployment] = seq
        if len(self.told) > FEED_REMEMBERS:
            del self.told[next(iter(self.told))]
            self.forgot = True
        await self.send_json(event)
