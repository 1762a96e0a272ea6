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
from coordinator.envelopes import cancel_envelope
from coordinator.inventory import record_inventory
from coordinator.link_db import db_call
from coordinator.linkloop import link_loop
from coordinator.models import Job
from coordinator.notify import node_group, user_group
from coordinator.ws_json import JsonConsumer
from ledger.models import Node
from ledger.states import APPROVED_STATUSES
from signing import SignatureError
from signing.keys import b64decode, parse_public_key

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 10
WS_CONTEXT = b"zos-ws-v1\n"
CLOSE_BAD_SIGNATURE = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TIMEOUT = 4408
CLOSE_TRY_AGAIN = 1013  # RFC 6455 "try again later": a backing service is down


@db_call
def _approved_node(public_key: str) -> Node | None:
    node = Node.objects.filter(public_key=public_key).first()
    return node if node is not None and node.status in APPROVED_STATUSES else None


_events_between = db_call(services.events_between)
# Deployments a feed remembers its last event of; an older one's gaps are left to the client's
# catch-up from the API (a feed that reconnects reads the stored events anyway).
FEED_REMEMBERS = 1000


@db_call
def _cancel_envelope(job_uuid: str) -> dict | None:
    job = Job.objects.select_related("node").filter(uuid=job_uuid).first()
    return cancel_envelope(job) if job and job.node else None


