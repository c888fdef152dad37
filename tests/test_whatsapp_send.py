"""Sending templates (ctx.send_template, bot.send_template) through the outbox, and quick-reply
taps routed to @bot.postback: against the emulator, its only fake."""

from __future__ import annotations

from typing import Any

import pytest

from qbot import Bot, Context, MessageBuildError, TemplateLimitError
from qbot._json import dumps_text, loads
from qbot.config import Settings, load_settings
from qbot.emulator.harness import Chat, Harness
from qbot.omnichannel.templates import QuickReply, Template
from qbot.omnichannel.window import quick_replies_key

APP = "qbot-test"
CUSTOMER = "6281234567890"
SEND_PATH = f"/whatsapp/v1/{APP}/2/messages"


def settings(**whatsapp: object) -> Settings:
    return load_settings(
        None,
        qiscus={"app_id": APP, "secret_key": "qbot-test-secret"},
        bot={"email": "bot@qbot.local", "name": "Shop"},
        postback={"secret": "s" * 32},
        omnichannel={"whatsapp": whatsapp},
    )


def make_bot() -> Bot:
    bot = Bot("shop")

    @bot.message(text="remind")
    async def remind(ctx: Context) -> None:
        await ctx.send_template(
            "order_shipped",
            variables=["Budi", "INV-7", "besok"],
            buttons=[
                QuickReply("Lacak pesanan", action="track", data={"order": "INV-7"}),
                QuickReply("Hubungi CS", action="human"),
            ],
        )

    @bot.message(text="short")
    async def short(ctx: Context) -> None:
        await ctx.send_template("order_shipped", variables=["Budi"])

    @bot.message(text="unknown")
    async def unknown(ctx: Context) -> None:
        await ctx.send_template("no_such_template")

    @bot.postback(action="track")
    async def track(ctx: Context) -> None:
        assert ctx.postback is not None
        await ctx.reply(f"tracking {ctx.postback.data['order']}")

    @bot.postback(action="human")
    async def human(ctx: Context) -> None:
        await ctx.reply("an agent will join")

    @bot.message()
    async def anything(ctx: Context) -> None:
        await ctx.reply(f"text: {ctx.text}")

    @bot.error(MessageBuildError)
    async def refused(ctx: Context) -> None:
        await ctx.reply(f"refused: {type(ctx.error).__name__}: {ctx.error}")

    return bot


async def wa_chat(harness: Harness) -> Chat:
    return await harness.chat(CUSTOMER, "Budi", omnichannel=True, channel="wa")


async def test_ctx_send_template_reaches_the_customer_as_whatsapp_shows_it() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await wa_chat(harness)
        replies = await chat.say("remind")
        replies.assert_template("order_shipped", "Budi", "INV-7", "besok")
        [reply] = replies
        assert reply.template is not None
        assert reply.template["header"] == "Pesanan dikirim"
        assert reply.button_labels == ["Lacak pesanan", "Hubungi CS"]
        [sent] = harness.desk.whatsapp.sent
        assert (sent.to, sent.room_id, sent.language) == (CUSTOMER, chat.room_id, "id")
        [call] = harness.emulator.calls_to(SEND_PATH)
        template = call.body["template"]
        assert template["namespace"] == "b2c7e0f4_5d1a_4a8e_9c3b_71f0d6e2a9c4"  # from the list
        assert template["language"] == {"policy": "deterministic", "code": "id"}


async def test_a_quick_reply_tap_routes_to_the_postback_handler_with_its_data() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await wa_chat(harness)
        await chat.say("remind")
        (await chat.tap("Lacak pesanan")).assert_texts("tracking INV-7")
        (await chat.say("hubungi cs ")).assert_texts("an agent will join")  # the label, as typed
        (await chat.say("Lacak")).assert_texts("text: Lacak")  # not a label: plain text


