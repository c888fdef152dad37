"""qbot._aio: cancelling background tasks that may miss a cancel (Python 3.11's wait_for)."""

from __future__ import annotations

import asyncio
import gc
import uuid
from typing import Any

import pytest

from qbot import Bot
from qbot._aio import Shared, cancel_and_wait
from qbot.runtime import Runtime
from qbot.storage import RedisStorage


async def test_cancel_and_wait_ends_a_loop_that_swallowed_its_first_cancel() -> None:
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if rounds == 1:  # as asyncio.wait_for does on 3.11 when its result lands then
                    continue
                raise

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    async with asyncio.timeout(30):  # a hang guard, not a measure
        await cancel_and_wait([task])
    assert task.cancelled() and rounds == 2


async def test_cancel_and_wait_leaves_finished_tasks_and_waits_for_none() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await cancel_and_wait([done])
    await cancel_and_wait([])
    assert done.done() and not done.cancelled()


async def test_cancel_and_wait_sees_what_its_tasks_raised_as_gather_did() -> None:
    # Two workers failing at once: the supervisor read one failure and logged the other's
    # traceback as "Task exception was never retrieved" (one error line expected, CI failed).
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))

    async def fail() -> None:
        raise RuntimeError("worker 2 exit code 1 before serving")

    tasks = [asyncio.create_task(fail()), asyncio.create_task(fail())]
    await asyncio.sleep(0)
    await cancel_and_wait(tasks)
    assert isinstance(tasks[1].exception(), RuntimeError)  # still there for the caller
    del tasks
    gc.collect()
    await asyncio.sleep(0)
    assert reported == []


async def test_shared_a_call_during_a_cancel_the_run_swallows_gets_the_runs_result() -> None:
    # The only caller is cancelled; the run takes the cancel as its answer lands and finishes
    # (Python 3.11's wait_for). A call made meanwhile waits for it and has its result: no
    # second run, no CancelledError.
    runs, began, unwinding = 0, asyncio.Event(), asyncio.Event()

    async def start() -> str:
        nonlocal runs
        runs += 1
        began.set()
        if runs == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                unwinding.set()
                await asyncio.sleep(0)  # winding down: a call comes in this tick
        return f"run {runs}"

    shared: Shared[str] = Shared()
    only = asyncio.create_task(shared.run(start))
    await began.wait()
    only.cancel()
    await unwinding.wait()
    async with asyncio.timeout(30):  # a hang guard, not a measure
        late = await shared.run(start)
        await asyncio.wait([only])
        assert (late, runs) == ("run 1", 1) and only.cancelled()
        assert await shared.run(start) == "run 2"  # an ended run is forgotten


@pytest.mark.redis
async def test_runtime_on_redis_drained_right_after_it_starts_stops() -> None:
    # The claim and schedule loops' first Redis calls are in flight: on 3.11 redis-py's
    # wait_for took the cancel of the drain and the loop ran on, so the drain never ended
    # (a worker restarted just before a SIGTERM was killed after the drain timeout).
    for _ in range(5):
        url = f"redis://127.0.0.1:6379/0?prefix=qbot-aio-{uuid.uuid4().hex}:"
        bot, storage = Bot("aio"), RedisStorage(url)
        bot.use_storage(storage, url=url)
        runtime = Runtime(bot, lease_ttl=2)
        await runtime.start()
        await asyncio.sleep(0)
        try:
            async with asyncio.timeout(30):  # a hang guard, not a measure
                assert await runtime.drain(10) == 0
        finally:
            await storage.drop()
            await storage.close()
