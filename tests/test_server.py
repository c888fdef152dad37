"""The webhook server end to end: real aiohttp app, real client, fake Qiscus on port 0."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs
from webhooks import example, postback_body, sdk_body

from qbot import Bot, Buttons, Context
from qbot.config import Settings, load_settings
from qbot.emulator import Emulator
from qbot.server import RUNTIME_KEY, create_app

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def settings_for(fake: Emulator, **sections: Any) -> Settings:
    return load_settings(
        None,
        qiscus={
            "app_id": fake.config.app_id,
            "secret_key": fake.config.secret_key,
            "base_url": fake.base_url,
            "max_attempts": 3,
        },
        bot={"email": "bot@example.com", "name": "Bot"},
        **{"storage": {"url": "memory://"}, "omnichannel": {"base_url": fake.base_url}, **sections},
    )


async def omnichannel_room(fake: Emulator) -> int:
    """Room 123 of the documented Omnichannel body, on the fake's desk."""
    await fake.store.upsert_user("harpi@wa.example", "Harpi")
    body = example("omnichannel-documented-2025.json")
    room = await fake.store.create_room(
        name="Harpi",
        room_type="group",
        creator="harpi@wa.example",
        participants=["bot@example.com"],
        options=body["payload"]["room"]["options"],
        room_id=123,
    )
    return int(room["id"])


async def bot_texts(fake: Emulator, room: int, count: int) -> list[str]:
    """What the bot sent through Omnichannel's /bot to ``room``, once there are ``count``."""
    async with asyncio.timeout(5):
        while True:
            comments = await fake.store.comments(room, limit=20)
            texts = [c["message"] for c in comments if c["email"].endswith("_admin@qismo.com")]
            if len(texts) >= count:
                return texts
            await asyncio.sleep(0.02)


def demo_bot() -> Bot:
    bot = Bot("test")

    @bot.message(text="hi")
    async def greet(ctx: Context) -> None:
        await ctx.reply(f"Hello {ctx.sender.name}!")

    @bot.message(text="menu")
    async def menu(ctx: Context) -> None:
        await ctx.reply(Buttons("How can I help?").postback("Track", action="track"))

    @bot.postback(action="track")
    async def track(ctx: Context) -> None:
        await ctx.reply("Send me your order number")

    @bot.message(regex=r"^slow (\d+)$")
    async def slow(ctx: Context) -> None:
        assert ctx.match is not None
        await asyncio.sleep(0.05)
        await ctx.reply(f"slow {ctx.match.group(1)}")

    @bot.message(text="boom")
    async def boom(ctx: Context) -> None:
        raise RuntimeError("kaboom")

    @bot.error
    async def on_error(ctx: Context) -> None:
        await ctx.reply("sorry")

    return bot


@pytest.fixture
async def served(
    aiohttp_client: ClientFactory, fake_qiscus: Emulator
) -> tuple[TestClient[Any, Any], Emulator]:
    app = create_app(demo_bot(), settings_for(fake_qiscus))
    return await aiohttp_client(app), fake_qiscus


async def test_server_text_webhook_gets_a_reply(served: Any) -> None:
    client, fake = served
    resp = await client.post("/webhook", json=sdk_body("hi", room_id=5))
    assert resp.status == 200
    assert await resp.json() == {"status": "accepted"}
    await fake.wait_for(lambda: len(fake.posted_comments()) == 1)
    comment = fake.posted_comments()[0]
    assert comment["message"] == "Hello User One!"
    assert comment["sender_email"] == "bot@example.com"
    assert str(comment["room_id"]) == "5"
    assert comment["unique_temp_id"].startswith("qbot-")
    auth = fake.calls_to("post_comment")[0].headers
    assert auth["QISCUS-SDK-SECRET"] == fake.config.secret_key
    assert auth["QISCUS-SDK-APP-ID"] == fake.config.app_id