async def test_a_cloud_api_button_payload_is_read_as_the_tap() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await wa_chat(harness)
        await chat.say("remind")
        payload = loads(
            harness.emulator.calls_to(SEND_PATH)[0].body["template"]["components"][1]["parameters"][
                0
            ]["payload"]
        )
        shape = {"button": {"text": "Track", "payload": dumps_text(payload)}}
        (await chat.send("text", "Track", shape)).assert_texts("tracking INV-7")


async def test_a_forged_quick_reply_payload_is_rejected() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await wa_chat(harness)
        forged = {"button": {"payload": dumps_text({"qbot": 2, "a": "track", "d": {"order": 1}})}}
        (await chat.send("text", "Track", forged)).assert_none()


async def test_limits_and_placeholders_are_checked_before_anything_is_sent() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await wa_chat(harness)
        [refused] = await chat.say("short")
        assert refused.text.startswith("refused: TemplateLimitError:")
        assert "has 3 placeholders, given 1 variables" in refused.text
        [unknown] = await chat.say("unknown")
        assert "'no_such_template' is not an approved template" in unknown.text
        assert harness.emulator.calls_to(SEND_PATH) == []


async def test_templates_are_whatsapps_only() -> None:
    async with Harness(make_bot(), settings()) as harness:
        widget = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="qiscus")
        [refused] = await widget.say("remind")
        assert "templates are WhatsApp's" in refused.text
        plain = await harness.chat("joe@example.com", "Joe")
        [refused] = await plain.say("remind")
        assert "a Chat SDK room" in refused.text


async def test_bot_send_template_to_a_known_customer_goes_to_their_room_outside_the_window() -> (
    None
):
    async with Harness(make_bot(), settings()) as harness:
        chat = await wa_chat(harness)
        await chat.say("halo")
        await harness.advance(hours=40)
        sent = await harness.bot.send_template(
            "+62 812-3456-7890",
            "order_shipped",
            variables=["Budi", "INV-9", "lusa"],
            buttons=[QuickReply("Lacak pesanan", action="track", data={"order": "INV-9"})],
        )
        assert sent.message_id.startswith("wamid.")
        [record] = harness.desk.whatsapp.sent
        assert record.room_id == chat.room_id
        # A proactive template is not a reply: the customer's tap is their text, the label.
        (await chat.say("Lacak pesanan")).assert_texts("tracking INV-9")
        by_room = await harness.bot.send_template(str(chat.room_id), "otp_code", variables=["1"])
        assert by_room is not None
        assert harness.desk.whatsapp.sent[-1].room_id == chat.room_id


async def test_bot_send_template_to_a_new_number_opens_a_room_and_the_tap_works_there() -> None:
    async with Harness(make_bot(), settings()) as harness:
        await harness.bot.send_template(
            "6289876543210",
            Template("followup_check", variables=["Sari"]).quick_reply("Sudah", action="human"),
        )
        [record] = harness.desk.whatsapp.sent
        room = await harness.emulator.store.get_room(record.room_id)
        assert room is not None
        # The customer taps in that room; qbot has never seen it, the number binds the button.
        chat = Chat(harness, "6289876543210", room, channel="wa")
        (await chat.say("Sudah")).assert_texts("an agent will join")
        (await chat.say("Belum")).assert_texts("text: Belum")  # not a button qbot sent


async def test_a_key_makes_a_proactive_send_happen_once() -> None:
    async with Harness(make_bot(), settings()) as harness:
        for _ in range(3):
            await harness.bot.send_template(
                "6289876543210", "otp_code", variables=["4242"], key="otp:order-1"
            )
        assert len(harness.desk.whatsapp.sent) == 1
        await harness.bot.send_template("6289876543210", "otp_code", variables=["4242"])
        assert len(harness.desk.whatsapp.sent) == 2  # no key: each call sends


