"""WhatsApp's 24-hour window on the harness's shared clock: tracked, enforced, fallen back from."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from qbot import Bot, Context, OutsideWindowError
from qbot.clock import ManualClock
from qbot.config import Settings, load_settings
from qbot.emulator.harness import Chat, Harness
from qbot.omnichannel.templates import Template
from qbot.omnichannel.window import LIFECYCLE_TYPE, window_key
from qbot.storage import open_storage

APP = "qbot-test"
CUSTOMER = "6281234567890"


def settings(**whatsapp: object) -> Settings:
    return load_settings(
        None,
        qiscus={"app_id": APP, "secret_key": "qbot-test-secret"},
        bot={"email": "bot@qbot.local", "name": "Shop"},
        postback={"secret": "s" * 32},
        omnichannel={"whatsapp": whatsapp},
    )


def make_bot(**kwargs: Any) -> Bot:
    bot = Bot("shop", **kwargs)

    @bot.message(text="window")
    async def window(ctx: Context) -> None:
        await ctx.reply(f"left: {ctx.window!r}")

    @bot.message(regex=r"notify (\d+)")
    async def notify(ctx: Context) -> None:  # an operator's command, from a Chat SDK room
        assert ctx.match is not None
        sent = await ctx.send(ctx.match.group(1), "Your parcel is at the pickup point.")
        await ctx.reply(f"sent {len(sent)}")

    @bot.message()
    async def anything(ctx: Context) -> None:
        await ctx.reply("noted")

    @bot.error(OutsideWindowError)
    async def closed(ctx: Context) -> None:
        assert isinstance(ctx.error, OutsideWindowError)
        await ctx.reply(f"refused: {ctx.error}")

    return bot


async def open_chats(harness: Harness) -> tuple[Chat, Chat]:
    customer = await harness.chat(CUSTOMER, "Budi", omnichannel=True, channel="wa")
    operator = await harness.chat("ops@shop.local", "Ops")
    return customer, operator


def texts_in(replies: Any) -> list[str]:
    return [r.text for r in replies]


async def test_ctx_window_is_24_hours_from_the_customers_last_message() -> None:
    async with Harness(make_bot(), settings()) as harness:
        customer, operator = await open_chats(harness)
        (await customer.say("window")).assert_texts(f"left: {timedelta(hours=24)!r}")
        await harness.advance(hours=5)
        await customer.say("halo")  # moves the window
        await harness.advance(hours=2)
        (await customer.say("window")).assert_texts(f"left: {timedelta(hours=24)!r}")
        (await operator.say("window")).assert_texts("left: None")  # a Chat SDK room
        widget = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="qiscus")
        (await widget.say("window")).assert_texts("left: None")  # the web widget: no window


async def test_the_window_is_kept_in_the_storage_by_the_shared_clock() -> None:
    async with Harness(make_bot(), settings()) as harness:
        customer, _ = await open_chats(harness)
        await customer.say("halo")
        stored = await harness.bot.storage.get_state(window_key(str(customer.room_id)))
        assert stored["last_customer_at"] == harness.clock.time()
        assert stored["customer"] == CUSTOMER
        assert stored["channel_id"] == harness.desk.channel("wa")["id"]
        harness.bot.dispatcher._windows = None  # a fresh process reads it back
        record = await harness.bot.dispatcher.windows.get(str(customer.room_id))
        assert record.last_customer_at == stored["last_customer_at"]


async def test_a_free_form_message_after_the_window_raises_naming_the_room_and_hours() -> None:
    async with Harness(make_bot(), settings()) as harness:
        customer, operator = await open_chats(harness)
        await customer.say("halo")
        await harness.advance(hours=23)
        (await operator.say(f"notify {customer.room_id}")).assert_texts("sent 1")
        await harness.advance(hours=2)  # 25 h since the customer wrote
        before = len(await harness.emulator.store.comments(customer.room_id, limit=100))
        [refused] = texts_in(await operator.say(f"notify {customer.room_id}"))
        assert refused.startswith(f"refused: room {customer.room_id}: WhatsApp's 24-hour window")
        assert "last wrote 25.0 h ago" in refused
        after = len(await harness.emulator.store.comments(customer.room_id, limit=100))
        assert after == before  # nothing reached the customer
        # The customer writes again: the window is open again.
        await customer.say("halo lagi")
        (await operator.say(f"notify {customer.room_id}")).assert_texts("sent 1")


async def test_the_error_carries_the_room_and_the_hours() -> None:
    bot = Bot("raw")
    caught: list[OutsideWindowError] = []

    @bot.message(regex=r"notify (\d+)")
    async def notify(ctx: Context) -> None:
        assert ctx.match is not None
        try:
            await ctx.send(ctx.match.group(1), "hi")
        except OutsideWindowError as e:
            caught.append(e)

    @bot.message()
    async def anything(ctx: Context) -> None:
        pass

    async with Harness(bot, settings()) as harness:
        customer, operator = await open_chats(harness)
        await customer.say("halo")
        await harness.advance(hours=30)
        await operator.say(f"notify {customer.room_id}")
    [error] = caught
    assert error.room_id == str(customer.room_id)
    assert error.hours_since == pytest.approx(30)


async def test_the_configured_fallback_template_goes_out_once_per_closed_window() -> None:
    fallback = {"name": "continue_chat", "language": "id"}
    async with Harness(make_bot(), settings(fallback_template=fallback)) as harness:
        customer, operator = await open_chats(harness)
        await customer.say("halo")
        replies = await customer.advance(hours=25)
        replies.assert_none()
        with capture_logs() as logs:
            await operator.say(f"notify {customer.room_id}")
        [template] = harness.desk.whatsapp.sent
        assert (template.name, template.to, template.room_id) == (
            "continue_chat",
            CUSTOMER,
            customer.room_id,
        )
        assert any(e["event"] == "window.fallback" for e in logs)
        # The customer's room shows the template, not the free-form text.
        shown = await harness.emulator.store.comments(customer.room_id, limit=1)
        assert shown[0]["payload"]["content"]["name"] == "continue_chat"
        # Again before the customer answers: no second (charged) template.
        with capture_logs() as logs:
            await operator.say(f"notify {customer.room_id}")
        assert len(harness.desk.whatsapp.sent) == 1
        assert any(e["event"] == "window.dropped" for e in logs)
        # The customer answers the template: free-form again, then a new closed window.
        (await customer.say("Lanjutkan")).assert_texts("noted")
        await operator.say(f"notify {customer.room_id}")
        assert len(harness.desk.whatsapp.sent) == 1
        await harness.advance(hours=24, seconds=1)
        await operator.say(f"notify {customer.room_id}")
        assert [s.name for s in harness.desk.whatsapp.sent] == ["continue_chat"] * 2


async def test_a_fallback_function_given_to_the_bot_decides_per_room() -> None:
    asked: list[tuple[str, str]] = []

    def fallback(room_id: str, message: Any) -> Template | None:
        asked.append((room_id, type(message).__name__))
        return Template("followup_check", variables=["Budi"])

    async with Harness(make_bot(fallback_template=fallback), settings()) as harness:
        customer, operator = await open_chats(harness)
        await customer.say("halo")
        await harness.advance(days=2)
        await operator.say(f"notify {customer.room_id}")
        assert asked == [(str(customer.room_id), "Text")]
        [sent] = harness.desk.whatsapp.sent
        assert (sent.name, sent.variables) == ("followup_check", ["Budi"])


async def test_enforce_window_false_leaves_it_to_whatsapp() -> None:
    async with Harness(make_bot(), settings(enforce_window=False)) as harness:
        customer, operator = await open_chats(harness)
        await customer.say("halo")
        await harness.advance(hours=48)
        (await operator.say(f"notify {customer.room_id}")).assert_texts("sent 1")


async def test_window_hours_is_configurable() -> None:
    async with Harness(make_bot(), settings(window_hours=1)) as harness:
        customer, operator = await open_chats(harness)
        await customer.say("halo")
        await harness.advance(minutes=61)
        [refused] = texts_in(await operator.say(f"notify {customer.room_id}"))
        assert "1-hour window is closed" in refused


async def test_after_a_resolved_handoff_the_window_is_unknown_until_the_customer_writes() -> None:
    async with Harness(make_bot(), settings()) as harness:
        customer, operator = await open_chats(harness)
        await customer.say("halo")
        await harness.advance(hours=30)
        await harness.desk.assign(customer.room_id, 101)  # an agent had the room meanwhile
        await customer.resolve()
        # Omnichannel sent qbot nothing while the agent had the room: qbot cannot know.
        (await operator.say(f"notify {customer.room_id}")).assert_texts("sent 1")
        (await customer.say("window")).assert_texts(f"left: {timedelta(hours=24)!r}")


def test_the_lifecycle_type_is_the_lifecycle_modules() -> None:
    from qbot.omnichannel.lifecycle import LIFECYCLE

    assert LIFECYCLE_TYPE == LIFECYCLE


async def test_agents_and_system_events_do_not_move_the_window() -> None:
    agents = ["ayu@desk.qbot.local"]
    custom = settings()
    custom = custom.model_copy(update={"state": custom.state.model_copy(update={"agents": agents})})
    async with Harness(make_bot(), custom) as harness:
        customer, _ = await open_chats(harness)
        await customer.say("halo")
        first = harness.clock.time()
        await harness.advance(hours=3)
        await harness.emulator.user_post(customer.room_id, agents[0], text="Hi, Ayu here")
        await harness.idle()
        stored = await harness.bot.storage.get_state(window_key(str(customer.room_id)))
        assert stored["last_customer_at"] == first


async def test_the_window_survives_a_restart_on_a_durable_storage(tmp_path: Path) -> None:
    bot_db, emulator_db = tmp_path / "bot.sqlite3", str(tmp_path / "emulator.sqlite3")
    first = make_bot()
    async with Harness(first, settings(), db=emulator_db) as harness:
        first.dispatcher.use_storage(open_storage(f"sqlite:///{bot_db}"))
        customer, _ = await open_chats(harness)
        await customer.say("halo")
        wrote_at, room = harness.clock.time(), customer.room_id
    # Another process, 25 hours later: a new bot on the same files.
    again = make_bot()
    later = ManualClock(start=wrote_at + 25 * 3600)
    async with Harness(again, settings(), db=emulator_db, clock=later) as harness:
        again.dispatcher.use_storage(open_storage(f"sqlite:///{bot_db}"))
        operator = await harness.chat("ops@shop.local", "Ops")
        [refused] = texts_in(await operator.say(f"notify {room}"))
        assert f"room {room}: WhatsApp's 24-hour window is closed" in refused
        assert "last wrote 25.0 h ago" in refused


async def test_a_sender_who_is_not_a_number_does_not_open_the_window() -> None:
    async with Harness(make_bot(), settings()) as harness:
        customer = await harness.chat("budi@example.com", "Budi", omnichannel=True, channel="wa")
        await customer.say("halo")
        assert await harness.bot.storage.get_state(window_key(str(customer.room_id))) is None
        (await customer.say("window")).assert_texts("left: None")  # unknown: WhatsApp decides
