"""A bot behind Omnichannel, against the emulator: replies via /bot, handoff, resolve, menus."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from qbot import Bot, Buttons, Card, Carousel, Context
from qbot._json import dumps
from qbot.config import Settings, load_settings
from qbot.emulator.harness import Chat, Harness
from qbot.emulator.omnichannel_bodies import agent_allocation_body

APP = "qbot-test"


def settings(**omnichannel: object) -> Settings:
    return load_settings(
        None,
        qiscus={"app_id": APP, "secret_key": "qbot-test-secret"},
        bot={"email": "bot@qbot.local", "name": "Shop"},
        postback={"secret": "s" * 32},
        omnichannel={"text_menus": ["wa"], **omnichannel},
    )


def make_bot() -> Bot:
    bot = Bot("shop")

    @bot.message(text="menu")
    async def menu(ctx: Context) -> None:
        await ctx.reply(
            Buttons("How can we help?")
            .postback("Track my order", action="track")
            .postback("Talk to an agent", action="human")
        )

    @bot.message(text="rich")
    async def rich(ctx: Context) -> None:
        await ctx.reply(Card(title="Batik", description="Rp 149.000").postback("Buy", action="b"))
        await ctx.reply(Carousel([Card(title="Rice").postback("Buy rice", action="b")]))

    @bot.postback(action="track")
    async def track(ctx: Context) -> None:
        await ctx.reply("Send me your order number.")

    @bot.postback(action="human")
    async def human(ctx: Context) -> None:
        await ctx.reply("An agent will join you.")
        await ctx.handoff("asked for a human", division="support")

    @bot.message(text="ayu")
    async def ayu(ctx: Context) -> None:
        await ctx.handoff("wants Ayu", agent_id=101)

    @bot.message(text="anyone")
    async def anyone(ctx: Context) -> None:
        await ctx.handoff("anyone")

    @bot.message(text="count")
    async def count(ctx: Context) -> None:
        n = await ctx.state.get("n", 0)
        await ctx.state.set("n", n + 1)
        await ctx.reply(f"count {n + 1}")

    @bot.on_resolved
    async def survey(ctx: Context) -> None:
        await ctx.reply(Buttons("Rate us").postback("Good", action="rate", data={"s": 5}))

    @bot.postback(action="rate")
    async def rate(ctx: Context) -> None:
        await ctx.reply(f"Thanks for {ctx.postback.data['s'] if ctx.postback else '?'}")

    @bot.fallback
    async def echo(ctx: Context) -> None:
        await ctx.reply(f"echo {ctx.text}")

    return bot


async def bot_calls(harness: Harness, path_part: str) -> list[str]:
    """Paths of the emulator's recorded calls ending with ``path_part``."""
    return [c.path for c in harness.emulator.calls if c.path.endswith(path_part)]


@pytest.mark.parametrize("shape", ["2025", "options"])
async def test_replies_go_through_bot_never_post_comment(shape: str) -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await harness.chat(
            "ana@example.com", "Ana", omnichannel=True, channel="ig", shape=shape
        )
        (await chat.say("hello")).assert_texts("echo hello")
        (await chat.say("menu")).assert_buttons("Track my order", "Talk to an agent")
        assert await bot_calls(harness, f"/{APP}/bot")
        assert not await bot_calls(harness, "/post_comment")
        [reply] = chat.last
        assert reply.comment["email"] == f"{APP}_admin@qismo.com"


async def test_a_qiscus_room_still_gets_post_comment() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await harness.chat()
        (await chat.say("hello")).assert_texts("echo hello")
        assert await bot_calls(harness, "/post_comment")
        assert not await bot_calls(harness, "/bot")


async def test_handoff_to_a_division_assigns_its_least_busy_agent() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="ig")
        await chat.say("menu")
        (await chat.tap("Talk to an agent")).assert_texts("An agent will join you.")
        await chat.assert_handed_off(agent="Ayu")
        (await chat.say("still there?")).assert_none()
        assert await bot_calls(harness, "/activate")


async def test_handoff_to_an_agent_and_to_omnichannels_allocation() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="ig")
        await chat.say("ayu")
        await chat.assert_handed_off(agent=101)
        other = await harness.chat("bo@example.com", "Bo", omnichannel=True, channel="ig")
        await other.say("anyone")
        await other.assert_handed_off(waiting=True)
        assert (await other.service())["agent_ids"] == []


async def test_resolve_turns_the_bot_on_clears_state_and_runs_the_survey() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="ig")
        (await chat.say("count")).assert_texts("count 1")
        await chat.say("ayu")
        (await chat.agent_says("Hi Ana, Ayu here")).assert_none()
        survey = await chat.resolve()
        survey.assert_buttons("Good")
        await chat.assert_with_bot()
        (await chat.tap("Good")).assert_texts("Thanks for 5")
        (await chat.say("count")).assert_texts("count 1")  # the state was cleared


async def test_text_menus_on_whatsapp_and_the_answer_as_a_tap() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="wa")
        [menu] = await chat.say("menu")
        assert menu.type == "text"
        assert menu.text == "How can we help?\n\n1. Track my order\n2. Talk to an agent"
        (await chat.say("1")).assert_texts("Send me your order number.")
        await chat.say("menu")
        (await chat.say(" talk to an AGENT ")).assert_texts("An agent will join you.")
        await chat.assert_handed_off(agent="Ayu")


async def test_a_text_menu_answer_only_counts_until_the_next_reply() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="wa")
        await chat.say("menu")
        await chat.say("hello")
        (await chat.say("1")).assert_texts("echo 1")


