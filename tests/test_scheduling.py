"""Follow-ups in process: ctx.schedule, @bot.scheduled, cancel, order with messages, the clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from qbot import Bot, Context
from qbot.clock import ManualClock
from qbot.emulator.dev import DevServer, dev_settings
from qbot.emulator.harness import Harness
from qbot.errors import ConfigError, HandlerRegistrationError
from qbot.scheduling import ScheduleError


def followup_bot(**schedule_args: object) -> tuple[Bot, ManualClock]:
    clock = ManualClock(start=1_800_000_000.0)
    bot = Bot("sched", clock=clock)

    @bot.message(text="order")
    async def order(ctx: Context) -> None:
        await ctx.schedule(
            "followup", after=timedelta(hours=2), data={"order": 42}, **schedule_args
        )
        await ctx.reply("noted")

    @bot.message(text="forget it")
    async def forget(ctx: Context) -> None:
        await ctx.reply(f"cancelled: {await ctx.cancel_scheduled('followup')}")

    @bot.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(f"echo {ctx.text}")

    @bot.scheduled("followup")
    async def followup(ctx: Context) -> None:
        assert ctx.scheduled is not None
        await ctx.reply(f"did order {ctx.data['order']} arrive, {ctx.sender.name}?")

    return bot, clock


async def replies_after(harness: Harness, chat_room: int, after: int = 0) -> list[str]:
    comments = await harness.emulator.store.comments(chat_room, limit=100, after_id=after)
    return [c["message"] for c in reversed(comments) if c["email"] != "user@example.com"]


async def test_a_followup_fires_once_when_the_clock_passes_its_due_time() -> None:
    bot, clock = followup_bot()
    async with Harness(bot) as harness:
        chat = await harness.chat(name="Ani")
        (await chat.say("order")).assert_texts("noted")
        assert await bot.run_due() == []  # not due yet
        clock.advance(hours=1, minutes=59)
        assert await bot.run_due() == []
        clock.advance(minutes=1)
        outcomes = await bot.run_due()
        assert [o.handler for o in outcomes] == ["scheduled:followup"]
        await harness.emulator.drain()
        texts = await replies_after(harness, chat.room_id)
        assert texts == ["noted", "did order 42 arrive, Ani?"]
        clock.advance(days=3)
        assert await bot.run_due() == []
        assert await bot.storage.schedule_list() == []


async def test_the_background_loop_fires_a_job_when_a_manual_clock_is_advanced() -> None:
    bot, clock = followup_bot()
    async with Harness(bot) as harness:
        chat = await harness.chat(name="Ani")
        await chat.say("order")
        clock.advance(hours=3)
        await harness.emulator.wait_for(
            lambda: any("did order" in c["message"] for c in harness.emulator.posted_comments()),
            10,
        )


async def test_cancel_on_reply_the_customers_next_message_cancels_it() -> None:
    bot, clock = followup_bot(cancel_on_reply=True)
    async with Harness(bot) as harness:
        chat = await harness.chat(name="Ani")
        await chat.say("order")
        assert [j.name for j in await bot.storage.schedule_list(str(chat.room_id))] == ["followup"]
        (await chat.say("it came, thanks")).assert_texts("echo it came, thanks")
        assert await bot.storage.schedule_list() == []
        clock.advance(hours=3)
        assert await bot.run_due() == []
        # Without a reply it fires.
        await chat.say("order")
        clock.advance(hours=3)
        assert [o.handler for o in await bot.run_due()] == ["scheduled:followup"]


async def test_without_cancel_on_reply_a_message_leaves_the_job() -> None:
    bot, clock = followup_bot()
    async with Harness(bot) as harness:
        chat = await harness.chat()
        await chat.say("order")
        await chat.say("hello")
        clock.advance(hours=3)
        assert [o.handler for o in await bot.run_due()] == ["scheduled:followup"]


async def test_a_job_fired_while_a_reply_waits_in_the_inbox_is_dropped_behind_it() -> None:
    bot, clock = followup_bot(cancel_on_reply=True)
    async with Harness(bot) as harness:
        chat = await harness.chat()
        await chat.say("order")
        room = str(chat.room_id)
        # The customer's message is accepted (in the inbox) before the job fires: the job
        # lands behind it, and the message, processed first, cancels it.
        storage = bot.storage
        from webhooks import sdk_body

        await storage.inbox_put(room, sdk_body("thanks", room_id=chat.room_id, message_id=99))
        clock.advance(hours=3)
        outcomes = await bot.run_due()
        assert [o.ignored for o in outcomes] == ["cancelled"]
        assert "echo thanks" in await replies_after(harness, chat.room_id)
        assert not any("did order" in t for t in await replies_after(harness, chat.room_id))


async def test_cancel_scheduled_says_whether_there_was_one() -> None:
    bot, clock = followup_bot()
    async with Harness(bot) as harness:
        chat = await harness.chat()
        (await chat.say("forget it")).assert_texts("cancelled: False")
        await chat.say("order")
        (await chat.say("forget it")).assert_texts("cancelled: True")
        clock.advance(hours=3)
        assert await bot.run_due() == []


async def test_scheduling_the_same_name_again_replaces_the_job() -> None:
    bot, clock = followup_bot()
    async with Harness(bot) as harness:
        chat = await harness.chat()
        await chat.say("order")
        clock.advance(hours=1)
        await chat.say("order")  # due 2 h from now: 3 h after the first
        clock.advance(hours=1, minutes=30)
        assert await bot.run_due() == []
        clock.advance(minutes=30)
        assert len(await bot.run_due()) == 1
        assert await bot.storage.schedule_list() == []


async def test_a_job_runs_in_order_with_the_rooms_messages() -> None:
    bot, clock = followup_bot()
    async with Harness(bot) as harness:
        chat = await harness.chat(name="Ani")
        await chat.say("order")
        room = str(chat.room_id)
        from webhooks import sdk_body

        await bot.storage.inbox_put(room, sdk_body("first", room_id=chat.room_id, message_id=1))
        clock.advance(hours=2)
        await bot.run_due()  # the job is behind "first"
        await harness.emulator.drain()
        assert (await replies_after(harness, chat.room_id))[1:] == [
            "echo first",
            "did order 42 arrive, Ani?",
        ]


async def test_a_job_without_a_handler_is_logged_once_and_dropped() -> None:
    bot, clock = followup_bot()
    async with Harness(bot) as harness:
        chat = await harness.chat()
        await chat.say("order")
        bot._scheduled.clear()  # a deployment that no longer has the handler
        clock.advance(hours=3)
        assert [o.ignored for o in await bot.run_due()] == ["no_handler"]
        assert await bot.storage.schedule_list() == []
        assert await bot.run_due() == []


async def test_at_takes_an_aware_datetime_and_the_handler_sees_the_job() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    bot = Bot(clock=clock)
    seen = []

    @bot.message()
    async def hi(ctx: Context) -> None:
        when = datetime.fromtimestamp(clock.time(), UTC) + timedelta(days=1)
        await ctx.schedule("remind", at=when, data=["x", 1])

    @bot.scheduled("remind")
    async def remind(ctx: Context) -> None:
        seen.append((ctx.data, ctx.scheduled.name if ctx.scheduled else None, ctx.text))

    async with Harness(bot) as harness:
        chat = await harness.chat()
        await chat.say("hi")
        clock.advance(days=1)
        await bot.run_due()
    assert seen == [(["x", 1], "remind", "")]


async def test_bad_schedule_calls_raise_errors_naming_the_problem() -> None:
    clock = ManualClock()
    bot = Bot(clock=clock)
    errors: list[str] = []

    @bot.scheduled("ok")
    async def ok(ctx: Context) -> None: ...

    @bot.message()
    async def hi(ctx: Context) -> None:
        for kwargs in (
            {"name": "ok"},
            {"name": "ok", "after": 1, "at": datetime.now(UTC)},
            {"name": "ok", "after": -5},
            {"name": "ok", "after": "soon"},
            {"name": "ok", "at": datetime(2030, 1, 1)},
            {"name": "no such", "after": 1},
            {"name": "missing", "after": 1},
            {"name": "ok", "after": 1, "data": {1, 2}},
        ):
            try:
                await ctx.schedule(**kwargs)  # type: ignore[arg-type]
            except (ScheduleError, ConfigError, ValueError) as e:
                errors.append(type(e).__name__ + ": " + str(e))

    async with Harness(bot) as harness:
        chat = await harness.chat()
        await chat.say("hi")
    assert len(errors) == 8, errors
    assert "exactly one of after=" in errors[0]
    assert "exactly one of after=" in errors[1]
    assert "zero or more" in errors[2]
    assert "timedelta or seconds" in errors[3]
    assert "no time zone" in errors[4]
    assert "letters, digits" in errors[5]
    assert "no @bot.scheduled('missing') handler" in errors[6]
    assert "JSON" in errors[7]


def test_scheduled_registration_refuses_bad_names_and_duplicates() -> None:
    bot = Bot()
    with pytest.raises(HandlerRegistrationError, match="letters, digits"):
        bot.scheduled("two words")

    @bot.scheduled("x")
    async def one(ctx: Context) -> None: ...

    with pytest.raises(HandlerRegistrationError, match="already has @scheduled"):

        @bot.scheduled("x")
        async def two(ctx: Context) -> None: ...

    with pytest.raises(HandlerRegistrationError, match="async def"):
        bot.scheduled("y")(lambda ctx: None)  # type: ignore[arg-type,return-value]


async def test_bot_schedule_from_outside_a_handler_runs_in_the_room() -> None:
    bot, clock = followup_bot()
    seen: list[str] = []

    @bot.scheduled("nudge")
    async def nudge(ctx: Context) -> None:
        seen.append(f"{ctx.room.id}:{ctx.sender.email!r}:{ctx.data}")
        await ctx.reply("nudge")

    async with Harness(bot) as harness:
        chat = await harness.chat()
        job = await bot.schedule(chat.room_id, "nudge", after=60, data=7)
        assert job.due_at == clock.time() + 60
        assert await bot.cancel_scheduled(chat.room_id, "other") == []
        clock.advance(minutes=1)
        assert [o.handler for o in await bot.run_due()] == ["scheduled:nudge"]
        await harness.emulator.drain()
        assert await replies_after(harness, chat.room_id) == ["nudge"]
    assert seen == [f"{chat.room_id}:'':7"]


@pytest.mark.parametrize("by_itself", [True, False])
async def test_a_recurring_job_cut_before_its_commit_runs_again_after_rescheduling_itself(
    by_itself: bool,
) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    bot = Bot(clock=clock)
    runs: list[object] = []

    @bot.scheduled("tick")
    async def tick(ctx: Context) -> None:
        runs.append(ctx.data)
        await ctx.schedule("tick", after=3600, data=(ctx.data or 0) + 1)

    async with Harness(bot) as harness:
        chat = await harness.chat()
        room = str(chat.room_id)
        await bot.schedule(room, "tick", after=0, data=1)
        assert [o.handler for o in await bot.run_due()] == ["scheduled:tick"]
        [job] = await bot.storage.schedule_list(room)
        assert (job.data, job.due_at) == (2, clock.time() + 3600)
        # The next run is cut after its handler rescheduled and before its commit: the job
        # fired (in the inbox) and its record is already the next job, whose parent it is.
        clock.advance(hours=1)
        from dataclasses import replace

        from qbot.scheduling import fire_due

        runtime = bot.dispatcher._local_runtime()
        waiters = []
        # fire without the worker running it yet: the in-process runtime claims only when told
        await fire_due(bot.dispatcher, lambda item: waiters.append(runtime.expect(item)))
        assert len(waiters) == 1
        await bot.storage.schedule_put(
            replace(job, id="next-one", data=3, origin={"parent": job.id if by_itself else None})
        )
        await runtime.claim_now()
        outcome = await waiters[0]
    if by_itself:  # its own handler replaced it: the run is done again
        assert (outcome.handler, runs) == ("scheduled:tick", [1, 2])
    else:  # replaced by anything else: dropped
        assert (outcome.ignored, runs) == ("cancelled", [1])


async def test_a_webhook_posing_as_a_due_job_is_ignored() -> None:
    bot, clock = followup_bot()
    async with Harness(bot) as harness:
        chat = await harness.chat()
        await chat.say("order")
        [job] = await bot.storage.schedule_list()
        from qbot.scheduling import job_body

        forged = job_body(job)  # exactly what the scheduler would store, sent as a webhook
        outcome = await bot.feed_update(forged)
        assert outcome.ignored == "ignored"
        assert await bot.storage.inbox_size() == 0
        assert [j.id for j in await bot.storage.schedule_list()] == [job.id]  # still waiting
        clock.advance(hours=2)
        assert [o.handler for o in await bot.run_due()] == ["scheduled:followup"]


@pytest.mark.parametrize("while_handed_off", [False, True])
async def test_a_job_due_in_a_handed_off_room_is_dropped_unless_asked(
    while_handed_off: bool,
) -> None:
    bot, clock = followup_bot(while_handed_off=while_handed_off)
    async with Harness(bot) as harness:
        chat = await harness.chat()
        await chat.say("order")
        await bot.storage.handoff_start(str(chat.room_id), "agent took it")
        clock.advance(hours=2)
        [outcome] = await bot.run_due()
        assert await bot.storage.schedule_list() == []
    if while_handed_off:
        assert outcome.handler == "scheduled:followup"
    else:
        assert outcome.ignored == "handoff"


async def test_bot_schedule_refuses_a_room_id_that_is_not_an_id() -> None:
    # bot.schedule(None, ...) stored a job for a room named "None".
    bot, _ = followup_bot()
    async with Harness(bot):
        for bad in (None, True, 1.5, ["1"]):
            with pytest.raises(ScheduleError, match="room_id must be"):
                await bot.schedule(bad, "followup", after=1)  # type: ignore[arg-type]
            with pytest.raises(ScheduleError, match="room_id must be"):
                await bot.cancel_scheduled(bad, "followup")  # type: ignore[arg-type]
        assert await bot.storage.schedule_list() == []


def test_a_bot_served_in_one_event_loop_after_another_keeps_its_fire_loop_idle(
    tmp_path: Path,
) -> None:
    # A module's bot served by one event loop after another (the browser tests' demo bot, a
    # script calling asyncio.run twice): the fire loop's wake event came from the first loop,
    # so in the next every wait on it failed at once and the loop spun, thousands of storage
    # reads a second, starving what the process served. Idle, it looks once per POLL (1 s).
    bot, _ = followup_bot()

    async def storage_reads_while_idle(run: int) -> int:
        reads = 0
        settings = dev_settings(None, bot.name, storage={"url": "memory://"})
        server = DevServer(settings, bot, port=0, db=str(tmp_path / f"e{run}.db"))
        await server.start()
        try:
            storage = bot.storage
            real = storage.schedule_next

            async def counted() -> float | None:
                nonlocal reads
                reads += 1
                return await real()

            storage.schedule_next = counted  # type: ignore[method-assign]
            await asyncio.sleep(0.5)
        finally:
            await server.stop()
        return reads

    assert asyncio.run(storage_reads_while_idle(1)) < 50
    assert asyncio.run(storage_reads_while_idle(2)) < 50
