"""``SharedAnswer``: one computation answers every concurrent caller within its time to live;
failures are not kept."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.stores import SharedAnswer


async def test_concurrent_callers_share_one_computation_until_it_expires():
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return calls

    shared = SharedAnswer(ttl=0.2)
    assert await asyncio.gather(*(shared.get(compute) for _ in range(20))) == [1] * 20
    assert await shared.get(compute) == 1 and calls == 1
    await asyncio.sleep(0.25)
    assert await shared.get(compute) == 2 and calls == 2


async def test_callers_waiting_on_a_failing_computation_share_its_failure_once():
    calls = 0

    async def down() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise ConnectionError("store down")

    shared = SharedAnswer(ttl=1.0)
    outcomes = await asyncio.gather(*(shared.get(down) for _ in range(10)), return_exceptions=True)
    assert calls == 1 and all(isinstance(o, ConnectionError) for o in outcomes)


async def test_a_caller_that_gives_up_does_not_cancel_the_others():
    async def slow() -> str:
        await asyncio.sleep(0.1)
        return "done"

    shared = SharedAnswer(ttl=1.0)
    impatient = asyncio.ensure_future(shared.get(slow))
    patient = asyncio.ensure_future(shared.get(slow))
    await asyncio.sleep(0.02)
    impatient.cancel()
    assert await patient == "done"


async def test_a_failure_is_not_kept():
    shared = SharedAnswer(ttl=10)
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("store down")
        return "ok"

    with pytest.raises(ConnectionError):
        await shared.get(flaky)
    assert await shared.get(flaky) == "ok" and attempts == 2
