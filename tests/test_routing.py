"""Routing: decorators, filters, order, sub-routers, middlewares, errors, fallback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from webhooks import RecordingDelivery, event_body, postback_body, sdk_body

from qbot import Bot, Buttons, Context, Router
from qbot import filters as F
from qbot.errors import ConfigError, HandlerRegistrationError
from qbot.intents import IntentSet
from qbot.messages import OutgoingComment, Text
from qbot.sending import Sender, unique_temp_id


def make_bot(**kw: object) -> tuple[Bot, RecordingDelivery]:
    bot = Bot(email="bot@example.com", **kw)  # type: ignore[arg-type]
    delivery = RecordingDelivery()
    bot.delivery = delivery
    return bot, delivery


async def test_routing_exact_text_is_trimmed_and_case_insensitive() -> None:
    bot, out = make_bot()

    @bot.message(text=["hi", "Hello There"])
    async def greet(ctx: Context) -> None:
        await ctx.reply(f"hello {ctx.sender.name}")

    for text in ["hi", "  HI ", "hello   there"]:
        outcome = await bot.feed_update(sdk_body(text))
        assert (
            outcome.handler
            == "test_routing_exact_text_is_trimmed_and_case_insensitive.<locals>.greet"
        )
    assert out.texts == ["hello User One"] * 3
    assert (await bot.feed_update(sdk_body("hi there"))).ignored == "unhandled"


async def test_routing_regex_sets_match() -> None:
    bot, out = make_bot()

    @bot.message(regex=r"^order (\d+)$")
    async def order(ctx: Context) -> None:
        assert ctx.match is not None
        await ctx.reply(f"order {ctx.match.group(1)}")

    await bot.feed_update(sdk_body("order 42"))
    assert out.texts == ["order 42"]


async def test_routing_registration_order_decides_between_handlers() -> None:
    bot, out = make_bot()

    @bot.message(regex="help")
    async def first(ctx: Context) -> None:
        await ctx.reply("first")

    @bot.message(text="help")
    async def second(ctx: Context) -> None:
        await ctx.reply("second")

    @bot.message()
    async def anything(ctx: Context) -> None:
        await ctx.reply("anything")

    await bot.feed_update(sdk_body("help"))
    await bot.feed_update(sdk_body("other"))
    assert out.texts == ["first", "anything"]


async def test_routing_text_index_keeps_order_with_unindexed_handlers() -> None:
    bot, out = make_bot()

    @bot.message(F.Func(lambda ctx: ctx.sender.email == "vip@example.com"))
    async def vip(ctx: Context) -> None:
        await ctx.reply("vip")

    for i in range(500):

        @bot.message(text=f"word{i}")
        async def numbered(ctx: Context, i: int = i) -> None:
            await ctx.reply(f"n{ctx.normalized_text}")

    await bot.feed_update(sdk_body("word321"))
    await bot.feed_update(sdk_body("word321", sender="vip@example.com"))
    assert out.texts == ["nword321", "vip"]


async def test_routing_type_filter_for_attachments() -> None:
    bot, out = make_bot()

    @bot.message(type="file_attachment")
    async def file(ctx: Context) -> None:
        await ctx.reply("got your file")

    @bot.message(text="[file] https://x/a.pdf [/file]")
    async def never(ctx: Context) -> None:  # text= is for text messages only
        await ctx.reply("wrong")

    body = sdk_body(
        "[file] https://x/a.pdf [/file]", type="file_attachment", payload={"url": "https://x/a.pdf"}
    )
    await bot.feed_update(body)
    assert out.texts == ["got your file"]


async def test_routing_composed_filters() -> None:
    bot, out = make_bot()
    only_single_non_boss = F.RoomType("single") & ~F.SentBy("BOSS@example.com")

    @bot.message(only_single_non_boss | F.TextIs("override"), text=["x", "override"])
    async def handler(ctx: Context) -> None:
        await ctx.reply("ok")

    await bot.feed_update(sdk_body("x"))
    await bot.feed_update(sdk_body("x", sender="boss@example.com"))
    await bot.feed_update(sdk_body("override", sender="boss@example.com"))
    assert out.texts == ["ok", "ok"]


async def test_routing_async_filter() -> None:
    bot, out = make_bot()

    async def is_member(ctx: Context) -> bool:
        return ctx.sender.email.endswith("@example.com")

    @bot.message(F.Func(is_member))
    async def member(ctx: Context) -> None:
        await ctx.reply("member")

    await bot.feed_update(sdk_body("a"))
    await bot.feed_update(sdk_body("a", sender="x@other.org"))
    assert out.texts == ["member"]


async def test_routing_postback_routes_on_packed_action_whatever_the_text() -> None:
    bot, out = make_bot()

    @bot.message(text="menu")
    async def menu(ctx: Context) -> None:
        await ctx.reply(Buttons("pick").postback("Track", action="track", data={"n": 7}))

    @bot.postback(action="track")
    async def track(ctx: Context) -> None:
        assert ctx.postback is not None
        await ctx.reply(f"tracking {ctx.postback.data['n']}")

    await bot.feed_update(sdk_body("menu"))
    sent = out.sent[0][1]
    assert isinstance(sent, OutgoingComment)
    assert sent.payload is not None
    button = sent.payload["buttons"][0]
    for text in ["Track", "Button", "something else"]:
        await bot.feed_update(postback_body(button, text=text))
    assert out.texts[1:] == ["tracking 7"] * 3


async def test_routing_signed_postbacks_reject_forgeries() -> None:
    bot, out = make_bot(postback_secret="s3cret")

    @bot.message(text="menu")
    async def menu(ctx: Context) -> None:
        await ctx.reply(Buttons("pick").postback("Refund", action="refund", data={"amount": 5}))

    @bot.postback(action="refund")
    async def refund(ctx: Context) -> None:
        assert ctx.postback is not None
        await ctx.reply(f"refunding {ctx.postback.data['amount']}")

    await bot.feed_update(sdk_body("menu"))
    sent = out.sent[0][1]
    assert isinstance(sent, OutgoingComment)
    assert sent.payload is not None
    button = sent.payload["buttons"][0]
    await bot.feed_update(postback_body(button))
    forged = {"payload": {**button["payload"]}}
    inner = dict(forged["payload"]["payload"])
    forged["payload"]["payload"] = inner
    for key, value in list(inner.items()):
        if isinstance(value, dict):
            inner[key] = {**value, "amount": 5000}
    with capture_logs() as logs:
        outcome = await bot.feed_update(postback_body(forged))
    assert outcome.ignored == "rejected_postback"
    assert any(e["event"] == "postback.rejected" for e in logs)
    unsigned = Buttons("pick").postback("Refund", action="refund", data={"amount": 9})
    raw = unsigned.to_outgoing()[0]
    assert isinstance(raw, OutgoingComment)
    assert raw.payload is not None
    assert (await bot.feed_update(postback_body(raw.payload["buttons"][0]))).ignored == (
        "rejected_postback"
    )
    assert out.texts[1:] == ["refunding 5"]


async def test_routing_events_and_unhandled_events_are_ignored() -> None:
    bot, out = make_bot()

    @bot.event("add_member")
    async def welcome(ctx: Context) -> None:
        assert ctx.event_type == "add_member"
        await ctx.reply("welcome")

    assert (await bot.feed_update(event_body("add_member"))).handler is not None
    assert (await bot.feed_update(event_body("left_room"))).ignored == "unhandled_system_event"
    assert out.texts == ["welcome"]


async def test_routing_own_messages_are_ignored() -> None:
    bot, out = make_bot()

    @bot.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text)

    outcome = await bot.feed_update(sdk_body("hi", sender="BOT@example.com"))
    assert outcome.ignored == "own_message"
    assert out.sent == []


async def test_routing_sub_routers_after_own_handlers_then_fallback() -> None:
    bot, out = make_bot()
    orders = Router("orders")

    @orders.message(text="status")
    async def status(ctx: Context) -> None:
        await ctx.reply("from router")

    @bot.message(text="status")
    async def top(ctx: Context) -> None:
        await ctx.reply("from bot")

    @orders.message(text="only-in-router")
    async def only(ctx: Context) -> None:
        await ctx.reply("router only")

    @bot.fallback
    async def fallback(ctx: Context) -> None:
        await ctx.reply("fallback")

    bot.include_router(orders)
    for text in ["status", "only-in-router", "nope"]:
        await bot.feed_update(sdk_body(text))
    assert out.texts == ["from bot", "router only", "fallback"]


async def test_routing_fallback_of_included_router_used_when_bot_has_none() -> None:
    bot, out = make_bot()
    sub = Router("sub")

    @sub.fallback
    async def sub_fallback(ctx: Context) -> None:
        await ctx.reply("sub fallback")

    bot.include_router(sub)
    await bot.feed_update(sdk_body("x"))
    assert out.texts == ["sub fallback"]


async def test_routing_unhandled_is_logged() -> None:
    bot, _ = make_bot()
    with capture_logs() as logs:
        outcome = await bot.feed_update(sdk_body("x"))
    assert outcome.ignored == "unhandled"
    assert [e["event"] for e in logs] == ["update.unhandled"]


async def test_routing_middlewares_wrap_in_order_and_can_stop() -> None:
    bot, out = make_bot()
    seen: list[str] = []

    @bot.middleware
    async def outer(ctx: Context, call_next) -> None:  # type: ignore[no-untyped-def]
        seen.append("outer-in")
        await call_next()
        seen.append("outer-out")

    @bot.middleware
    async def block(ctx: Context, call_next) -> None:  # type: ignore[no-untyped-def]
        seen.append("block")
        if ctx.text != "blocked":
            await call_next()

    @bot.message()
    async def any_(ctx: Context) -> None:
        seen.append("handler")
        await ctx.reply("ok")

    await bot.feed_update(sdk_body("go"))
    assert seen == ["outer-in", "block", "handler", "outer-out"]
    seen.clear()
    await bot.feed_update(sdk_body("blocked"))
    assert seen == ["outer-in", "block", "outer-out"]
    assert out.texts == ["ok"]


async def test_routing_handler_error_runs_nearest_error_handler_and_logs() -> None:
    bot, out = make_bot()
    sub = Router("sub")

    @sub.message(text="boom")
    async def boom(ctx: Context) -> None:
        raise KeyError("order")

    @sub.error(KeyError)
    async def on_key_error(ctx: Context) -> None:
        await ctx.reply(f"missing {ctx.error}")

    @bot.message(text="crash")
    async def crash(ctx: Context) -> None:
        raise RuntimeError("down")

    @bot.error
    async def on_error(ctx: Context) -> None:
        await ctx.reply(f"sorry: {type(ctx.error).__name__}")

    bot.include_router(sub)
    with capture_logs() as logs:
        await bot.feed_update(sdk_body("boom"))
        await bot.feed_update(sdk_body("crash"))
    assert out.texts == ["missing 'order'", "sorry: RuntimeError"]
    failed = [e for e in logs if e["event"] == "handler.failed"]
    assert [e["error"] for e in failed] == ["KeyError: 'order'", "RuntimeError: down"]


async def test_routing_failing_error_handler_is_logged_not_raised() -> None:
    bot, _ = make_bot()

    @bot.message()
    async def crash(ctx: Context) -> None:
        raise RuntimeError("one")

    @bot.error
    async def broken(ctx: Context) -> None:
        raise RuntimeError("two")

    with capture_logs() as logs:
        await bot.feed_update(sdk_body("x"))
    assert [e["event"] for e in logs if "failed" in e["event"]] == [
        "handler.failed",
        "error_handler.failed",
    ]


def test_routing_rejects_sync_handler_at_registration() -> None:
    bot = Bot()
    with pytest.raises(HandlerRegistrationError, match=r"sync_handler' must be 'async def'"):

        @bot.message(text="x")
        def sync_handler(ctx: Context) -> None:
            pass


def test_routing_rejects_wrong_parameters_at_registration() -> None:
    bot = Bot()
    with pytest.raises(HandlerRegistrationError, match="exactly one argument"):

        @bot.message(text="x")
        async def two(ctx: Context, other: int) -> None:
            pass


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"text": ""}, "text="),
        ({"text": []}, "text="),
        ({"regex": "("}, "does not compile"),
        ({"type": ""}, "type="),
    ],
)
def test_routing_rejects_bad_filters(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(HandlerRegistrationError, match=match):
        Bot().message(**kwargs)  # type: ignore[arg-type]


def test_routing_rejects_bad_error_middleware_and_duplicate_fallback() -> None:
    bot = Bot()
    with pytest.raises(HandlerRegistrationError):
        bot.error("not an exception")  # type: ignore[call-overload]
    with pytest.raises(HandlerRegistrationError, match="call_next"):

        @bot.middleware
        async def mw(ctx: Context) -> None:  # type: ignore[arg-type]
            pass

    @bot.fallback
    async def one(ctx: Context) -> None:
        pass

    with pytest.raises(HandlerRegistrationError, match="already has fallback"):

        @bot.fallback
        async def two(ctx: Context) -> None:
            pass


def test_routing_include_router_twice_or_in_a_cycle_fails() -> None:
    a, b = Router("a"), Router("b")
    a.include_router(b)
    with pytest.raises(HandlerRegistrationError, match="already included"):
        Router("c").include_router(b)
    with pytest.raises(HandlerRegistrationError, match="cycle"):
        b.include_router(a)


async def test_routing_intents_with_score_on_context() -> None:
    intents = IntentSet(
        {
            "refund": {"patterns": [r"\brefund\b"], "examples": ["I want my money back"]},
            "hours": {"examples": ["when are you open", "what are your hours"]},
        }
    )
    bot, out = make_bot(intents=intents)

    @bot.intent("refund")
    async def refund(ctx: Context) -> None:
        assert ctx.intent is not None
        await ctx.reply(f"{ctx.intent.name} {ctx.intent.score:.2f}")

    @bot.intent("hours")
    async def hours(ctx: Context) -> None:
        assert ctx.intent is not None
        await ctx.reply(ctx.intent.name)

    await bot.feed_update(sdk_body("I need a refund please"))
    await bot.feed_update(sdk_body("When are you open?"))
    await bot.feed_update(sdk_body("bananas"))
    assert out.texts == ["refund 1.00", "hours"]


def test_routing_unknown_intent_fails_at_registration_or_configure() -> None:
    intents = IntentSet({"refund": {"keywords": ["refund"]}})
    with pytest.raises(ConfigError, match="'nope'"):
        Bot(intents=intents).intent("nope")
    bot = Bot()

    @bot.intent("refund")
    async def refund(ctx: Context) -> None:
        pass

    with pytest.raises(ConfigError, match="has no intents"):
        bot.check_intents()


async def test_routing_reply_quote_builds_a_reply_comment() -> None:
    bot, out = make_bot()

    @bot.message()
    async def quote(ctx: Context) -> None:
        await ctx.reply("quoted", quote=True)

    await bot.feed_update(sdk_body("question", message_id=9001))
    sent = out.sent[0][1]
    assert isinstance(sent, OutgoingComment)
    assert sent.type == "reply"
    assert sent.payload is not None
    assert sent.payload["replied_comment_id"] == 9001


async def test_routing_unique_temp_ids_are_deterministic_and_distinct() -> None:
    body = sdk_body("x", message_id=77)
    runs = []
    for _ in range(2):  # two fresh bots (two processes): the same ids for the same message
        bot, out = make_bot()

        @bot.message()
        async def two(ctx: Context) -> None:
            await ctx.reply("one")
            await ctx.reply("two")

        await bot.feed_update(body)
        await bot.feed_update(body)  # the same message again: its replies are already sent
        runs.append([temp_id for _, _, temp_id in out.sent])
    ids = runs[0]
    assert len(ids) == 2
    assert ids[0] != ids[1]
    assert runs[1] == ids
    assert all(re.fullmatch(r"qbot-[0-9a-f]{24}", i) for i in ids)


async def test_routing_reply_template_accepts_a_variable_called_name(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("Hello {{ name }}!")
    bot, out = make_bot(templates=tmp_path)

    @bot.message()
    async def hello(ctx: Context) -> None:
        await ctx.reply_template("hello", name=ctx.sender.name)

    await bot.feed_update(sdk_body("x", name="Ani"))
    assert out.texts == ["Hello Ani!"]


async def test_routing_memo_still_asks_impure_filters_every_time() -> None:
    bot, out = make_bot()
    vip = {"on": False}

    @bot.message(F.Func(lambda ctx: vip["on"]))
    async def vip_handler(ctx: Context) -> None:
        await ctx.reply("vip")

    @bot.message(regex=r"^order (\d+)$")
    async def order(ctx: Context) -> None:
        assert ctx.match is not None
        await ctx.reply(f"order {ctx.match.group(1)}")

    await bot.feed_update(sdk_body("order 7"))
    vip["on"] = True
    await bot.feed_update(sdk_body("order 7"))
    vip["on"] = False
    await bot.feed_update(sdk_body("order 7"))
    await bot.feed_update(sdk_body("order 8"))
    assert out.texts == ["order 7", "vip", "order 7", "order 8"]


async def test_routing_memo_is_forgotten_when_a_handler_is_registered() -> None:
    bot, out = make_bot()

    @bot.fallback
    async def fallback(ctx: Context) -> None:
        await ctx.reply("fallback")

    await bot.feed_update(sdk_body("late"))

    @bot.message(text="late")
    async def late(ctx: Context) -> None:
        await ctx.reply("late handler")

    await bot.feed_update(sdk_body("late"))
    sub = Router("sub")

    @sub.message(text="later")
    async def later(ctx: Context) -> None:
        await ctx.reply("sub handler")

    await bot.feed_update(sdk_body("later"))
    bot.include_router(sub)
    await bot.feed_update(sdk_body("later"))
    assert out.texts == ["fallback", "late handler", "fallback", "sub handler"]


async def test_routing_memo_follows_the_intents_in_use() -> None:
    bot, out = make_bot(intents=IntentSet({"hours": {"keywords": ["open"]}}))

    @bot.intent("hours")
    async def hours(ctx: Context) -> None:
        await ctx.reply("hours")

    @bot.fallback
    async def fallback(ctx: Context) -> None:
        await ctx.reply("fallback")

    await bot.feed_update(sdk_body("are you open"))
    bot.intents = IntentSet({"hours": {"keywords": ["hours"]}})
    await bot.feed_update(sdk_body("are you open"))
    assert out.texts == ["hours", "fallback"]


async def test_routing_postbacks_indexed_by_action_keep_registration_order() -> None:
    bot, out = make_bot()

    @bot.postback(F.Func(lambda ctx: ctx.sender.email == "vip@example.com"))
    async def vip(ctx: Context) -> None:
        await ctx.reply("vip")

    for i in range(300):

        @bot.postback(action=f"a{i}")
        async def numbered(ctx: Context) -> None:
            assert ctx.postback is not None
            await ctx.reply(f"got {ctx.postback.action}")

    buttons = Buttons("pick").postback("A", action="a250").postback("B", action="nope")
    sent = buttons.to_outgoing()[0]
    assert isinstance(sent, OutgoingComment) and sent.payload is not None
    a250, nope = sent.payload["buttons"]
    await bot.feed_update(postback_body(a250))
    await bot.feed_update(postback_body(a250, sender="vip@example.com"))
    assert (await bot.feed_update(postback_body(nope))).ignored == "unhandled"
    assert out.texts == ["got a250", "vip"]


async def test_routing_middleware_that_does_not_call_next_stops_the_update() -> None:
    bot, out = make_bot()
    sub = Router("sub")
    later = Router("later")
    seen: list[str] = []

    @sub.middleware
    async def block(ctx: Context, call_next) -> None:  # type: ignore[no-untyped-def]
        if ctx.sender.email == "blocked@example.com":
            seen.append("blocked")
            await ctx.reply("you are blocked")
            return
        await call_next()

    @sub.message(text="nope")
    async def never(ctx: Context) -> None:
        seen.append("sub handler")

    @later.message()
    async def after(ctx: Context) -> None:
        seen.append("later handler")

    @bot.fallback
    async def fallback(ctx: Context) -> None:
        seen.append("fallback")
        await ctx.reply("fallback")

    bot.include_router(sub)
    bot.include_router(later)
    outcome = await bot.feed_update(sdk_body("hello", sender="blocked@example.com"))
    assert seen == ["blocked"]
    assert out.texts == ["you are blocked"]
    assert outcome.handler is None
    assert outcome.ignored == "stopped"
    assert outcome.replies == 1


async def test_routing_root_middleware_that_stops_skips_the_fallback() -> None:
    bot, out = make_bot()

    @bot.middleware
    async def block_all(ctx: Context, call_next) -> None:  # type: ignore[no-untyped-def]
        return None

    @bot.fallback
    async def fallback(ctx: Context) -> None:
        await ctx.reply("fallback")

    outcome = await bot.feed_update(sdk_body("anything"))
    assert out.texts == []
    assert outcome.ignored == "stopped"


async def test_routing_step_handler_is_stopped_by_its_routers_middleware() -> None:
    bot, out = make_bot()
    form = Router("form")

    @bot.message(text="start")
    async def start(ctx: Context) -> None:
        await ctx.state.goto("ask_name")
        await ctx.reply("your name?")

    @form.middleware
    async def closed(ctx: Context, call_next) -> None:  # type: ignore[no-untyped-def]
        if ctx.text == "blocked":
            return
        await call_next()

    @form.message(state="ask_name")
    async def name(ctx: Context) -> None:
        await ctx.reply(f"hi {ctx.text}")

    @bot.fallback
    async def fallback(ctx: Context) -> None:
        await ctx.reply("fallback")

    bot.include_router(form)
    await bot.feed_update(sdk_body("start"))
    assert (await bot.feed_update(sdk_body("blocked"))).ignored == "stopped"
    assert (await bot.feed_update(sdk_body("Ana"))).handler is not None
    assert out.texts == ["your name?", "hi Ana"]


async def test_routing_reply_ids_past_the_prefetch_and_to_other_rooms_are_their_hashes() -> None:
    # The first replies' ids are computed once, with the room's read; every id must still be
    # the one unique_temp_id gives for its room and position, whichever room it goes to.
    bot, out = make_bot()

    @bot.message()
    async def many(ctx: Context) -> None:
        await ctx.reply("one")
        await ctx.send(999, "elsewhere")
        await ctx.send(str(ctx.room.id), "same room, as text")
        for text in ("four", "five"):
            await ctx.reply(text)

    body = sdk_body("x", message_id=78)
    await bot.feed_update(body)
    room = body["payload"]["room"]["id"]
    origin = f"{room}:id:78"
    rooms = [room, 999, room, room, room]
    assert [temp_id for _, _, temp_id in out.sent] == [
        unique_temp_id(origin, r, seq) for seq, r in enumerate(rooms, start=1)
    ]


async def test_sender_uses_the_ids_it_was_given_for_their_room_only() -> None:
    out = RecordingDelivery()
    sender = Sender(out, "7:id:1", None, ids=["given-1", "given-2"], room=7)
    await sender.send(7, Text("a"))
    await sender.send(8, Text("b"))
    await sender.send(7, Text("c"))
    assert [temp_id for _, _, temp_id in out.sent] == [
        "given-1",
        unique_temp_id("7:id:1", 8, 2),
        unique_temp_id("7:id:1", 7, 3),
    ]
