"""The one background task per process that looks after every node link the process holds.

ARCHITECTURE §7 allows at most one catch-up poller per process, never one per link, so this task
does for all links at once what no push can: it checks each link is still heard from (a beating
node's beats, or the answers to the pings it sends nodes older than beats; a silent one has its
link marked down and closed), refreshes the live links' `seen_at` with one write, and has the
links send the dispatches and cancels a push did not bring (the coordinator worker's retries
reach a link this way when the channel layer is in-memory), asking the database once which nodes
have any.
The task starts with the first link and ends after the last.
"""

import asyncio
import logging
import time
from typing import Protocol

from django.conf import settings

from coordinator import links, services
from coordinator.link_db import Batched, db_call

log = logging.getLogger(__name__)


class Link(Protocol):
    node_id: int | None
    session: str

    def beating(self, now: float) -> bool: ...

    async def keepalive(self, now: float) -> bool: ...

    async def send_pending(self) -> None: ...


class LinkLoop:
    def __init__(self) -> None:
        self.links: dict[int, Link] = {}
        self.task: asyncio.Task | None = None

    def add(self, link: Link) -> None:
        self.links[link.node_id] = link
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._run())

    def remove(self, link: Link) -> None:
        """Forget a link; the task ends by itself at its next tick once no link is left (it may
        be the caller, so it is never cancelled from here)."""
        if self.links.get(link.node_id) is link:
            del self.links[link.node_id]

    async def _run(self) -> None:
        tick = min(settings.ZOS_LINK_POLL, settings.ZOS_LINK_PING_INTERVAL)
        last_poll = last_refresh = time.monotonic()
        while self.links:
            await asyncio.sleep(tick)
            now = time.monotonic()
            try:
                alive = [
                    link
                    for link in list(self.links.values())
                    if link.beating(now) or await link.keepalive(now)
                ]
                if now - last_refresh >= settings.ZOS_LINK_PING_INTERVAL:
                    last_refresh = now
                    sessions = {link.node_id: link.session for link in alive}
                    await db_call(links.refresh)(sessions)
                if now - last_poll >= settings.ZOS_LINK_POLL:
                    last_poll = now
                    tokens = [link.session for link in alive]
                    busy = await db_call(services.linked_nodes_with_work)(tokens)
                    for node_id in busy:
                        if link := self.links.get(node_id):
                            await link.send_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node link upkeep failed; trying again next tick")


link_loop = LinkLoop()
# Closed links marked down together: the links of a dropped fleet close within a second, and one
# write each was the largest share of a worker's time in a 2,000-link storm (py-spy).
lost_links = Batched(links.links_lost)
