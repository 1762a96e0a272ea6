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

from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.db import connections


def db_call(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """`func` as an awaitable run in a pool thread, with Django's connection cleanup around it."""
    sqlite = connections["default"].vendor == "sqlite"
    return database_sync_to_async(func, thread_sensitive=sqlite)
