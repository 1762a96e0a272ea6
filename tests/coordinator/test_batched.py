"""coordinator.link_db.Batched: what many links ask of the database at one moment (a storm's
hellos and closes) goes in few calls, and every link still gets its own answer or error."""

import asyncio
import threading

import pytest

from coordinator.link_db import Batched


def test_concurrent_calls_are_coalesced_and_each_caller_gets_its_own_result():
    calls: list[list[int]] = []
    first_call_running = threading.Event()
    release = threading.Event()

    def double(items: list[int]) -> list[int]:
        calls.append(list(items))
        first_call_running.set()
        release.wait(timeout=30)  # the first call is slow: the others queue meanwhile
        return [2 * i for i in items]

    async def storm() -> list[int]:
        batched = Batched(double)
        first = asyncio.ensure_future(batched(0))
        await asyncio.to_thread(first_call_running.wait, 30)
        rest = [asyncio.ensure_future(batched(i)) for i in range(1, 100)]
        await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(storm()) == [2 * i for i in range(100)]
    assert calls == [[0], list(range(1, 100))]


def test_an_error_reaches_every_caller_of_the_failed_call_and_the_next_call_runs():
    def fail_on_13(items: list[int]) -> None:
        if 13 in items:
            raise RuntimeError("database unavailable")

    async def run() -> list:
        batched = Batched(fail_on_13)
        failed = await asyncio.gather(batched(13), batched(14), return_exceptions=True)
        return [*failed, await batched(15)]

    outcome = asyncio.run(run())
    assert [type(o) for o in outcome[:2]] == [RuntimeError, RuntimeError]
    assert outcome[2] is None


@pytest.fixture(autouse=True)
def _db(db):
    """db_call closes Django's connections around each call."""
