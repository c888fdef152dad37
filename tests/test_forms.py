"""Forms: the demo's complaint form through the pytest plugin, validators, back/cancel, restarts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from webhooks import RecordingDelivery, postback_body, sdk_body

from bots.demo import bot as demo
from qbot import Bot, Context
from qbot.errors import HandlerRegistrationError, InvalidInput
from qbot.forms import Field, Form, email, length, number, phone, regex
from qbot.storage import SqliteStorage
from qbot.testing import Chat


@pytest.fixture
def qbot_bot() -> Bot:
    return demo


async def test_forms_demo_complaint_from_the_menu_to_the_filed_ticket(qbot_chat: Chat) -> None:
    await qbot_chat.say("menu")
    (await qbot_chat.tap("File a complaint")).assert_texts(
        "Which order is it about? Send its number, e.g. 123."
    )
    refused = await qbot_chat.say("my order")
    refused.assert_texts(
        "An order number has 3 to 10 digits, e.g. 123.",
        "Which order is it about? Send its number, e.g. 123.",
    )
    issue = await qbot_chat.say("#123")
    issue.assert_buttons("Late delivery", "Damaged item", "Wrong item", "Something else")
    (await qbot_chat.tap("Damaged item")).assert_texts(
        "Please describe the problem in a few words."
    )
    (await qbot_chat.say("broken")).assert_texts(
        "Please write at least 10 characters.", "Please describe the problem in a few words."
    )
    # Would match the demo's 'refund' intent; the form waits for an answer, so it gets it.
    summary = await qbot_chat.say("I want a refund, the box arrived crushed")
    summary.assert_buttons("Confirm", "Back", "Cancel")
    assert "• Order: #123" in summary[0].text
    assert "• Issue: Damaged item" in summary[0].text
    assert "• Description: I want a refund, the box arrived crushed" in summary[0].text
    filed = await qbot_chat.tap("Confirm")
    filed.assert_texts(
        re.compile(
            r"Thank you\. Complaint C-[0-9A-F]{6} about order #123 \(Damaged item\) is filed.*"
        )
    )
    (await qbot_chat.say("hi")).assert_contains("Hello User!")  # the form is over


async def test_forms_back_reasks_and_cancel_forgets(qbot_chat: Chat) -> None:
    await qbot_chat.say("complaint")
    await qbot_chat.say("456")
    (await qbot_chat.say("back")).assert_texts(
        "Which order is it about? Send its number, e.g. 123."
    )
    await qbot_chat.say("789")
    await qbot_chat.say("Late delivery")  # typing a choice's label works like tapping it
    await qbot_chat.say("The parcel is a week late now")
    (await qbot_chat.say("back")).assert_texts("Please describe the problem in a few words.")
    (await qbot_chat.say("cancel")).assert_texts("Cancelled. Nothing was saved.")
    (await qbot_chat.say("order 123")).assert_types("card")  # routed normally again


async def test_forms_choice_refuses_other_text_and_stale_buttons_reask(qbot_chat: Chat) -> None:
    await qbot_chat.say("complaint")
    await qbot_chat.say("123")
    (await qbot_chat.say("it is broken")).assert_texts(
        "Please pick one of: Late delivery, Damaged item, Wrong item, Something else.",
        "What went wrong?",
    )


def feeding_bot(form: Form) -> tuple[Bot, RecordingDelivery]:
    bot = Bot(email="bot@example.com")
    bot.delivery = out = RecordingDelivery()
    bot.include_router(form)

    @bot.message(text="go")
    async def go(ctx: Context) -> None:
        await form.start(ctx)

    return bot, out


async def test_forms_survive_a_restart_on_sqlite(tmp_path: Path) -> None:
    done: list[dict[str, Any]] = []

    def build() -> tuple[Bot, RecordingDelivery]:
        form = Form(
            "signup",
            [
                Field("mail", "Your email?", validate=email()),
                Field("age", "Your age?", validate=number(min=13, max=130)),
            ],
            confirm=False,
        )

        @form.on_complete
        async def finished(ctx: Context, data: dict[str, Any]) -> None:
            done.append(data)
            await ctx.reply("welcome")

        bot, out = feeding_bot(form)
        bot.use_storage(SqliteStorage(str(tmp_path / "qbot.db")))
        return bot, out

    first, out1 = build()
    await first.feed_update(sdk_body("go", room_id=5))
    await first.feed_update(sdk_body(" Ana@Example.COM ", room_id=5))
    assert out1.texts == ["Your email?", "Your age?"]
    await first.aclose()

    second, out2 = build()  # a new process: only the SQLite file is shared
    await second.feed_update(sdk_body("12", room_id=5))
    await second.feed_update(sdk_body("40", room_id=5))
    await second.aclose()
    assert out2.texts == ["Please send a whole number of at least 13.", "Your age?", "welcome"]
    assert done == [{"mail": "ana@example.com", "age": 40}]


async def test_forms_custom_async_validator_with_ctx_and_no_confirm() -> None:
    async def not_taken(text: str, ctx: Context) -> str:
        if text.lower() == "admin":
            raise InvalidInput(f"Sorry {ctx.sender.name}, 'admin' is taken.")
        return text

    form = Form("nick", [Field("nick", "Pick a nickname.", validate=not_taken)], confirm=False)

    @form.on_complete
    async def finished(ctx: Context, data: dict[str, Any]) -> None:
        await ctx.reply(f"hi {data['nick']}")

    bot, out = feeding_bot(form)
    for text in ("go", "admin", "neo"):
        await bot.feed_update(sdk_body(text, room_id=9, name="Ani"))
    assert out.texts == [
        "Pick a nickname.",
        "Sorry Ani, 'admin' is taken.",
        "Pick a nickname.",
        "hi neo",
    ]


async def test_forms_summary_buttons_confirm_and_back() -> None:
    form = Form("pick", [Field("colour", "Colour?", choices=["Red", "Blue"])])
    got: list[dict[str, Any]] = []

    @form.on_complete
    async def finished(ctx: Context, data: dict[str, Any]) -> None:
        got.append(data)

    bot, out = feeding_bot(form)
    await bot.feed_update(sdk_body("go", room_id=3))
    await bot.feed_update(sdk_body("blue", room_id=3))
    summary = out.sent[-1][1]
    assert summary.message == "Please check your answers:\n• Colour: Blue"
    buttons = summary.payload["buttons"]
    await bot.feed_update(postback_body(buttons[1], text="Back", room_id=3))
    assert out.texts[-1] == "Colour?"
    await bot.feed_update(sdk_body("red", room_id=3))
    await bot.feed_update(postback_body(out.sent[-1][1].payload["buttons"][0], room_id=3))
    assert got == [{"colour": "Red"}]


def test_forms_validators_clean_and_refuse() -> None:
    assert email()(" A@B.co ") == "a@b.co"
    assert phone()("+62 812-3456 (7890)") == "+6281234567890"
    assert number()("1,000") == 1000
    assert number(integer=False)("2,5") == 2.5
    assert length(min=2, max=3)(" ab ") == "ab"
    assert regex(r"\d+", "digits")("42") == "42"
    for check, text, reason in [
        (email(), "not-an-email", "email address"),
        (phone(), "12", "phone number"),
        (number(max=5), "9", "at most 5"),
        (number(), "many", "whole number"),
        (length(max=3), "abcd", "under 4"),
        (regex(r"\d+", "Digits only."), "4a", "Digits only."),
    ]:
        with pytest.raises(InvalidInput, match=reason):
            check(text)


def test_forms_bad_declarations_fail_at_registration() -> None:
    with pytest.raises(HandlerRegistrationError, match="needs a prompt"):
        Field("x")
    with pytest.raises(HandlerRegistrationError, match="identifier"):
        Field("two words", "?")
    with pytest.raises(HandlerRegistrationError, match="unique"):
        Form("f", [Field("a", "?"), Field("a", "?")])
    with pytest.raises(HandlerRegistrationError, match=r"\(text\) or \(text, ctx\)"):
        Field("a", "?", validate=lambda: None)
    form = Form("f", [Field("a", "?")])
    with pytest.raises(HandlerRegistrationError, match="async def"):
        form.on_complete(lambda ctx, data: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(HandlerRegistrationError, match=r"\(ctx, data\)"):

        @form.on_complete  # type: ignore[arg-type]
        async def one_arg(ctx: Context) -> None: ...