async def test_cards_and_carousels_become_text_menus() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="wa")
        replies = await chat.say("rich")
        assert replies.types == ["text", "text"]
        assert replies.texts[1] == "Rice\n1. Buy rice"


async def test_the_plain_text_200_error_is_a_failed_send() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="ig")
        harness.emulator.fail_next(f"/{APP}/bot", status=200, body="sender_email is invalid")
        with capture_logs() as logs:
            (await chat.say("hello")).assert_none()
        assert any(e["event"] == "reply.failed" for e in logs)
        (await chat.say("again")).assert_texts("echo again")


async def test_a_desk_outage_during_a_handoff_is_retried_through_the_outbox() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="ig")
        harness.emulator.fail_next(f"/bot/{chat.room_id}/activate", status=503, times=1)
        with capture_logs() as logs:
            await chat.say("ayu")
        assert any(e["event"] == "reply.queued" for e in logs)
        handoff = await harness.bot.storage.handoff_get(str(chat.room_id))
        assert handoff is not None  # handed off in qbot whatever the desk said
        assert (await chat.service())["is_handled_by_bot"]
        left = await harness.bot.dispatcher.flush(str(chat.room_id))
        assert left == 0
        await chat.assert_handed_off(agent="Ayu")


async def test_a_desk_refusal_never_reaches_the_handler() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="ig")
        harness.emulator.fail_next(f"/bot/{chat.room_id}/activate", status=403)
        with capture_logs() as logs:
            await chat.say("ayu")
        assert any(e["event"] == "handoff.desk_failed" for e in logs)
        assert not any(e["event"] == "handler.failed" for e in logs)
        assert await harness.bot.storage.handoff_get(str(chat.room_id)) is not None


async def test_ctx_send_later_uses_the_rooms_remembered_path() -> None:
    bot = make_bot()
    async with Harness(bot, settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="ig")
        await chat.say("hello")
        qiscus = await harness.chat("bo@example.com", "Bo")
        target = chat.room_id

        @bot.message(text="notify")
        async def notify(ctx: Context) -> None:
            await ctx.send(target, "A note for Ana")

        await qiscus.say("notify")
        comments = await harness.emulator.store.comments(target, limit=1)
        assert comments[0]["message"] == "A note for Ana"
        assert comments[0]["email"] == f"{APP}_admin@qismo.com"


def allocation_raw(harness: Harness, chat: Chat, candidate: int) -> bytes:
    bot_body = {
        "payload": {
            "from": {"email": chat.email, "name": "Ana"},
            "room": {"id": chat.room_id},
        },
        "channel": {"source": "ig"},
    }
    body = agent_allocation_body(bot_body, harness.desk.agent_view(candidate), app_code=APP)
    return dumps(body)


async def test_agent_allocation_assigns_the_candidate_without_a_handler() -> None:
    async with Harness(make_bot(), settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="ig")
        raw = allocation_raw(harness, chat, 102)
        outcome = await harness.bot.dispatcher.feed_lifecycle("agent-allocation", raw)
        assert outcome.handler == "on_agent_allocation"
        assert (await chat.service())["agent_ids"] == [102]
        again = await harness.bot.dispatcher.feed_lifecycle("agent-allocation", raw)
        assert again.ignored == "duplicate"


async def test_an_allocation_handler_picks_the_agent() -> None:
    bot = make_bot()
    seen: list[str] = []

    @bot.on_agent_allocation
    async def pick(ctx: Context) -> None:
        seen.append(ctx.sender.email)
        await ctx.assign_agent(101)

    async with Harness(bot, settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="ig")
        await harness.bot.dispatcher.feed_lifecycle(
            "agent-allocation", allocation_raw(harness, chat, 102)
        )
        assert seen == ["ana@example.com"]
        assert (await chat.service())["agent_ids"] == [101]


async def test_a_lifecycle_body_that_is_not_one_is_a_value_error() -> None:
    async with Harness(make_bot(), settings()) as harness:
        with pytest.raises(ValueError, match="room_id"):
            await harness.bot.dispatcher.feed_lifecycle("agent-allocation", b'{"x": 1}')
        with pytest.raises(ValueError, match="no lifecycle webhook 'closed'"):
            await harness.bot.dispatcher.feed_lifecycle("closed", b"{}")


async def test_resume_turns_the_bot_back_on_at_the_desk() -> None:
    bot = make_bot()

    @bot.event("left_room")
    async def left(ctx: Context) -> None:
        await ctx.resume()

    async with Harness(bot, settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="ig")
        await chat.say("anyone")
        await chat.assert_handed_off()
        await chat.event("left_room")
        await chat.assert_with_bot()


async def test_customer_properties_update_merges_and_tags() -> None:
    bot = Bot("props")
    found: list[dict[str, object]] = []

    @bot.message()
    async def profile(ctx: Context) -> None:
        await ctx.customer.update(plan="gold")
        await ctx.customer.update(city="Bandung")
        await ctx.customer.tag("vip", "wa-lead")
        found.append(await ctx.customer.properties())

    async with Harness(bot, settings()) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="wa")
        await chat.say("hi")
        assert found == [{"plan": "gold", "city": "Bandung"}]
        assert harness.desk.services[chat.room_id].tags == ["vip", "wa-lead"]


async def test_mode_never_keeps_every_room_on_post_comment() -> None:
    async with Harness(make_bot(), settings(mode="never")) as harness:
        chat = await harness.chat("ana@example.com", "Ana", omnichannel=True, channel="wa")
        (await chat.say("menu")).assert_buttons("Track my order", "Talk to an agent")
        assert await bot_calls(harness, "/post_comment")
        assert not await bot_calls(harness, f"/{APP}/bot")
