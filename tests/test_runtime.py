"""Dedupe memory and per-room processing without HTTP."""

from __future__ import annotations

import asyncio

from webhooks import RecordingDelivery, sdk_body

from qbot import Bot, Context
from qbot.models import Update
from qbot.runtime import Deduper, Runtime


def test_runtime_deduper_remembers_for_the_ttl_then_forgets() -> None:
    now = [0.0]
    deduper = Deduper(ttl=600, clock=lambda: now[0])
    assert deduper.claim("r:1")
    assert not deduper.claim("r:1")
    now[0] = 599.0
    assert not deduper.claim("r:1")
    assert deduper.claim("r:2")
    now[0] = 600.5
    assert deduper.claim("r:1")
    now[0] = 2000.0
    deduper.claim("r:3")
    assert len(deduper) == 1  # expired keys are purged, memory stays bounded


async def test_runtime_drain_processes_everything_accepted_then_refuses() -> None:
    bot = Bot(email="bot@example.com")
    bot.delivery = out = RecordingDelivery()

    @bot.message()
    async def slow_echo(ctx: Context) -> None:
        await asyncio.sleep(0.01)
        await ctx.reply(ctx.text)

    runtime = Runtime(bot)
    for i in range(10):
        assert runtime.submit(Update.model_validate(sdk_body(str(i), room_id=i % 3))) == "accepted"
    assert await runtime.drain(timeout=10) == 0
    assert sorted(out.texts, key=int) == [str(i) for i in range(10)]
    assert runtime.submit(Update.model_validate(sdk_body("late"))) == "closing"


async def test_runtime_drain_timeout_cancels_and_reports_unprocessed() -> None:
    bot = Bot(email="bot@example.com")
    bot.delivery = RecordingDelivery()
    release = asyncio.Event()

    @bot.message()
    async def stuck(ctx: Context) -> None:
        await release.wait()

    runtime = Runtime(bot)
    for i in range(3):
        runtime.submit(Update.model_validate(sdk_body(str(i), room_id=1)))
    await asyncio.sleep(0)
    assert await runtime.drain(timeout=0.05) == 3
    assert runtime.pending == 0
