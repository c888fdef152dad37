"""Debounce: a customer's burst gathered into one update, answered once, on the clock."""

from __future__ import annotations

import pytest

from qbot import Bot, Context
from qbot.clock import ManualClock
from qbot.emulator.harness import Harness
from qbot.errors import ConfigError


def burst_bot(**kwargs: object) -> tuple[Bot, ManualClock]:
    clock = ManualClock(start=1_800_000_000.0)
    bot = Bot("burst", clock=clock, **kwargs)  # type: ignore[arg-type]

    @bot.message(text="stop", debounce=0)
    async def stop(ctx: Context) -> None:
        await ctx.reply("stopped")

    @bot.message(regex="komplain", debounce=10)
    async def complaint(ctx: Context) -> None:
        await ctx.reply(f"complaint {ctx.burst}")

    @bot.message()
    async def answer(ctx: Context) -> None:
        await ctx.reply(f"[{ctx.text}] {len(ctx.burst)}")

    return bot, clock


async def bot_texts(harness: Harness, room: int, after: int = 0) -> list[str]:
    comments = await harness.emulator.store.comments(room, limit=100, after_id=after)
    assert harness.settings is not None
    bot = harness.settings.bot.email
    return [c["message"] for c in reversed(comments) if c["email"] == bot]


async def test_a_burst_within_the_window_gets_one_answer_with_the_texts_joined() -> None:
    bot, clock = burst_bot(debounce=3.0)
    async with Harness(bot) as harness:
        chat = await harness.chat()
        (await chat.say("halo")).assert_none()
        clock.advance(seconds=2)
        (await chat.say("mau tanya")).assert_none()
        clock.advance(seconds=2)  # 4 s after the first: the window restarted with each message
        (await chat.say("pesanan saya belum sampai")).assert_none()
        assert await bot_texts(harness, chat.room_id) == []
        clock.advance(seconds=3)
        await bot.run_due()
        await harness.emulator.drain()
        assert await bot_texts(harness, chat.room_id) == [
            "[halo\nmau tanya\npesanan saya belum sampai] 3"
        ]
        assert await bot.storage.inbox_size() == 0  # all three acked
        # The next message after the window starts a new burst.
        await chat.say("terima kasih")
        clock.advance(seconds=3)
        await bot.run_due()
        await harness.emulator.drain()
        assert (await bot_texts(harness, chat.room_id))[-1] == "[terima kasih] 1"


async def test_a_handler_with_debounce_0_answers_at_once_and_ends_no_burst_early() -> None:
    bot, _clock = burst_bot(debounce=3.0)
    async with Harness(bot) as harness:
        chat = await harness.chat()
        (await chat.say("stop")).assert_texts("stopped")


async def test_a_handlers_own_window_applies_to_a_burst_starting_there() -> None:
    bot, clock = burst_bot()  # no bot-wide debounce
    async with Harness(bot) as harness:
        chat = await harness.chat()
        (await chat.say("hello")).assert_texts("[hello] 1")  # not debounced
        (await chat.say("komplain")).assert_none()
        (await chat.say("barang rusak")).assert_none()
        clock.advance(seconds=9)
        await bot.run_due()
        assert await bot_texts(harness, chat.room_id) == ["[hello] 1"]
        clock.advance(seconds=1)
        await bot.run_due()
        await harness.emulator.drain()
        assert (await bot_texts(harness, chat.room_id))[-1] == (
            "complaint ['komplain', 'barang rusak']"
        )


async def test_another_kind_of_message_ends_the_burst_and_is_answered_after_it() -> None:
    bot, _clock = burst_bot(debounce=3.0)

    @bot.event("join_room")
    async def on_event(ctx: Context) -> None:
        await ctx.reply("event")

    async with Harness(bot) as harness:
        chat = await harness.chat()
        await chat.say("halo")
        await chat.say("lagi")
        await chat.event("join_room")
        await bot.run_due()
        await harness.emulator.drain()
        assert await bot_texts(harness, chat.room_id) == ["[halo\nlagi] 2", "event"]


def test_debounce_values_are_checked() -> None:
    with pytest.raises(ConfigError, match="debounce"):
        Bot(debounce=-1)
    with pytest.raises(ConfigError, match="debounce"):
        Bot(debounce="3")  # type: ignore[arg-type]
    bot = Bot()
    with pytest.raises(ConfigError, match="debounce"):
        bot.message(debounce=float("inf"))