async def test_server_answers_json_for_each_status(served: Any) -> None:
    client, _ = served
    body = sdk_body("hi", room_id=6)
    own = sdk_body("hi", room_id=6, message_id=99)
    own["payload"]["from"]["email"] = "bot@example.com"
    for sent, status in ((body, "accepted"), (body, "duplicate"), (own, "ignored")):
        resp = await client.post("/webhook", json=sent)
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert json.loads(await resp.read()) == {"status": status}


async def test_server_stores_the_body_as_received_even_with_a_bom(served: Any) -> None:
    client, fake = served
    raw = json.dumps(sdk_body("hi", room_id=7), indent=1, ensure_ascii=False).encode()
    for body in (raw, b"\xef\xbb\xbf" + raw, raw.decode().encode("utf-16")):
        resp = await client.post("/webhook", data=body)
        assert await resp.json() in ({"status": "accepted"}, {"status": "duplicate"})
    await fake.wait_for(lambda: len(fake.posted_comments()) == 1)
    assert fake.posted_comments()[0]["message"] == "Hello User One!"


async def test_server_postback_round_trip(served: Any) -> None:
    client, fake = served
    await client.post("/webhook", json=sdk_body("menu", room_id=6))
    await fake.wait_for(lambda: len(fake.posted_comments()) == 1)
    buttons = fake.posted_comments()[0]
    assert buttons["type"] == "buttons"
    tapped = buttons["payload"]["buttons"][0]
    await client.post("/webhook", json=postback_body(tapped, text="Track", room_id=6))
    await fake.wait_for(lambda: len(fake.posted_comments()) == 2)
    assert fake.posted_comments()[1]["message"] == "Send me your order number"


async def test_server_omnichannel_body_is_answered(served: Any) -> None:
    client, fake = served
    room = await omnichannel_room(fake)
    body = example("omnichannel-documented-2025.json")
    body["payload"]["message"]["text"] = "hi"
    resp = await client.post("/webhook", json=body)
    assert resp.status == 200
    # Answered through Omnichannel's /bot (post_comment never reaches WhatsApp).
    assert await bot_texts(fake, room, 1) == ["Hello Harpi!"]
    assert fake.posted_comments() == []


async def test_server_redelivery_is_dropped(served: Any) -> None:
    client, fake = served
    body = sdk_body("hi", room_id=7, message_id=4242)
    first = await client.post("/webhook", json=body)
    second = await client.post("/webhook", json=body)
    assert (await first.json())["status"] == "accepted"
    assert (await second.json())["status"] == "duplicate"
    room = await omnichannel_room(fake)
    omni = example("omnichannel-documented-2025.json")
    omni["payload"]["message"]["text"] = "hi"
    assert (await (await client.post("/webhook", json=omni)).json())["status"] == "accepted"
    assert (await (await client.post("/webhook", json=omni)).json())["status"] == "duplicate"
    await fake.wait_for(lambda: len(fake.posted_comments()) == 1)
    await bot_texts(fake, room, 1)
    await asyncio.sleep(0.05)
    assert len(fake.posted_comments()) == 1
    assert len(await bot_texts(fake, room, 1)) == 1


async def test_server_own_messages_and_unhandled_events_are_ignored(served: Any) -> None:
    client, _fake = served
    own = sdk_body("Hello!", sender="bot@example.com", event="post_comment_rest")
    assert (await (await client.post("/webhook", json=own)).json())["status"] == "ignored"
    event = sdk_body("x", type="system_event", payload={"type": "left_room"})
    assert (await (await client.post("/webhook", json=event)).json())["status"] == "ignored"


async def test_server_one_room_in_order_rooms_concurrently(served: Any) -> None:
    client, fake = served
    for i in range(5):
        await client.post("/webhook", json=sdk_body(f"slow {i}", room_id=100))
        await client.post("/webhook", json=sdk_body(f"slow {i}", room_id=200))
    await fake.wait_for(lambda: len(fake.posted_comments()) == 10, timeout=10)
    for room in (100, 200):
        assert [c["message"] for c in fake.posted_comments(room)] == [f"slow {i}" for i in range(5)]
    order = [str(c["room_id"]) for c in fake.posted_comments()]
    # Two rooms progress side by side rather than one after the other.
    assert order[:2] in (["100", "200"], ["200", "100"])