async def test_an_outage_queues_the_template_and_the_outbox_sends_it_once() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await wa_chat(harness)
        await chat.say("halo")
        harness.emulator.fail_next(SEND_PATH, status=503)
        queued = await harness.bot.send_template(
            CUSTOMER, "otp_code", variables=["777"], key="otp:1"
        )
        assert queued is None
        assert harness.desk.whatsapp.sent == []
        assert await harness.bot.dispatcher.flush(str(chat.room_id)) == 0
        assert [s.variables for s in harness.desk.whatsapp.sent] == [["777"]]
        await harness.bot.dispatcher.flush(str(chat.room_id))
        await harness.bot.send_template(CUSTOMER, "otp_code", variables=["777"], key="otp:1")
        assert len(harness.desk.whatsapp.sent) == 1


async def test_a_refused_template_is_failed_and_not_sent_again() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await wa_chat(harness)
        await chat.say("halo")
        harness.emulator.fail_next(SEND_PATH, status=400)
        with pytest.raises(Exception, match="400"):
            await harness.bot.send_template(CUSTOMER, "otp_code", variables=["1"], key="k")
        assert await harness.bot.dispatcher.flush(str(chat.room_id)) == 0
        assert harness.desk.whatsapp.sent == []


async def test_bot_send_template_refuses_bad_targets_and_templates() -> None:
    async with Harness(make_bot(), settings()) as harness:
        with pytest.raises(MessageBuildError, match="not a phone number"):
            await harness.bot.send_template("budi@example.com", "otp_code", variables=["1"])
        with pytest.raises(TemplateLimitError):
            await harness.bot.send_template(CUSTOMER, "otp_code", variables=[])
        with pytest.raises(MessageBuildError, match="not approved in language 'fr'"):
            await harness.bot.send_template(CUSTOMER, "otp_code", "fr", ["1"])
        assert harness.emulator.calls_to(SEND_PATH) == []


async def test_the_quick_replies_are_remembered_per_number_and_expire() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await wa_chat(harness)
        await chat.say("remind")
        stored: Any = await harness.bot.storage.get_state(quick_replies_key(CUSTOMER))
        assert [b["label"] for b in stored["buttons"]] == ["Lacak pesanan", "Hubungi CS"]
        await harness.advance(days=31)
        (await chat.say("Lacak pesanan")).assert_texts("text: Lacak pesanan")


async def test_bot_send_template_never_mistakes_a_room_for_a_number() -> None:
    async with Harness(make_bot(), settings()) as harness:
        plain = await harness.chat("joe@example.com", "Joe")
        await plain.say("halo")
        widget = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="qiscus")
        await widget.say("halo")
        with pytest.raises(MessageBuildError, match="on channel 'qiscus'"):
            await harness.bot.send_template(str(widget.room_id), "otp_code", variables=["1"])
        with pytest.raises(MessageBuildError, match="not a WhatsApp room"):
            await harness.bot.send_template(plain.room_id, "otp_code", variables=["1"])
        for bad in ("123", "1" * 16, "62812abc", ""):
            with pytest.raises(MessageBuildError, match="not a phone number"):
                await harness.bot.send_template(bad, "otp_code", variables=["1"])
        assert harness.emulator.calls_to(SEND_PATH) == []


async def test_a_name_approved_on_two_channels_is_checked_against_the_sending_ones() -> None:
    async with Harness(make_bot(), settings()) as harness:
        catalog = harness.desk.whatsapp
        mine = catalog.templates["otp_code"]  # channel 2's: one variable
        other = dict(catalog.add("x", [{"language": "id", "content": "Kode {{1}} dan {{2}}"}]))
        other.update(name="otp_code", channel_id=99)  # another number's, two variables
        del catalog.templates["x"]
        catalog.templates = {"otp_code@99": other, **catalog.templates}  # listed first
        assert catalog.listing(approved=True, channel_id=None)[0]["channel_id"] == 99
        chat = await wa_chat(harness)
        await chat.say("halo")
        sent = await harness.bot.send_template(CUSTOMER, "otp_code", variables=["1"])
        assert sent is not None and catalog.sent[-1].variables == ["1"]
        assert mine["channel_id"] == 2
