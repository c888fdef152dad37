"""Replies Qiscus did not accept yet stay in the outbox and are re-sent in order, same ids."""

from __future__ import annotations

from webhooks import sdk_body

from qbot import Bot, Context
from qbot.config import load_settings
from qbot.emulator import Emulator
from qbot.models import Update
from qbot.runtime import Runtime


async def test_runtime_outbox_resends_until_qiscus_accepts(fake_qiscus: Emulator) -> None:
    bot = Bot("outbox")

    @bot.message()
    async def two(ctx: Context) -> None:
        await ctx.reply(f"1 {ctx.text}")
        await ctx.reply(f"2 {ctx.text}")

    bot.configure(
        load_settings(
            None,
            qiscus={
                "app_id": fake_qiscus.config.app_id,
                "secret_key": fake_qiscus.config.secret_key,
                "base_url": fake_qiscus.base_url,
                "max_attempts": 1,
            },
            bot={"email": "bot@example.com"},
            storage={"url": "memory://"},
        )
    )
    fake_qiscus.fail_next("post_comment", status=503, times=3)  # Qiscus is down for a while
    runtime = Runtime(bot, sweep_every=0.05)
    try:
        await runtime.submit(Update.model_validate(sdk_body("a", room_id=1)))
        await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 2)
        await runtime.submit(Update.model_validate(sdk_body("b", room_id=1)))
        await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 4)
    finally:
        await runtime.drain(timeout=5)
        await bot.aclose()
    assert [c["message"] for c in fake_qiscus.posted_comments()] == ["1 a", "2 a", "1 b", "2 b"]
    tries = [c.body["unique_temp_id"] for c in fake_qiscus.calls_to("post_comment")]
    first = fake_qiscus.posted_comments()[0]["unique_temp_id"]
    assert tries[:3] == [first] * 3  # the same reply, the same id, until accepted
    assert await bot.storage.outbox_pending() == []