class NodeLinkConsumer(JsonConsumer):
    """One per connected node: challenge, hello, then dispatches down and events up.

    The process's link loop pings it: any message from the node counts as an answer, and a node
    silent for ZOS_LINK_PING_TIMEOUT after a ping has its link marked down and closed. That holds
    for nodes whose hello lists the `pong` feature (or that have answered a ping); agents older
    than pings are left to the transport's own checks rather than cut off every few seconds.
    """

    async def connect(self) -> None:
        self.node_id: int | None = None
        self.session = secrets.token_hex(16)
        self.sent: set[tuple[str, int]] = set()
        self.cancels_sent: set[str] = set()
        self.challenge = secrets.token_hex(16)
        self.pings = 0
        self.last_ping = time.monotonic()
        self.unanswered_since: float | None = None
        self.answers_pings = False
        self.features: list = []
        self.log_requests: dict[str, str] = {}  # request id → reply channel (nodelogs)
        self.lost = False
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
            # Marked lost first: a discard that fails (the channel layer's Redis is down, which
            # may be why the link closed) must not leave the link looking live.
            await self._mark_lost(f"closed ({code})")
            await self.channel_layer.group_discard(node_group(self.node_id), self.channel_name)

    async def _mark_lost(self, reason: str) -> None:
        if not self.lost:
            self.lost = True
            await db_call(links.link_lost)(self.node_id, self.session, reason)

    async def keepalive(self, now: float) -> bool:
        """Ping when due; False (and the link closed) once the node stopped answering."""
        if self.lost:
            return False
        if self.answers_pings and self.unanswered_since is not None:
            silent = now - self.unanswered_since
            if silent > settings.ZOS_LINK_PING_TIMEOUT:
                log.warning("node %s did not answer pings for %.0fs", self.node_id, silent)
                await self._mark_lost(f"no answer to pings for {silent:.0f}s")
                await self.close(code=CLOSE_TIMEOUT)
                return False
        if now - self.last_ping >= settings.ZOS_LINK_PING_INTERVAL:
            self.pings += 1
            self.last_ping = now
            if self.unanswered_since is None:
                self.unanswered_since = now
            await self.send_json({"type": "ping", "id": self.pings})
        return True

    async def receive_json(self, content, **kwargs) -> None:
        try:
            await self._receive(content)
        except (OperationalError, InterfaceError) as exc:
            # The database is down (PostgreSQL restarting): what the node just sent was not
            # stored, and it sends an outbox entry once per link, so the link is closed: the node
            # reconnects and sends again everything not acknowledged, from its oldest entry.
            log.warning("node %s: database unavailable (%s); closing its link", self.node_id, exc)
            await self.close(code=CLOSE_TRY_AGAIN)

    async def _receive(self, content) -> None:
        if not isinstance(content, dict):
            return
        self.unanswered_since = None  # any word from the node shows it is alive
        kind = content.get("type")
        if self.node_id is None:
            if kind == "hello":
                await self._hello(content)
            else:
                await self.close(code=CLOSE_FORBIDDEN)
            return
        handler = {
            "accepted": self._accepted,
            "rejected": self._rejected,
            "event": self._event,
            "inventory": self._inventory,
            "cancel_ack": self._cancel_ack,
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
        node = await _approved_node(bytes(key).hex())
        if node is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.hello_timer.cancel()
        self.node_id = node.pk
        features = content.get("features")
        self.features = features if isinstance(features, list) else []
        self.answers_pings = "pong" in self.features
        await db_call(links.link_up)(node.pk, self.session)
        await self.channel_layer.group_add(node_group(node.pk), self.channel_name)
        # Our clock, so a node whose clock is off checks expiry and stamps its events by ours.
        await self.send_json({"type": "welcome", "node": node.pk, "time": time.time()})
        link_loop.add(self)
        await self.send_pending()

    async def _call(self, service, **kwargs):
        """A service call in the database thread; what it announces is sent from here, so the
        thread never waits for the event loop (coordinator/notify.py)."""
        result, messages = await db_call(notify.collecting(service))(**kwargs)
        await notify.send_all(messages)
        return result

    async def send_pending(self) -> None:
        """Every dispatch and cancel the node has not acknowledged, once per connection."""
        dispatches, cancels = await self._call(services.pending_deliveries, node_id=self.node_id)
        for job_id, attempt, envelope in dispatches:
            if (job_id, attempt) not in self.sent:
                self.sent.add((job_id, attempt))
                await self.send_json({"type": "dispatch", "envelope": envelope})
        for job_id, envelope in cancels:
            if job_id not in self.cancels_sent:
                self.cancels_sent.add(job_id)
                await self.send_json({"type": "cancel", "envelope": envelope})

    async def _accepted(self, content: dict) -> None:
        await self._call(
            services.job_accepted,
            node_id=self.node_id,
            job_id=str(content.get("job_id", "")),
            attempt=content.get("attempt"),
        )

    async def _rejected(self, content: dict) -> None:
        log.warning("node %s refused job %s: %s", self.node_id, content.get("job_id"), content)
        await self._call(
            services.job_rejected,
            node_id=self.node_id,
            job_id=str(content.get("job_id", "")),
            attempt=content.get("attempt"),
            code=str(content.get("error", "rejected"))[:64],
            message=str(content.get("message", ""))[:1000],
        )

    async def _event(self, content: dict) -> None:
        await self._call(services.record_node_event, node_id=self.node_id, message=content)
        if content.get("id"):
            await self.send_json({"type": "ack", "ids": [str(content["id"])]})

    async def _inventory(self, content: dict) -> None:
        await db_call(record_inventory)(self.node_id, content.get("workloads"))

    async def _cancel_ack(self, content: dict) -> None:
        state = content.get("state")
        await self._call(
            services.cancel_acknowledged,
            node_id=self.node_id,
            job_id=str(content.get("job_id", "")),
            node_state=str(state)[:16] if state else None,
        )

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

    async def link_wake(self, message: dict) -> None:
        await self.send_pending()

    async def link_cancel(self, message: dict) -> None:
        envelope = await _cancel_envelope(message["job"])
        if envelope:
            self.cancels_sent.add(message["job"])
            await self.send_json({"type": "cancel", "envelope": envelope})


class DeploymentFeedConsumer(JsonConsumer):
    """Pushes every job event of the logged-in user's deployments, and nobody else's.

    Events are pushed once their transaction commits, so a worker killed between the two stored
    an event that no feed was told. Each feed remembers the last event it sent per deployment;
    an event that does not follow it is preceded by the stored ones in between (one query, only
    then), and one already sent that way is not sent again. So from its first event of a
    deployment on, a feed tells every stored event of it once and in order.
    """

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_BAD_SIGNATURE)
            return
        self.user_id = user.pk
        self.told: dict[int, int] = {}  # deployment → seq of the last event sent
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def deployment_event(self, message: dict) -> None:
        event = message["event"]
        deployment, seq = event["deployment"], event["seq"]
        last = self.told.pop(deployment, None)  # re-inserted below: the newest stay
        if last is not None and seq <= last:
            self.told[deployment] = last  # already sent, filling a gap
            return
        if last is not None and seq > last + 1:
            for missed in await _events_between(
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
        await self.send_json(event)