async def test_server_handler_error_keeps_serving(served: Any) -> None:
    client, fake = served
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await client.post("/webhook", json=sdk_body("boom", room_id=9))
        await fake.wait_for(lambda: len(fake.posted_comments()) == 1)
    assert fake.posted_comments()[0]["message"] == "sorry"
    failed = next(e for e in logs if e["event"] == "handler.failed")
    assert failed["room_id"] == "9"
    assert failed["message_id"].startswith("id:")
    await client.post("/webhook", json=sdk_body("hi", room_id=9))
    await fake.wait_for(lambda: len(fake.posted_comments()) == 2)


async def test_server_send_is_retried_on_5xx_with_same_unique_temp_id(served: Any) -> None:
    client, fake = served
    fake.fail_next("post_comment", status=503, times=2)
    await client.post("/webhook", json=sdk_body("hi", room_id=10))
    await fake.wait_for(lambda: len(fake.posted_comments()) == 1, timeout=10)
    tries = fake.calls_to("post_comment")
    assert len(tries) == 3
    assert len({c.body["unique_temp_id"] for c in tries}) == 1


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"type": "post_comment_mobile"}', 400, "payload"),
        (
            json.dumps({"payload": {"from": {}, "room": {}, "message": {}}}).encode(),
            400,
            "payload.room.id",
        ),
    ],
)
async def test_server_bad_bodies_get_400_with_json_error(
    served: Any, body: bytes, status: int, fragment: str
) -> None:
    client, _ = served
    resp = await client.post("/webhook", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status
    assert fragment in (await resp.json())["error"]


async def test_server_body_over_1_mib_gets_413(served: Any) -> None:
    client, _ = served
    big = json.dumps(sdk_body("x" * (1024 * 1024))).encode()
    headers = {"Content-Type": "application/json"}
    resp = await client.post("/webhook", data=io.BytesIO(big), headers=headers)
    assert resp.status == 413
    assert "larger than" in (await resp.json())["error"]


async def test_server_signature_checked_when_configured(
    aiohttp_client: ClientFactory, fake_qiscus: Emulator
) -> None:
    settings = settings_for(fake_qiscus, webhook={"signature_token": "tok"})
    client = await aiohttp_client(create_app(demo_bot(), settings))
    body = json.dumps(sdk_body("hi", room_id=11)).encode()
    good = hmac.new(b"tok", body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    missing = await client.post("/webhook", data=body, headers=headers)
    assert missing.status == 401
    assert "missing" in (await missing.json())["error"]
    wrong = await client.post(
        "/webhook", data=body, headers={**headers, "QISCUS-SDK-SIGNATURE": "0" * 64}
    )
    assert wrong.status == 401
    ok = await client.post("/webhook", data=body, headers={**headers, "QISCUS-SDK-SIGNATURE": good})
    assert ok.status == 200
    await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 1)


async def test_server_healthz(served: Any) -> None:
    client, _ = served
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_server_shutdown_drains_queued_messages(
    aiohttp_client: ClientFactory, fake_qiscus: Emulator
) -> None:
    app = create_app(demo_bot(), settings_for(fake_qiscus))
    client = await aiohttp_client(app)
    for i in range(3):
        await client.post("/webhook", json=sdk_body(f"slow {i}", room_id=300))
    assert await app[RUNTIME_KEY].inbox_size() > 0
    await client.close()  # runs the app's cleanup: drain, then close the client
    assert [c["message"] for c in fake_qiscus.posted_comments(300)] == [
        "slow 0",
        "slow 1",
        "slow 2",
    ]
