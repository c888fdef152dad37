"""The shared clock: the harness's advance and idle, the emulator's clock endpoints, qbot dev."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from qbot import Bot, Context
from qbot.clock import ManualClock
from qbot.config import load_settings
from qbot.emulator.dev import DevServer, dev_settings
from qbot.emulator.harness import Harness

APP = "qbot-test"


def settings() -> Any:
    return load_settings(
        None,
        qiscus={"app_id": APP, "secret_key": "qbot-test-secret"},
        bot={"email": "bot@qbot.local", "name": "Shop"},
    )


def sleeper_bot(hours: float) -> tuple[Bot, list[asyncio.Task[None]]]:
    bot = Bot("sleeper")
    tasks: list[asyncio.Task[None]] = []

    async def later(room_id: str) -> None:
        await bot.dispatcher.clock.sleep(hours * 3600)
        await bot.send_template(room_id, "followup_check", variables=["Budi"])

    @bot.message(text="later")
    async def schedule(ctx: Context) -> None:
        tasks.append(asyncio.create_task(later(str(ctx.room.id))))
        await ctx.reply("ok")

    return bot, tasks


async def test_the_harness_gives_the_bot_and_the_emulator_one_frozen_clock() -> None:
    bot = Bot("b")
    own = bot.dispatcher.clock
    async with Harness(bot, settings()) as harness:
        assert bot.dispatcher.clock is harness.clock is harness.emulator.clock
        assert isinstance(harness.clock, ManualClock) and not harness.clock.running
        start = harness.clock.time()
        assert await harness.advance(hours=25) == start + 25 * 3600
    assert bot.dispatcher.clock is own  # given back


async def test_chat_advance_runs_what_came_due_and_returns_it() -> None:
    bot, tasks = sleeper_bot(hours=24.5)
    async with Harness(bot, settings()) as harness:
        chat = await harness.chat("6281234567890", "Budi", omnichannel=True, channel="wa")
        (await chat.say("later")).assert_texts("ok")
        (await chat.advance(hours=24)).assert_none()  # not due yet
        replies = await chat.advance(hours=1)
        replies.assert_template("followup_check", "Budi")
        assert all(t.done() for t in tasks)


async def test_idle_waits_for_on_idle_hooks_until_they_report_no_work() -> None:
    calls: list[int] = []

    async def hook() -> bool:
        calls.append(1)
        return len(calls) < 3  # worked twice, then nothing left

    async with Harness(Bot("b"), settings()) as harness:
        harness.on_idle(hook)
        await harness.advance(minutes=1)
    assert len(calls) == 3


async def test_a_negative_advance_is_refused() -> None:
    async with Harness(Bot("b"), settings()) as harness:
        with pytest.raises(ValueError, match="only moves forward"):
            await harness.advance(hours=-1)


async def test_qbot_dev_runs_a_running_manual_clock_the_page_skips_ahead(tmp_path: Path) -> None:
    bot = Bot("devbot")
    server = DevServer(
        dev_settings(None, bot.name, storage={"url": "memory://"}),
        bot,
        port=0,
        db=str(tmp_path / "emulator.sqlite3"),
    )
    url = await server.start()
    try:
        assert bot.dispatcher.clock is server.clock
        assert server.clock.running
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}emulator/api/clock") as r:
                before = await r.json()
            assert before["manual"] and before["running"] and before["offset"] == 0
            async with http.post(f"{url}emulator/api/clock/advance", json={"hours": 25}) as r:
                assert r.status == 200
                after = await r.json()
            assert after["offset"] == 25 * 3600
            assert after["now"] - before["now"] >= 25 * 3600
            for bad, words in [
                ({"hours": -1}, "negative"),
                ({"weeks": 1}, "unknown field 'weeks'"),
                ({"hours": "x"}, "must be a number"),
                ({}, "give seconds"),
                ({"days": 400}, "at most a year"),
                ([1], "give seconds"),
            ]:
                async with http.post(f"{url}emulator/api/clock/advance", json=bad) as r:
                    assert r.status == 400, bad
                    assert words in (await r.json())["error"]
            # JSON's NaN and Infinity parse as floats, a long number as a huge int: each is named,
            # not called "negative" (NaN) nor turned into a 500 (an int too big for a float).
            for raw, words in [
                ('{"hours": NaN}', "hours is NaN"),
                ('{"hours": Infinity}', "hours is infinite (inf)"),
                ('{"hours": -Infinity}', "hours is infinite (-inf)"),
                ('{"days": 1e400}', "days is infinite"),
                ('{"days": 1' + "0" * 400 + "}", "asked over 1e300 days"),
            ]:
                async with http.post(
                    f"{url}emulator/api/clock/advance",
                    data=raw,
                    headers={"Content-Type": "application/json"},
                ) as r:
                    assert r.status == 400, raw
                    assert words in (await r.json())["error"], raw
            async with http.post(
                f"{url}emulator/api/clock/advance",
                data="not json",
                headers={"Content-Type": "application/json"},
            ) as r:
                assert r.status == 400
    finally:
        await server.stop()


async def test_an_emulator_on_the_wall_clock_cannot_skip_ahead(tmp_path: Path) -> None:
    server = DevServer(
        dev_settings(None, "alone", storage={"url": "memory://"}),
        None,
        port=0,
        db=str(tmp_path / "emulator.sqlite3"),
    )
    url = await server.start()
    try:
        assert server.emulator is not None
        from qbot.clock import SystemClock

        server.emulator.clock = SystemClock()
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}emulator/api/clock/advance", json={"hours": 1}) as r:
                assert r.status == 409
                assert "wall clock" in (await r.json())["error"]
            async with http.get(f"{url}emulator/api/clock") as r:
                assert (await r.json())["manual"] is False
    finally:
        await server.stop()


async def test_a_transcript_advances_the_clock_and_expects_the_template(tmp_path: Path) -> None:
    from qbot.errors import ConfigError
    from qbot.testing import TranscriptFailure, load_transcripts, run_transcript

    path = tmp_path / "test_reminder.yaml"
    path.write_text(
        "channel: wa\n"
        "user: {email: '6281234567890', name: Budi}\n"
        "turns:\n"
        "  - say: later\n"
        "    expect: [ok]\n"
        "  - advance: 24h\n"
        "    expect: []\n"
        "  - advance: 30m\n"
        "    expect: [{template: followup_check, text_contains: Budi}]\n"
    )
    loaded = load_transcripts(path)
    assert loaded is not None
    options, [transcript] = loaded
    bot, _ = sleeper_bot(hours=24.25)
    await run_transcript(bot, transcript, settings=settings(), user=options["user"], channel="wa")
    wrong = {"turns": [*transcript["turns"][:2], {"advance": "30m", "expect": [{"template": "x"}]}]}
    bot, _ = sleeper_bot(hours=24.25)
    with pytest.raises(TranscriptFailure, match="template is 'followup_check', expected 'x'"):
        await run_transcript(bot, wrong, settings=settings(), user=options["user"], channel="wa")
    bad = tmp_path / "test_bad.yaml"
    bad.write_text("turns:\n  - advance: soon\n")
    with pytest.raises(ConfigError, match="advance is a duration like 25h"):
        load_transcripts(bad)
