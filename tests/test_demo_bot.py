"""The README's example bot, driven through the core and a real client against fake Qiscus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from webhooks import event_body, postback_body, sdk_body

from bots.demo import bot as demo
from qbot import Bot
from qbot.cli import main
from qbot.config import load_settings
from qbot.emulator import Emulator
from qbot.emulator.harness import Chat
from qbot.omnichannel import match_choice, text_menu


@pytest.fixture
def qbot_bot() -> Bot:
    return demo  # the bot behind the qbot_chat fixture


@pytest.fixture
async def bot(fake_qiscus: Emulator) -> AsyncIterator[Bot]:
    settings = load_settings(
        None,
        qiscus={
            "app_id": fake_qiscus.config.app_id,
            "secret_key": fake_qiscus.config.secret_key,
            "base_url": fake_qiscus.base_url,
        },
        bot={"email": "bot@shop.id"},
    )
    demo.configure(settings)  # a fresh client per test, built from these settings
    yield demo
    await demo.aclose()


async def say(bot: Bot, fake: Emulator, text: str, **kw: Any) -> list[dict[str, Any]]:
    before = len(fake.posted_comments())
    await bot.feed_update(sdk_body(text, **kw))
    return fake.posted_comments()[before:]


async def test_demo_greets_by_name(bot: Bot, fake_qiscus: Emulator) -> None:
    [reply] = await say(bot, fake_qiscus, "Hello", name="Ani")
    assert reply["message"].startswith("Hello Ani!")


async def test_demo_menu_buttons_then_track_postback(bot: Bot, fake_qiscus: Emulator) -> None:
    [menu] = await say(bot, fake_qiscus, "menu")
    assert menu["type"] == "buttons"
    labels = [b["label"] for b in menu["payload"]["buttons"]]
    assert labels == [
        "Track my order", "Today's deals", "Link my account", "Help centre", "File a complaint",
    ]  # fmt: skip
    assert menu["payload"]["buttons"][3] == {
        "label": "Help centre", "type": "link", "payload": {"url": "https://example.com/help"},
    }  # fmt: skip
    await bot.feed_update(postback_body(menu["payload"]["buttons"][0]))
    assert fake_qiscus.posted_comments()[-1]["message"].startswith("Send me your order number")


async def test_demo_order_status_card_then_postback_template(
    bot: Bot, fake_qiscus: Emulator
) -> None:
    [card] = await say(bot, fake_qiscus, "order #123")
    assert card["type"] == "card"
    assert card["payload"]["title"] == "Order #123"
    assert card["payload"]["description"] == "Batik shirt · on its way"
    await bot.feed_update(postback_body(card["payload"]["buttons"][0]))
    status = fake_qiscus.posted_comments()[-1]["message"]
    assert status == "Order #123: on its way.\nExpected delivery: tomorrow."


async def test_demo_unknown_order_is_a_quoted_reply(bot: Bot, fake_qiscus: Emulator) -> None:
    [reply] = await say(bot, fake_qiscus, "order 999", message_id=31337)
    assert reply["type"] == "reply"
    assert reply["payload"]["replied_comment_id"] == 31337
    assert "#999" in reply["payload"]["text"]


async def test_demo_deals_carousel_and_account_linking(bot: Bot, fake_qiscus: Emulator) -> None:
    [menu] = await say(bot, fake_qiscus, "menu")
    await bot.feed_update(postback_body(menu["payload"]["buttons"][1]))
    carousel = fake_qiscus.posted_comments()[-1]
    assert carousel["type"] == "carousel"
    assert [c["title"] for c in carousel["payload"]["cards"]] == ["Batik shirt", "Rice cooker"]
    await bot.feed_update(postback_body(carousel["payload"]["cards"][1]["buttons"][0]))
    assert fake_qiscus.posted_comments()[-1]["message"] == "Added rice-cooker to your cart."
    await bot.feed_update(postback_body(menu["payload"]["buttons"][2]))
    linking = fake_qiscus.posted_comments()[-1]
    assert linking["type"] == "account_linking"
    assert linking["payload"]["params"]["button_text"] == "Log in"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("I want a refund", "help with a refund"),
        ("Track my order", "Send me your order number"),  # the menu's label, typed
        ("where is my order", "Send me your order number"),
        ("di mana pesanan saya?", "Send me your order number"),
        ("when are you open?", "open every day"),
        ("can I talk to a human", "agents"),
        ("asdfgh", "didn't get that"),
    ],
)
async def test_demo_intents_and_fallback(
    bot: Bot, fake_qiscus: Emulator, text: str, fragment: str
) -> None:
    replies = await say(bot, fake_qiscus, text)
    assert fragment in replies[-1]["message"]


async def test_demo_welcomes_added_members(bot: Bot, fake_qiscus: Emulator) -> None:
    await bot.feed_update(event_body("add_member"))
    assert fake_qiscus.posted_comments()[-1]["message"].startswith("Welcome!")


async def test_demo_talk_to_a_human_hands_the_room_over(bot: Bot, fake_qiscus: Emulator) -> None:
    [reply] = await say(bot, fake_qiscus, "can I talk to a human?", room_id=5)
    assert "agents to join this chat" in reply["message"]
    assert await say(bot, fake_qiscus, "hello?", room_id=5, message_id=2) == []  # handed off
    [other] = await say(bot, fake_qiscus, "hi", room_id=6, message_id=3)
    assert other["message"].startswith("Hello")


@pytest.mark.qbot_chat(omnichannel=True, channel="wa", name="Ana")
async def test_demo_survey_on_whatsapp_names_each_score(qbot_chat: Chat) -> None:
    [survey] = await qbot_chat.resolve()
    menu = text_menu(survey.type, survey.payload, survey.comment["message"])
    assert menu.text.endswith(
        "1. 1 - Very poor\n2. 2 - Poor\n3. 3 - Okay\n4. 4 - Good\n5. 5 - Excellent"
    )
    choice = match_choice("4", menu.choices)
    assert choice is not None and choice.label == "4 - Good"
    (await qbot_chat.tap("4 - Good")).assert_texts("Thank you for rating us 4 out of 5!")


async def test_demo_order_card_on_whatsapp_shows_its_url_once(
    bot: Bot, fake_qiscus: Emulator
) -> None:
    [card] = await say(bot, fake_qiscus, "order 123")
    menu = text_menu(card["type"], card["payload"], card["message"])
    assert menu.text.count("https://example.com/orders/123") == 1
    assert menu.text.endswith("1. Where is it?\n\nOrder page: https://example.com/orders/123")


def test_demo_intents_file_passes_intents_check_and_test() -> None:
    intents = str(Path(__file__).parent.parent / "bots" / "intents.yaml")
    runner = CliRunner()
    check = runner.invoke(main, ["intents", "check", intents])
    assert check.exit_code == 0, check.output
    data = str(Path(__file__).parent / "data" / "demo_queries.csv")
    measured = runner.invoke(main, ["intents", "test", intents, "--data", data])
    assert measured.exit_code == 0, measured.output
    assert "accuracy at threshold 0.6: 100.0%" in measured.output
    assert "out of scope refused at threshold 0.6: 100.0%" in measured.output
