"""Database calls of node links and feed logins, run in a pool of threads, not Channels' one.

Channels' `database_sync_to_async` runs every consumer's database call of a process in a single
shared thread, one after another. With many links that thread is the limit: at 1,000 simulated
nodes and 20 deployments a second on the production profile, each `accepted`, `running` and
`succeeded` waited behind the others' transactions, and submit → accepted reached 2 s at the
median and 14 s at p99 while the thread never stopped (docs/performance.md). Here the calls run
in the event loop's thread pool, so different links' calls overlap (each still holds a pooled
connection only for its own call).

On SQLite the calls stay in Channels' one thread: SQLite serialises writers anyway, so other
threads would only wait on its lock (and an in-memory test database's open transaction locks its
tables against every other thread's connection).

Order is unchanged where it matters: a consumer handles its messages one at a time and awaits
each call before the next, so one link's events are still stored in the order they came.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.db import connections


def db_call(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """`func` as an awaitable run in a pool thread, with Django's connection cleanup around it."""
    sqlite = connections["default"].vendor == "sqlite"
    return database_sync_to_async(func, thread_sensitive=sqlite)


class Batched:
    """Calls of `func` from many links coalesced: each caller awaits its own item's result, and
    every item that arrives while one call runs goes into the next call, as one list. For the
    database work every link does at the same moment in a reconnect storm (hello, close): one
    trip and a few statements for hundreds of links instead of one trip each, which queued on
    the worker's few database threads (docs/performance.md). `func` takes the list of items and
    returns one result per item, in order (or None: every result None)."""

    def __init__(self, func: Callable[[list], list | None]) -> None:
        self.func = func
        self.pending: list[tuple[Any, asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def __call__(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        result = loop.create_future()
        self.pending.append((item, result))
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._run())
        return await result

    async def _run(self) -> None:
        call = db_call(self.func)
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                results = await call([item for item, _ in batch])
            except Exception as exc:  # every caller sees it, as it would its own call's
                for _, result in batch:
                    if not result.done():
                        result.set_exception(exc)
                continue
            for index, (_, result) in enumerate(batch):
                if not result.done():
                    result.set_result(None if results is None else results[index])
