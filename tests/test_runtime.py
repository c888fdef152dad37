"""Dedupe and per-room processing through the storage's inbox, without HTTP."""

from __future__ import annotations

import asyncio

from webhooks import RecordingDelivery, sdk_body

from qbot import Bot, Context
from qbot.models import Update
from qbot.runtime import Runtime
from qbot.storage import MemoryStorage


async def test_runtime_dedupe_remembers_for_the_ttl_then_forgets() -> None:
    now = [1000.0]
    bot = Bot(email="bot@example.com")
    bot.delivery = RecordingDelivery()
    bot.use_storage(MemoryStorage(clock=lambda: now[0]))
    runtime = Runtime(bot, dedupe_ttl=600)
    first = Update.model_validate(sdk_body("a", room_id=1, message_id=1))
    other = Update.model_validate(sdk_body("b", room_id=1, message_id=2))
    assert await runtime.submit(first) == "accepted"
    assert await runtime.submit(first) == "duplicate"
    now[0] += 599.0
    assert await runtime.submit(first) == "duplicate"
    assert await runtime.submit(other) == "accepted"
    now[0] += 1.5
    assert await runtime.submit(first) == "accepted"
    await runtime.drain(timeout=10)


async def test_runtime_drain_processes_everything_accepted_then_refuses() -> None:
    bot = Bot(email="bot@example.com")
    bot.delivery = out = RecordingDelivery()

    @bot.message()
    async def slow_echo(ctx: Context) -> None:
        await asyncio.sleep(0.01)
        await ctx.reply(ctx.text)

    runtime = Runtime(bot)
    for i in range(10):
        update = Update.model_validate(sdk_body(str(i), room_id=i % 3))
        assert await runtime.submit(update) == "accepted"
    assert await runtime.drain(timeout=10) == 0
    assert sorted(out.texts, key=int) == [str(i) for i in range(10)]
    assert await runtime.submit(Update.model_validate(sdk_body("late"))) == "closing"


async def test_runtime_drain_timeout_cancels_and_reports_unprocessed() -> None:
    bot = Bot(email="bot@example.com")
    bot.delivery = RecordingDelivery()
    release = asyncio.Event()

    @bot.message()
    async def stuck(ctx: Context) -> None:
        await release.wait()

    runtime = Runtime(bot)
    for i in range(3):
        await runtime.submit(Update.model_validate(sdk_body(str(i), room_id=1)))
    await asyncio.sleep(0)
    assert await runtime.drain(timeout=0.05) == 3
    assert runtime.pending == 0
