"""The caches a served bot keeps in its process, each held to its stated bound (resident memory:
bench/RESULTS.md, part 8's RSS row)."""

from __future__ import annotations

from typing import Any

from webhooks import RecordingDelivery, sdk_body

from qbot import Bot, Context
from qbot.handlers import MEMO_SIZE, MEMO_TEXT, MESSAGE, HandlerList
from qbot.inflight import ParsedUpdates
from qbot.models import Update
from qbot.omnichannel.delivery import RoomMemory
from qbot.storage import MemoryStorage


async def test_routing_memo_keeps_no_long_text() -> None:
    bot = Bot(email="bot@example.com")
    bot.delivery = out = RecordingDelivery()

    @bot.message(text="hi")
    async def hi(ctx: Context) -> None:
        await ctx.reply("hello")

    @bot.fallback
    async def fallback(ctx: Context) -> None:
        await ctx.reply("fallback")

    long = "x" * (MEMO_TEXT + 1)
    for text in ("hi", long, long + "y", "x" * MEMO_TEXT):
        await bot.feed_update(sdk_body(text))
    assert out.texts == ["hello", "fallback", "fallback", "fallback"]
    memo: dict[tuple[Any, ...], Any] = bot.handlers[MESSAGE]._memo
    assert sorted(len(key[1]) for key in memo) == [2, MEMO_TEXT]


def test_routing_memo_never_holds_more_than_its_size() -> None:
    handlers = HandlerList(MESSAGE)
    for i in range(MEMO_SIZE * 2 + 10):
        handlers._remember(("text", f"text {i}", None, None, None), [])
        assert len(handlers._memo) <= MEMO_SIZE


def test_parsed_updates_keep_only_the_newest() -> None:
    parsed = ParsedUpdates(size=10)
    update = Update.model_validate(sdk_body("hi"))
    for i in range(25):
        parsed.keep("room", str(i), update)
    assert [i for i in range(25) if parsed.peek("room", str(i)) is not None] == list(range(15, 25))


def test_room_memory_keeps_at_most_its_cache_size() -> None:
    memory = RoomMemory(MemoryStorage(), cache_size=10)
    for room in range(25):
        memory.preload(str(room), {"omnichannel": True, "source": "wa"})
    assert [r for r in range(25) if memory.known(str(r)) is not None] == list(range(15, 25))
