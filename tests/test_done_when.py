"""Issue #16's "Done when", end to end in the emulator: a customer goes quiet for 25 emulated
hours and the bot's reminder, a follow-up its handler scheduled, goes out as a template.

(The other two: a follow-up scheduled before a restart of a real `qbot run` fires once after it
is tests/test_scheduling_processes.py; the broadcast killed halfway is the broadcast tests'.)
"""

from __future__ import annotations

from datetime import timedelta

from qbot import Bot, Context
from qbot.config import Settings, load_settings
from qbot.emulator.harness import Harness
from qbot.omnichannel.templates import QuickReply, Template

CUSTOMER = "6281234567890"


def settings(**whatsapp: object) -> Settings:
    return load_settings(
        None,
        qiscus={"app_id": "qbot-test", "secret_key": "qbot-test-secret"},
        bot={"email": "bot@qbot.local", "name": "Shop"},
        postback={"secret": "s" * 32},
        omnichannel={"whatsapp": whatsapp},
    )


def shop_bot(**kwargs: object) -> Bot:
    bot = Bot("shop", **kwargs)  # type: ignore[arg-type]

    @bot.message(text="pesanan saya belum sampai")
    async def late(ctx: Context) -> None:
        await ctx.reply("Maaf! Kami cek dulu ya.")
        await ctx.schedule("reminder", after=timedelta(hours=25), data={"name": ctx.sender.name})

    @bot.scheduled("reminder")
    async def reminder(ctx: Context) -> None:
        # 25 hours after the customer's last message the window is closed: a free-form
        # message cannot go out, an approved template can.
        assert ctx.window is not None and ctx.window == timedelta(0)
        await ctx.send_template(
            "followup_check",
            variables=[ctx.data["name"]],
            buttons=[
                QuickReply("Sudah", action="arrived"),
                QuickReply("Belum", action="not_yet"),
                QuickReply("Bicara dengan agen", action="help"),
            ],
        )

    @bot.postback(action="arrived")
    async def arrived(ctx: Context) -> None:
        await ctx.reply("Senang mendengarnya!")

    @bot.message()
    async def anything(ctx: Context) -> None:
        await ctx.reply("noted")

    return bot


async def test_a_customer_quiet_for_25_hours_gets_the_reminder_as_a_template() -> None:
    async with Harness(shop_bot(), settings()) as harness:
        chat = await harness.chat(CUSTOMER, "Budi", omnichannel=True, channel="wa")
        (await chat.say("pesanan saya belum sampai")).assert_texts("Maaf! Kami cek dulu ya.")
        (await chat.advance(hours=24)).assert_none()  # not due yet
        replies = await chat.advance(hours=1)  # 25 hours of silence
        replies.assert_template("followup_check", "Budi")
        [sent] = harness.desk.whatsapp.sent
        assert (sent.name, sent.to, sent.room_id) == ("followup_check", CUSTOMER, chat.room_id)
        # The customer taps a quick reply: the window is open again, a free-form answer goes.
        (await chat.tap("Sudah")).assert_texts("Senang mendengarnya!")
        # Nothing more comes: the follow-up ran once.
        (await chat.advance(days=3)).assert_none()
        assert len(harness.desk.whatsapp.sent) == 1


async def test_a_free_form_reminder_falls_back_to_the_configured_template() -> None:
    bot = Bot("shop", fallback_template=Template("continue_chat"))

    @bot.message()
    async def hello(ctx: Context) -> None:
        await ctx.reply("Halo!")
        await ctx.schedule("reminder", after=timedelta(hours=25), cancel_on_reply=True)

    @bot.scheduled("reminder")
    async def reminder(ctx: Context) -> None:
        await ctx.reply("Masih ada yang bisa kami bantu?")  # free-form: the window is closed

    async with Harness(bot, settings()) as harness:
        chat = await harness.chat(CUSTOMER, "Budi", omnichannel=True, channel="wa")
        await chat.say("halo")
        (await chat.advance(hours=25)).assert_template("continue_chat")
        assert [s.name for s in harness.desk.whatsapp.sent] == ["continue_chat"]


async def test_the_customers_reply_within_the_25_hours_cancels_the_reminder() -> None:
    bot = Bot("shop", fallback_template=Template("continue_chat"))

    @bot.message()
    async def hello(ctx: Context) -> None:
        await ctx.schedule("reminder", after=timedelta(hours=25), cancel_on_reply=True)
        await ctx.reply("Halo!")

    @bot.scheduled("reminder")
    async def reminder(ctx: Context) -> None:
        await ctx.reply("Masih ada yang bisa kami bantu?")

    async with Harness(bot, settings()) as harness:
        chat = await harness.chat(CUSTOMER, "Budi", omnichannel=True, channel="wa")
        await chat.say("halo")
        await chat.advance(hours=20)
        await chat.say("sudah beres, terima kasih")  # cancels the first, schedules another
        (await chat.advance(hours=24)).assert_none()  # 44 h after the first message
        (await chat.advance(hours=1)).assert_template("continue_chat")  # 25 h after the last
        assert len(harness.desk.whatsapp.sent) == 1
