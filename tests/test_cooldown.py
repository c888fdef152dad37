"""Per-room cooldowns: durable in the storage, by the bot's clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from qbot import Bot, Context
from qbot.clock import ManualClock
from qbot.cooldown import CooldownError
from qbot.emulator.harness import Harness
from qbot.storage import open_storage


def promo_bot(clock: ManualClock) -> Bot:
    bot = Bot("promo", clock=clock)

    @bot.message(text="promo")
    async def promo(ctx: Context) -> None:
        if await ctx.cooldown("promo", hours=24):
            await ctx.reply("Diskon 20%!")
        else:
            left = await ctx.cooldown_left("promo")
            await ctx.reply(f"later: {left / 3600:.0f} h")

    @bot.message(text="mine")
    async def mine(ctx: Context) -> None:
        await ctx.reply(str(await ctx.cooldown("tip", minutes=5, per_user=True)))

    return bot


async def test_a_cooldown_lets_one_notification_through_per_period() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    bot = promo_bot(clock)
    async with Harness(bot) as harness:
        chat = await harness.chat()
        (await chat.say("promo")).assert_texts("Diskon 20%!")
        clock.advance(hours=10)
        (await chat.say("promo")).assert_texts("later: 14 h")
        other = await harness.chat("other@example.com")  # another room: its own cooldown
        (await other.say("promo")).assert_texts("Diskon 20%!")
        clock.advance(hours=14)
        (await chat.say("promo")).assert_texts("Diskon 20%!")
        (await chat.say("mine")).assert_texts("True")
        (await chat.say("mine")).assert_texts("False")
        assert await bot.cooldown(chat.room_id, "promo", hours=1) is False
        assert await bot.cooldown(chat.room_id, "fresh", hours=1) is True


async def test_a_cooldown_survives_a_restart_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'qbot.db'}"
    clock = ManualClock(start=1_800_000_000.0)
    for expected in (True, False):
        bot = Bot(clock=clock)
        bot.dispatcher.use_storage(open_storage(url), url=url)
        assert await bot.cooldown("42", "promo", days=1) is expected
        await bot.aclose()
    clock.advance(days=1)
    bot = Bot(clock=clock)
    bot.dispatcher.use_storage(open_storage(url), url=url)
    assert await bot.cooldown("42", "promo", days=1) is True
    await bot.aclose()


async def test_bad_cooldowns_raise_naming_the_problem() -> None:
    bot = Bot()
    with pytest.raises(CooldownError, match="more than 0"):
        await bot.cooldown("1", "promo")
    with pytest.raises(CooldownError, match="more than 0"):
        await bot.cooldown("1", "promo", hours=float("nan"))
    with pytest.raises(CooldownError, match="numbers"):
        await bot.cooldown("1", "promo", hours="2")  # type: ignore[arg-type]
    with pytest.raises(CooldownError, match="name"):
        await bot.cooldown("1", "two words", hours=1)
    await bot.aclose()


async def test_bot_cooldown_refuses_a_room_id_that_is_not_an_id() -> None:
    # bot.cooldown(None, ...) kept a cooldown for a room named "None".
    bot = Bot()
    for bad in (None, True, 1.5):
        with pytest.raises(CooldownError, match="room_id must be"):
            await bot.cooldown(bad, "promo", hours=1)  # type: ignore[arg-type]
    await bot.aclose()
