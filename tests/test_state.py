"""ctx.state and ctx.room_state: steps, values, expiry, and the all-or-nothing commit."""

from __future__ import annotations

import pytest
from webhooks import RecordingDelivery, sdk_body

from qbot import Bot, Context
from qbot import filters as F
from qbot.config import load_settings
from qbot.errors import HandlerRegistrationError, LeaseLostError, QbotError
from qbot.models import Update
from qbot.state import State
from qbot.storage import MemoryStorage, state_key


def make_bot(storage: MemoryStorage | None = None) -> tuple[Bot, RecordingDelivery]:
    bot = Bot(email="bot@example.com")
    bot.delivery = out = RecordingDelivery()
    if storage is not None:
        bot.use_storage(storage)
    return bot, out


async def test_state_steps_route_answers_to_the_waiting_handler() -> None:
    bot, out = make_bot()

    @bot.message(regex=r"@")  # registered first, would take any email-looking text
    async def looks_like_email(ctx: Context) -> None:
        await ctx.reply("an email, out of context")

    @bot.message(text="subscribe")
    async def subscribe(ctx: Context) -> None:
        await ctx.state.goto("ask_email")
        await ctx.reply("Your email?")

    @bot.message(state="ask_email")
    async def got_email(ctx: Context) -> None:
        await ctx.state.update(email=ctx.text, subscribed=True)
        await ctx.state.goto(None)
        await ctx.reply(f"subscribed {await ctx.state.get('email')}")

    for text in ("ana@x.io", "subscribe", "ana@x.io", "ana@x.io"):
        await bot.feed_update(sdk_body(text, room_id=1))
    assert out.texts == [
        "an email, out of context",
        "Your email?",
        "subscribed ana@x.io",
        "an email, out of context",
    ]
    stored = await bot.storage.get_state(state_key("1", "user1@example.com"))
    assert stored == {"step": None, "data": {"email": "ana@x.io", "subscribed": True}}


async def test_state_is_per_user_and_room_state_is_shared() -> None:
    bot, out = make_bot()

    @bot.message(text="count")
    async def count(ctx: Context) -> None:
        mine = await ctx.state.get("n", 0) + 1
        everyone = await ctx.room_state.get("n", 0) + 1
        await ctx.state.set("n", mine)
        await ctx.room_state.update({"n": everyone})
        await ctx.reply(f"{ctx.sender.name}: {mine}/{everyone}")

    for name in ("Ana", "Ana", "Budi"):
        await bot.feed_update(sdk_body("count", room_id=7, sender=f"{name}@x.io", name=name))
    await bot.feed_update(sdk_body("count", room_id=8, sender="ana@x.io", name="Ana"))
    assert out.texts == ["Ana: 1/1", "Ana: 2/2", "Budi: 1/3", "Ana: 1/1"]


async def test_state_writes_of_a_failing_handler_are_dropped() -> None:
    bot, out = make_bot()

    @bot.message(text="pay")
    async def pay(ctx: Context) -> None:
        await ctx.state.set("paid", True)
        await ctx.state.goto("receipt")
        raise RuntimeError("payment API down")

    @bot.message(text="status")
    async def status(ctx: Context) -> None:
        await ctx.reply(f"paid={await ctx.state.get('paid', False)} step={ctx.state.step}")

    @bot.error
    async def on_error(ctx: Context) -> None:
        await ctx.state.set("failures", 1)
        await ctx.reply("sorry")

    await bot.feed_update(sdk_body("pay", room_id=2))
    await bot.feed_update(sdk_body("status", room_id=2))
    assert out.texts == ["sorry", "paid=False step=None"]
    stored = await bot.storage.get_state(state_key("2", "user1@example.com"))
    assert stored == {"step": None, "data": {"failures": 1}}


async def test_state_expires_state_ttl_after_its_last_change() -> None:
    now = [1000.0]
    bot, out = make_bot(MemoryStorage(clock=lambda: now[0]))
    bot.settings = load_settings(
        None,
        qiscus={"app_id": "a", "secret_key": "s"},
        bot={"email": "bot@example.com"},
        state={"ttl": 60},
    )

    @bot.message()
    async def remember(ctx: Context) -> None:
        seen = await ctx.state.get("seen", 0)
        await ctx.state.set("seen", seen + 1)
        await ctx.reply(str(seen))

    for step in (0, 59, 59, 61):  # each change restarts the 60 s
        now[0] += step
        await bot.feed_update(sdk_body("x", room_id=4))
    assert out.texts == ["0", "1", "2", "0"]


async def test_state_refuses_values_that_are_not_json_naming_the_key() -> None:
    bot, _ = make_bot()
    errors: list[str] = []

    @bot.message()
    async def bad(ctx: Context) -> None:
        await ctx.state.set("when", {1, 2})

    @bot.error
    async def on_error(ctx: Context) -> None:
        errors.append(str(ctx.error))

    await bot.feed_update(sdk_body("x"))
    assert "state value 'when' must be JSON-serialisable" in errors[0]


async def test_state_commit_refused_after_losing_the_lease_applies_nothing() -> None:
    now = [0.0]
    storage = MemoryStorage(clock=lambda: now[0])
    bot, out = make_bot(storage)
    await bot.open()

    @bot.message()
    async def slow(ctx: Context) -> None:
        await ctx.state.set("done", True)
        await ctx.reply("done")
        now[0] += 31  # this worker stalls past its lease; another one takes the room
        assert [i.room_id for i in (await storage.inbox_claim("B", lease_ttl=30)).items] == ["5"]

    body = sdk_body("x", room_id=5)
    await storage.inbox_put("5", body)
    [item] = (await storage.inbox_claim("A", lease_ttl=30)).items
    with pytest.raises(LeaseLostError):
        await bot.dispatcher.process(Update.model_validate(body), ack=item, owner="A")
    assert await storage.get_state(state_key("5", "user1@example.com")) is None
    assert await storage.inbox_size() == 1  # still there for B, which holds the room now

    out.sent.clear()
    await bot.dispatcher.process(Update.model_validate(body), ack=item, owner="B")
    assert out.texts == []  # the reply A sent has the same id: it is not sent twice
    assert await storage.inbox_size() == 0
    assert await storage.get_state(state_key("5", "user1@example.com")) == {
        "step": None,
        "data": {"done": True},
    }


async def test_state_api_errors_name_the_problem() -> None:
    state = State(MemoryStorage(), "user:1:a")
    with pytest.raises(QbotError, match="not loaded"):
        _ = state.step
    with pytest.raises(QbotError, match="step is a non-empty string"):
        await state.goto("")
    with pytest.raises(QbotError, match="non-empty strings"):
        await state.update({"": 1})
    with pytest.raises(HandlerRegistrationError, match="state= needs step names"):
        F.StateIs("")
    assert repr(F.StateIs("a", None, "form:*")) == "StateIs(None, 'a', 'form:*')"
