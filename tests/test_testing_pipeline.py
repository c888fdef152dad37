"""The pytest plugin drives the server's pipeline: dedupe, one room in order, rooms in parallel."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from qbot import Bot, Context
from qbot.config import load_settings
from qbot.testing import Chat, Harness

# A safety net so that a broken pipeline fails the test instead of hanging it; no test asserts
# how long anything takes.
GUARD = 10.0


@dataclass
class Seen:
    """What the test bot's handlers saw."""

    calls: int = 0
    steps: list[str] = field(default_factory=list)
    b_arrived: asyncio.Event = field(default_factory=asyncio.Event)


def make_bot(seen: Seen) -> Bot:
    bot = Bot("pipeline")

    @bot.message(text="count")
    async def count(ctx: Context) -> None:
        seen.calls += 1
        await ctx.reply(f"call {seen.calls}")

    @bot.message(text="wait for b")
    async def wait_for_b(ctx: Context) -> None:
        # Only finishes if room B's update runs while this one is still in its handler.
        async with asyncio.timeout(GUARD):
            await seen.b_arrived.wait()
        await ctx.reply("a done")

    @bot.message(text="b")
    async def b(ctx: Context) -> None:
        seen.b_arrived.set()
        await ctx.reply("b done")

    @bot.message(regex=r"^step (\d)$")
    async def step(ctx: Context) -> None:
        assert ctx.match is not None
        seen.steps.append(f"start {ctx.match.group(1)}")
        await asyncio.sleep(0.05)  # room for a second update to overtake this one, if it could
        seen.steps.append(f"end {ctx.match.group(1)}")
        await ctx.reply(f"did {ctx.match.group(1)}")

    @bot.message(text="log")
    async def log_line(ctx: Context) -> None:
        ctx.log.info("handler.note")
        await ctx.reply("logged")

    return bot


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def qbot_bot(seen: Seen) -> Bot:
    return make_bot(seen)


async def test_pipeline_drops_a_redelivered_webhook(seen: Seen, qbot_chat: Chat) -> None:
    (await qbot_chat.say("count")).assert_texts("call 1")
    (await qbot_chat.redeliver()).assert_none()
    (await qbot_chat.say("count")).assert_texts("call 2")
    assert seen.calls == 2


async def test_pipeline_runs_two_rooms_at_once(
    qbot_chat_factory: Callable[..., Awaitable[Chat]],
) -> None:
    ana = await qbot_chat_factory("ana@example.com", "Ana")
    bo = await qbot_chat_factory("bo@example.com", "Bo")
    # Room A's handler waits for room B's update: it can only finish if both run concurrently.
    a_replies, b_replies = await asyncio.gather(ana.say("wait for b"), bo.say("b"))
    a_replies.assert_texts("a done")
    b_replies.assert_texts("b done")


async def test_pipeline_runs_one_rooms_updates_one_at_a_time_in_order(
    seen: Seen, qbot_chat: Chat
) -> None:
    await asyncio.gather(qbot_chat.say("step 1"), qbot_chat.say("step 2"))
    assert seen.steps == ["start 1", "end 1", "start 2", "end 2"]


async def test_pipeline_binds_ctx_log_and_library_lines_to_room_and_message(
    qbot_chat: Chat,
) -> None:
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        (await qbot_chat.say("log")).assert_texts("logged")
    [note] = [e for e in logs if e["event"] == "handler.note"]
    [handled] = [e for e in logs if e["event"] == "update.handled"]
    assert note["room_id"] == str(qbot_chat.room_id)
    assert note["message_id"].startswith("id:")
    assert (handled["room_id"], handled["message_id"]) == (note["room_id"], note["message_id"])


async def test_pipeline_harness_keeps_the_bot_off_a_configured_storage(tmp_path: Path) -> None:
    bot = make_bot(Seen())
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    settings = load_settings(
        None,
        qiscus={"app_id": "a", "secret_key": "s"},
        bot={"email": "bot@example.com"},
        storage={"url": shared},
    )
    async with Harness(bot, settings) as harness:
        chat = await harness.chat()
        (await chat.say("count")).assert_texts("call 1")
        assert bot.storage_url == "memory://"
    assert not (tmp_path / "shared.db").exists()


async def test_a_bot_configured_after_a_harness_builds_fresh_clients() -> None:
    # A module-level bot outlives each test's harness: its closed client must not be kept.
    bot = Bot("outlives", email="bot@example.com")

    @bot.fallback
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text)

    async with Harness(bot) as harness:
        used = bot.client
        (await (await harness.chat("ana@x.io", "Ana")).say("hi")).assert_texts("hi")
    bot.configure(
        load_settings(
            None, qiscus={"app_id": "a", "secret_key": "s"}, bot={"email": "bot@example.com"}
        )
    )
    assert bot.client is not used
    await bot.aclose()
