"""Human handoff: the bot goes quiet in a room until resumed, an agent's command or a timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs
from webhooks import RecordingDelivery, event_body, sdk_body

from qbot import Bot, Context
from qbot.cli import main
from qbot.config import load_settings
from qbot.models import Update
from qbot.runtime import Runtime
from qbot.storage import MemoryStorage, SqliteStorage, open_storage


def make_bot(
    storage: MemoryStorage | None = None, **state: object
) -> tuple[Bot, RecordingDelivery]:
    bot = Bot(email="bot@example.com")
    bot.settings = load_settings(
        None,
        qiscus={"app_id": "a", "secret_key": "s"},
        bot={"email": "bot@example.com"},
        state={"agents": ["agent@shop.id"], **state},
    )
    bot.delivery = out = RecordingDelivery()
    if storage is not None:
        bot.use_storage(storage)

    @bot.message(text="human")
    async def human(ctx: Context) -> None:
        await ctx.reply("An agent will join shortly.")
        await ctx.handoff("customer asked for a human")

    @bot.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(f"bot: {ctx.text}")

    @bot.event("left_room")
    async def agent_left(ctx: Context) -> None:
        if await ctx.resume():
            await ctx.reply("The bot is back. Type 'menu' for options.")

    return bot, out


async def test_handoff_messages_are_stored_and_acked_but_not_answered_until_the_agent_resumes() -> (
    None
):
    bot, out = make_bot()
    runtime = Runtime(bot)
    with capture_logs() as logs:
        for body in (
            sdk_body("human", room_id=1),
            sdk_body("where is my parcel?", room_id=1),
            sdk_body("hello?", room_id=2),  # another room: the bot still answers there
            sdk_body("/bot resume", room_id=1, sender="someone@else.io"),  # not an agent
            sdk_body("/bot  Resume", room_id=1, sender="Agent@Shop.id"),
            sdk_body("thanks", room_id=1),
        ):
            assert await runtime.submit(Update.model_validate(body)) == "accepted"
        assert await runtime.drain(timeout=10) == 0
    by_room = {
        room: [getattr(o, "message", "") for r, o, _ in out.sent if r == room] for room in (1, 2)
    }
    assert by_room == {1: ["An agent will join shortly.", "bot: thanks"], 2: ["bot: hello?"]}
    assert await runtime.inbox_size() == 0  # every message was acked
    skipped = [e for e in logs if e["event"] == "handoff.skipped"]
    assert len(skipped) == 2
    assert skipped[0]["reason"] == "customer asked for a human"
    assert any(e["event"] == "handoff.ended" and e["by"] == "Agent@Shop.id" for e in logs)
    assert await bot.storage.handoff_list() == []


async def test_handoff_ends_by_itself_after_its_ttl() -> None:
    now = [0.0]
    bot, out = make_bot(MemoryStorage(clock=lambda: now[0]), handoff_ttl=300)
    await bot.feed_update(sdk_body("human", room_id=3))
    [h] = await bot.storage.handoff_list()
    assert (h.room_id, h.expires_at) == ("3", 300.0)
    now[0] = 299
    await bot.feed_update(sdk_body("still there?", room_id=3))
    now[0] = 301
    await bot.feed_update(sdk_body("hello", room_id=3))
    assert out.texts == ["An agent will join shortly.", "bot: hello"]


async def test_handoff_system_events_still_run_so_a_handler_can_resume() -> None:
    bot, out = make_bot()
    await bot.feed_update(sdk_body("human", room_id=4))
    await bot.feed_update(event_body("left_room", room_id=4))
    await bot.feed_update(sdk_body("hi", room_id=4))
    assert out.texts == [
        "An agent will join shortly.",
        "The bot is back. Type 'menu' for options.",
        "bot: hi",
    ]


@pytest.fixture
async def db_with_handoffs(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'qbot.db'}"
    async with SqliteStorage(str(tmp_path / "qbot.db")) as storage:
        await storage.handoff_start("42", "refund over limit")
        await storage.handoff_start("7", "angry customer", ttl=3600)
    return url


def test_handoff_cli_lists_and_ends(db_with_handoffs: str, tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["handoffs", "list", "--storage", db_with_handoffs])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["ROOM", "SINCE", "UNTIL", "REASON"]
    assert lines[1].startswith("42 ") and lines[1].endswith("refund over limit")
    assert lines[2].startswith("7 ") and lines[2].endswith("angry customer")
    config = tmp_path / "config.yaml"
    config.write_text(f"storage:\n  url: {db_with_handoffs}\n")
    ended = runner.invoke(main, ["handoffs", "end", "42", "--config", str(config)])
    assert ended.exit_code == 0
    assert ended.output == "Room 42 is back with the bot.\n"
    again = runner.invoke(main, ["handoffs", "end", "42", "--storage", db_with_handoffs])
    assert again.exit_code == 1
    assert "error: room '42' is not handed off" in again.output
    listed = runner.invoke(main, ["handoffs", "list", "--storage", db_with_handoffs])
    assert [line.split()[0] for line in listed.output.splitlines()[1:]] == ["7"]


def test_handoff_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    memory = runner.invoke(main, ["handoffs", "list", "--storage", "memory://"])
    assert memory.exit_code == 2
    assert memory.output.startswith("error: storage.url is memory://")
    bad = runner.invoke(main, ["handoffs", "list", "--storage", "mongo://x"])
    assert bad.exit_code == 1
    assert bad.output.count("\n") == 1 and "unknown storage scheme 'mongo'" in bad.output
    missing = runner.invoke(
        main, ["handoffs", "list", "--storage", f"sqlite:///{tmp_path}/nowhere/qbot.db"]
    )
    assert missing.exit_code == 1
    assert missing.output.startswith("error: ") and missing.output.count("\n") == 1
    # A file that is not there is a wrong folder or URL: it was created empty, and the answer
    # "no room is handed off" hid the bot's real storage.
    url = f"sqlite:///{tmp_path}/q.db"
    absent = runner.invoke(main, ["handoffs", "list", "--storage", url])
    assert absent.exit_code == 1
    assert absent.output.startswith(f"error: no storage file '{tmp_path}/q.db'")
    assert not (tmp_path / "q.db").exists()
    ended = runner.invoke(main, ["handoffs", "end", "42", "--storage", url])
    assert ended.exit_code == 1 and "no storage file" in ended.output
    asyncio.run(_create(url))
    empty = runner.invoke(main, ["handoffs", "list", "--storage", url])
    assert empty.output == "No room is handed off: the bot answers everywhere.\n"


async def _create(url: str) -> None:
    async with open_storage(url):
        pass
