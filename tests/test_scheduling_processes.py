"""Follow-ups across real `qbot run` processes: a SIGKILL and restart, two replicas on Redis."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import aiohttp
import pytest
from test_scale import Replica, message, post, redis_url, texts, until

from qbot.emulator import Emulator

__all__ = ["redis_url"]

# The bot's clock follows real time, moved forward by the seconds in the file "skip": the
# process started after the kill sees the follow-up's due time passed, without a test waiting.
BOT = textwrap.dedent(
    """
    import asyncio, os, pathlib
    from datetime import timedelta
    from qbot import Bot, Context
    from qbot.clock import ManualClock

    FLAGS = pathlib.Path(os.environ["SCALE_FLAGS"])
    clock = ManualClock(running=True)
    skip = FLAGS / "skip"
    clock.advance(float(skip.read_text()) if skip.exists() else 0.0)
    bot = Bot("followups", clock=clock)
    AFTER = float((FLAGS / "after").read_text())

    @bot.message()
    async def answer(ctx: Context) -> None:
        await ctx.schedule("followup", after=timedelta(seconds=AFTER), data={"text": ctx.text})
        await ctx.reply(f"got {ctx.text}")

    @bot.scheduled("followup")
    async def followup(ctx: Context) -> None:
        await ctx.reply(f"followup {ctx.data['text']}")
        if ctx.data["text"].startswith("block"):
            marker = FLAGS / "blocked"
            if not marker.exists():  # only the first run hangs: the one that gets killed
                marker.write_text(str(os.getpid()))
                await asyncio.sleep(60)
            await ctx.reply("followup done")
    """
)


@pytest.mark.chaos
async def test_a_followup_scheduled_before_a_kill_9_fires_once_after_the_restart(
    tmp_path: Path, fake_qiscus: Emulator
) -> None:
    (tmp_path / "scalebot.py").write_text(BOT)
    (tmp_path / "after").write_text("7200")  # two hours
    url = f"sqlite:///{tmp_path / 'qbot.db'}"
    first = await Replica(tmp_path, fake_qiscus, url, "first").start()
    second: Replica | None = None
    try:
        async with aiohttp.ClientSession() as http:
            assert await post(http, first, message(400, "where is my order")) == "accepted"
            await fake_qiscus.wait_for(lambda: texts(fake_qiscus, 400) == ["got where is my order"])
            await first.kill()
            (tmp_path / "skip").write_text(str(2 * 3600 + 60))  # the next start is 2 h later
            second = await Replica(tmp_path, fake_qiscus, url, "second").start()
            await fake_qiscus.wait_for(lambda: len(texts(fake_qiscus, 400)) == 2, 20)
            # Kill and start again: the job ran and its record is gone, nothing fires twice.
            await second.kill()
            second = await Replica(tmp_path, fake_qiscus, url, "third").start()
            async with http.get(f"{second.url}/healthz") as resp:
                assert resp.status == 200
            await asyncio.sleep(2.5)  # two fire-loop polls: a second run would show by now
    finally:
        for replica in (first, second):
            if replica is not None:
                await replica.stop()
    assert texts(fake_qiscus, 400) == ["got where is my order", "followup where is my order"]


@pytest.mark.chaos
async def test_a_followup_killed_while_its_handler_runs_is_finished_once_after_the_restart(
    tmp_path: Path, fake_qiscus: Emulator
) -> None:
    (tmp_path / "scalebot.py").write_text(BOT)
    (tmp_path / "after").write_text("1")
    url = f"sqlite:///{tmp_path / 'qbot.db'}"
    first = await Replica(tmp_path, fake_qiscus, url, "first").start()
    second: Replica | None = None
    try:
        async with aiohttp.ClientSession() as http:
            assert await post(http, first, message(420, "block me")) == "accepted"
            await until(lambda: (tmp_path / "blocked").exists(), 20)
            await first.kill()  # mid-handler: its first reply posted, the job not acked
            assert texts(fake_qiscus, 420) == ["got block me", "followup block me"]
            second = await Replica(tmp_path, fake_qiscus, url, "second").start()
            await fake_qiscus.wait_for(lambda: len(texts(fake_qiscus, 420)) == 3, 20)
            await asyncio.sleep(2.5)  # two fire-loop polls: nothing more comes
    finally:
        for replica in (first, second):
            if replica is not None:
                await replica.stop()
    assert texts(fake_qiscus, 420) == ["got block me", "followup block me", "followup done"]


@pytest.mark.redis
@pytest.mark.chaos
async def test_two_replicas_on_one_redis_run_each_followup_once(
    tmp_path: Path, redis_url: str, fake_qiscus: Emulator
) -> None:
    (tmp_path / "scalebot.py").write_text(BOT)
    (tmp_path / "after").write_text("1")
    replicas = [Replica(tmp_path, fake_qiscus, redis_url, name) for name in ("a", "b")]
    rooms = range(500, 520)
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        async with aiohttp.ClientSession() as http:
            for room in rooms:
                body = message(room, f"hi {room}")
                assert await post(http, replicas[room % 2], body) == "accepted"
            await fake_qiscus.wait_for(
                lambda: all(len(texts(fake_qiscus, room)) == 2 for room in rooms), 30
            )
            await asyncio.sleep(2.5)  # both fire loops polled again: a double would show
    finally:
        for replica in replicas:
            await replica.stop()
    for room in rooms:
        assert texts(fake_qiscus, room) == [f"got hi {room}", f"followup hi {room}"]
    fired = [r.log_text().count('"scheduled.fired"') for r in replicas]
    assert sum(fired) == len(rooms), fired


BURST_BOT = textwrap.dedent(
    """
    import os, pathlib
    from qbot import Bot, Context

    FLAGS = pathlib.Path(os.environ["SCALE_FLAGS"])
    bot = Bot("burst", debounce=float((FLAGS / "debounce").read_text()))

    @bot.message()
    async def answer(ctx: Context) -> None:
        await ctx.reply(f"[{ctx.text}]")
    """
)


@pytest.mark.chaos
async def test_a_burst_cut_by_kill_9_mid_window_is_answered_once_after_the_restart(
    tmp_path: Path, fake_qiscus: Emulator
) -> None:
    (tmp_path / "scalebot.py").write_text(BURST_BOT)
    (tmp_path / "debounce").write_text("600")  # the first process never reaches the window's end
    url = f"sqlite:///{tmp_path / 'qbot.db'}"
    first = await Replica(tmp_path, fake_qiscus, url, "first").start()
    second: Replica | None = None
    try:
        async with aiohttp.ClientSession() as http:
            for text in ("halo", "mau tanya", "pesanan saya belum sampai"):
                assert await post(http, first, message(410, text)) == "accepted"
            await first.kill()
            assert texts(fake_qiscus, 410) == []
            (tmp_path / "debounce").write_text("1")
            second = await Replica(tmp_path, fake_qiscus, url, "second").start()
            await fake_qiscus.wait_for(lambda: len(texts(fake_qiscus, 410)) == 1, 20)
            await asyncio.sleep(1.5)  # past another window: nothing more comes
    finally:
        for replica in (first, second):
            if replica is not None:
                await replica.stop()
    assert texts(fake_qiscus, 410) == ["[halo\nmau tanya\npesanan saya belum sampai]"]
