"""Typed postback actions and steps: Action / Steps members wherever strings went."""

from __future__ import annotations

import os
from enum import auto
from pathlib import Path

import pytest
from click.testing import CliRunner

from qbot import (
    Action,
    Bot,
    Buttons,
    Card,
    ConfigError,
    Context,
    HandlerRegistrationError,
    Router,
    Steps,
)
from qbot.cli import main
from qbot.storage import state_key
from qbot.testing import Harness


class Act(Action):
    CONFIRM = auto()
    CANCEL = "cancel"


class Checkout(Steps):
    ADDRESS = "checkout:address"
    PAYMENT = "checkout:payment"


def checkout_bot() -> Bot:
    bot = Bot("shop")

    @bot.message(text="buy")
    async def buy(ctx: Context) -> None:
        await ctx.reply(
            Buttons("Sure?").postback("Yes", action=Act.CONFIRM).postback("No", action=Act.CANCEL)
        )

    @bot.postback(action=Act.CONFIRM)
    async def confirm(ctx: Context) -> None:
        await ctx.state.goto(Checkout.ADDRESS)
        await ctx.reply("Where to?")

    @bot.postback(action="cancel")  # a plain string takes the member with that value
    async def cancel(ctx: Context) -> None:
        await ctx.reply("Cancelled")

    @bot.message(state=Checkout.ADDRESS)
    async def address(ctx: Context) -> None:
        await ctx.state.goto(Checkout.PAYMENT)
        await ctx.reply(f"Shipping to {ctx.text}. Pay how?")

    @bot.message(state="checkout:*")  # a prefix covers the group's other steps
    async def payment(ctx: Context) -> None:
        await ctx.state.goto(None)
        await ctx.reply(f"Paid by {ctx.text}")

    return bot


def test_names_members_are_their_strings_and_a_typo_is_an_attribute_error() -> None:
    assert Act("confirm") is Act.CONFIRM and isinstance(Act.CONFIRM, str)
    assert {"confirm": 1}[Act.CONFIRM] == 1
    assert [str(s) for s in Checkout] == ["checkout:address", "checkout:payment"]
    with pytest.raises(AttributeError, match="CONFRIM"):
        _ = Act.CONFRIM  # type: ignore[attr-defined]


def test_names_buttons_and_cards_pack_the_plain_value() -> None:
    [buttons] = Buttons("Sure?").postback("Yes", action=Act.CONFIRM).to_outgoing()
    [card] = Card(title="Tea").postback("Buy", action=Act.CANCEL).to_outgoing()
    assert buttons.payload is not None and card.payload is not None
    packed = buttons.payload["buttons"][0]["payload"]["payload"]
    assert packed["a"] == "confirm" and type(packed["a"]) is str
    assert card.payload["buttons"][0]["payload"]["payload"]["a"] == "cancel"


async def test_names_a_checkout_runs_on_typed_actions_and_steps() -> None:
    bot = checkout_bot()
    async with Harness(bot) as harness:
        chat = await harness.chat()
        (await chat.say("buy")).assert_buttons("Yes", "No")
        (await chat.tap("Yes")).assert_texts("Where to?")
        stored = await bot.storage.get_state(state_key(str(chat.room_id), chat.email))
        assert stored["step"] == "checkout:address" and type(stored["step"]) is str
        (await chat.say("Jl. Sudirman 1")).assert_texts("Shipping to Jl. Sudirman 1. Pay how?")
        (await chat.say("card")).assert_texts("Paid by card")
        await chat.say("buy")
        (await chat.tap("No")).assert_texts("Cancelled")


async def test_names_a_whole_class_takes_every_member() -> None:
    bot = Bot("any")

    @bot.message(text="go")
    async def go(ctx: Context) -> None:
        await ctx.reply(Buttons("?").postback("A", action=Act.CANCEL))

    @bot.postback(action=Act)
    async def any_act(ctx: Context) -> None:
        assert ctx.postback is not None
        await ctx.reply(f"got {Act(ctx.postback.action).name}")

    async with Harness(bot) as harness:
        chat = await harness.chat()
        await chat.say("go")
        (await chat.tap("A")).assert_texts("got CANCEL")


async def test_names_an_action_without_a_handler_fails_the_start() -> None:
    bot = Bot("half")

    @bot.postback(action=Act.CONFIRM)
    async def confirm(ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match=r"action Act\.CANCEL \('cancel'\) has no @postback"):
        async with Harness(bot):
            pytest.fail("the bot must not start")

    @bot.postback()  # a catch-all postback handler may take it: nothing to tell
    async def other(ctx: Context) -> None: ...

    async with Harness(bot):
        pass


async def test_names_a_step_without_a_handler_fails_the_start_even_in_a_router() -> None:
    bot = Bot("steps")
    forms = Router("forms")

    @forms.message(state=Checkout.ADDRESS)
    async def address(ctx: Context) -> None: ...

    bot.include_router(forms)
    with pytest.raises(ConfigError, match=r"step Checkout\.PAYMENT \('checkout:payment'\)"):
        async with Harness(bot):
            pass


def test_names_two_groups_sharing_a_value_are_refused() -> None:
    class Signup(Steps):
        EMAIL = auto()

    class Profile(Steps):
        EMAIL = auto()

    bot = Bot("clash")

    @bot.message(state=[Signup.EMAIL, Profile.EMAIL])
    async def email(ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match=r"'email' is both Signup\.EMAIL and Profile\.EMAIL"):
        bot.check_names()


def test_names_an_action_where_a_step_goes_is_a_registration_error() -> None:
    bot = Bot("mixed")
    with pytest.raises(HandlerRegistrationError, match=r"state= got the action Act\.CONFIRM"):
        bot.message(state=Act.CONFIRM)
    with pytest.raises(HandlerRegistrationError, match=r"action= got the step Checkout\.ADDRESS"):
        bot.postback(action=Checkout.ADDRESS)


async def test_names_a_whole_group_as_state_covers_every_step() -> None:
    bot = Bot("group")

    @bot.message(text="go")
    async def go(ctx: Context) -> None:
        await ctx.state.goto(Checkout.PAYMENT)

    @bot.message(state=Checkout)
    async def any_step(ctx: Context) -> None:
        await ctx.reply(f"at {ctx.state.step}")

    bot.check_names()
    async with Harness(bot) as harness:
        chat = await harness.chat()
        await chat.say("go")
        (await chat.say("x")).assert_texts("at checkout:payment")


CLI_BOT = """\
from qbot import Action, Bot, Context


class Act(Action):
    BUY = "buy"
    REFUND = "refund"


bot = Bot("shop")


@bot.postback(action=Act.BUY)
async def buy(ctx: Context) -> None: ...
"""


def test_names_check_config_reports_an_unhandled_action_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "typedshop.py").write_text(CLI_BOT)
    (tmp_path / "config.yaml").write_text(
        "qiscus: {app_id: shop, secret_key: s3cret-and-long}\nbot: {email: bot@shop.id}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for key in [k for k in os.environ if k.startswith("QBOT_")]:
        monkeypatch.delenv(key)
    result = CliRunner().invoke(main, ["check-config", "--target", "typedshop:bot"])
    assert result.exit_code == 2
    assert result.output == (
        "error: bot 'shop': action Act.REFUND ('refund') has no @postback handler: a tap on its "
        "button would reach none; add @bot.postback(action=Act.REFUND)\n"
    )
