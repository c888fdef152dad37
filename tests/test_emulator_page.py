"""The emulator seen from the chat page: users, rooms, webhook delivery, live events, inspector."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, create_emulator_app

BOT = "bot@test.local"
TOKEN = "sig-token"
ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


class EchoBot:
    """A bot at the boundary: a real HTTP server that answers "you said X" through the REST API."""

    def __init__(self) -> None:
        self.webhooks: list[tuple[bytes, dict[str, str]]] = []
        self.rest_base = ""
        self.server = TestServer(self._app(), host="127.0.0.1", port=0)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webhook", self._webhook)
        return app

    async def _webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.webhooks.append((raw, dict(request.headers)))
        body = json.loads(raw)
        message = body["payload"]["message"]
        if body["type"] == "post_comment_mobile" and message["type"] == "text":
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{self.rest_base}/api/v2.1/rest/post_comment",
                    json={
                        "user_id": BOT,
                        "room_id": body["payload"]["room"]["id"],
                        "type": "text",
                        "message": f"you said {message['text']}",
                    },
                    headers={"QISCUS-SDK-APP-ID": "test-app", "QISCUS-SDK-SECRET": "s3"},
                ) as resp,
            ):
                assert resp.status == 200
        return web.json_response({"ok": True})

    @property
    def url(self) -> str:
        return str(self.server.make_url("/webhook"))


@pytest_asyncio.fixture
async def echo_bot() -> AsyncIterator[EchoBot]:
    bot = EchoBot()
    await bot.server.start_server()
    yield bot
    await bot.server.close()


@pytest_asyncio.fixture
async def emulator(tmp_path: Path, echo_bot: EchoBot) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(
        app_id="test-app",
        secret_key="s3",
        bot_email=BOT,
        bot_name="Echo",
        webhook_url=echo_bot.url,
        signature_token=TOKEN,
    )
    em = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"))
    await em.start()
    yield em
    await em.close()


@pytest_asyncio.fixture
async def client(
    emulator: Emulator, echo_bot: EchoBot, aiohttp_client: ClientFactory
) -> TestClient[Any, Any]:
    client = await aiohttp_client(create_emulator_app(emulator, manage=False))
    echo_bot.rest_base = str(client.make_url("")).rstrip("/")
    return client


async def _room(client: TestClient[Any, Any], email: str = "ana@x.io") -> int:
    resp = await client.post("/emulator/api/users", json={"email": email, "username": "Ana"})
    assert resp.status == 200
    resp = await client.post("/emulator/api/rooms", json={"type": "single", "user_email": email})
    assert resp.status == 200
    room_id: int = (await resp.json())["id"]
    return room_id


async def test_page_is_served_with_local_assets_only(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/")).text()
    assert "<title>qbot emulator</title>" in html
    assert "//" not in html.replace("http://www.w3.org", "")  # no CDN, no external URL
    for asset in ("app.js", "render.js", "inspector.js", "style.css"):
        resp = await client.get(f"/emulator/static/{asset}")
        assert resp.status == 200, asset


async def test_user_message_is_delivered_as_a_signed_qiscus_webhook(
    client: TestClient[Any, Any], echo_bot: EchoBot, emulator: Emulator
) -> None:
    room_id = await _room(client)
    resp = await client.post(
        f"/emulator/api/rooms/{room_id}/messages",
        json={"sender_email": "ana@x.io", "type": "text", "text": "hi"},
    )
    assert resp.status == 200
    await emulator.drain()

    raw, headers = echo_bot.webhooks[0]
    expected = hmac.new(TOKEN.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["QISCUS-SDK-SIGNATURE"] == expected
    body = json.loads(raw)
    assert body["type"] == "post_comment_mobile"
    payload = body["payload"]
    assert payload["from"] == {
        "id": payload["from"]["id"],
        "id_str": str(payload["from"]["id"]),
        "email": "ana@x.io",
        "name": "Ana",
        "avatar_url": "",
    }
    assert payload["room"]["id"] == room_id
    assert payload["room"]["type"] == "single"
    assert isinstance(payload["room"]["options"], str)
    assert {p["email"] for p in payload["room"]["participants"]} == {"ana@x.io", BOT}
    message = payload["message"]
    assert message["type"] == "text"
    assert message["text"] == "hi"
    assert isinstance(message["id"], int)
    assert message["unique_temp_id"]
    assert isinstance(message["unix_timestamp"], int)
    assert message["timestamp"].endswith("Z")


async def test_bot_reply_is_stored_echoed_and_inspected(
    client: TestClient[Any, Any], echo_bot: EchoBot, emulator: Emulator
) -> None:
    room_id = await _room(client)
    await client.post(
        f"/emulator/api/rooms/{room_id}/messages",
        json={"sender_email": "ana@x.io", "text": "hi"},
    )
    await emulator.drain()

    comments = await (await client.get(f"/emulator/api/rooms/{room_id}/comments")).json()
    assert [(c["email"], c["message"]) for c in comments] == [
        ("ana@x.io", "hi"),
        (BOT, "you said hi"),
    ]
    kinds = [json.loads(raw)["type"] for raw, _ in echo_bot.webhooks]
    assert kinds == ["post_comment_mobile", "post_comment_rest"]
    echo = json.loads(echo_bot.webhooks[1][0])
    assert echo["payload"]["from"]["email"] == BOT

    exchanges = await (await client.get(f"/emulator/api/exchanges?room_id={room_id}")).json()
    assert len(exchanges) == 1
    traffic = exchanges[0]["traffic"]
    assert [(t["kind"], t["status"]) for t in traffic] == [
        ("webhook", 200),
        ("api", 200),
        ("webhook", 200),
    ]
    assert traffic[0]["body"]["payload"]["message"]["text"] == "hi"
    assert traffic[1]["path"] == "/api/v2.1/rest/post_comment"
    assert traffic[1]["body"]["message"] == "you said hi"


async def test_postback_tap_echoes_the_button_payload(
    client: TestClient[Any, Any], echo_bot: EchoBot, emulator: Emulator
) -> None:
    room_id = await _room(client)
    button_payload = {"url": "", "method": "get", "payload": {"action": "confirm", "n": 7}}
    resp = await client.post(
        f"/emulator/api/rooms/{room_id}/messages",
        json={
            "sender_email": "ana@x.io",
            "type": "button_postback_response",
            "text": "Yes",
            "payload": button_payload,
        },
    )
    assert resp.status == 200
    await emulator.drain()
    message = json.loads(echo_bot.webhooks[0][0])["payload"]["message"]
    assert message["type"] == "button_postback_response"
    assert message["text"] == "Yes"
    assert message["payload"] == button_payload


async def test_websocket_pushes_new_comments(
    client: TestClient[Any, Any], emulator: Emulator
) -> None:
    room_id = await _room(client)
    async with client.ws_connect("/emulator/ws") as ws:
        assert json.loads((await ws.receive()).data) == {"event": "hello"}
        await client.post(
            f"/emulator/api/rooms/{room_id}/messages",
            json={"sender_email": "ana@x.io", "text": "hi"},
        )
        await emulator.drain()
        seen: list[str] = []
        while "you said hi" not in seen:
            event = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            if event["event"] == "comment":
                seen.append(event["comment"]["message"])
        assert seen == ["hi", "you said hi"]


async def test_group_room_posts_a_create_room_system_event(
    client: TestClient[Any, Any], emulator: Emulator, echo_bot: EchoBot
) -> None:
    await _room(client)
    resp = await client.post(
        "/emulator/api/rooms",
        json={"type": "group", "user_email": "ana@x.io", "name": "Team"},
    )
    assert resp.status == 200
    group = await resp.json()
    assert group["type"] == "group"
    comments = await (await client.get(f"/emulator/api/rooms/{group['id']}/comments")).json()
    assert [(c["type"], c["message"]) for c in comments] == [
        ("system_event", "Ana created room 'Team'")
    ]
    delivered = json.loads(echo_bot.webhooks[-1][0])["payload"]["message"]
    assert delivered["type"] == "system_event"
    assert delivered["payload"]["type"] == "create_room"


async def test_page_errors_are_json_4xx_naming_the_problem(
    client: TestClient[Any, Any],
) -> None:
    room_id = await _room(client)
    cases = [
        ("/emulator/api/users", {"email": "not-an-email"}, 400, "'not-an-email'"),
        ("/emulator/api/rooms", {"user_email": "ghost@x.io"}, 404, "'ghost@x.io'"),
        (
            f"/emulator/api/rooms/{room_id}/messages",
            {"sender_email": "bo@x.io", "text": "hi"},
            403,
            "'bo@x.io'",
        ),
        (
            f"/emulator/api/rooms/{room_id}/messages",
            {"sender_email": "ana@x.io", "type": "system_event", "text": "x"},
            400,
            "'system_event'",
        ),
        ("/emulator/api/rooms/123456/messages", {"sender_email": "ana@x.io"}, 404, "123456"),
    ]
    for path, body, status, needle in cases:
        resp = await client.post(path, json=body)
        assert resp.status == status, path
        assert needle in (await resp.json())["error"]


async def test_delivery_failure_is_recorded_for_the_inspector(tmp_path: Path) -> None:
    config = EmulatorConfig(bot_email=BOT, webhook_url="http://127.0.0.1:9/webhook")
    em = Emulator(config, EmulatorStore(tmp_path / "db.sqlite3"))
    await em.start()
    user = await em.store.upsert_user("ana@x.io", "Ana")
    room = await em.single_room(user["email"])
    await em.user_post(room["id"], "ana@x.io", text="anyone?")
    [exchange] = await em.store.exchanges(room["id"])
    [entry] = exchange["traffic"]
    assert entry["status"] is None
    assert "127.0.0.1:9" in entry["detail"]
    await em.close()


async def test_adding_a_group_member_delivers_an_add_member_event(
    client: TestClient[Any, Any], echo_bot: EchoBot
) -> None:
    room_id = await _room(client)
    await client.post("/emulator/api/users", json={"email": "bo@x.io", "username": "Bo"})
    refused = await client.post(
        f"/emulator/api/rooms/{room_id}/members",
        json={"user_email": "ana@x.io", "member_email": "bo@x.io"},
    )
    assert refused.status == 400
    assert "single room" in (await refused.json())["error"]

    group = await (
        await client.post(
            "/emulator/api/rooms", json={"type": "group", "user_email": "ana@x.io", "name": "T"}
        )
    ).json()
    resp = await client.post(
        f"/emulator/api/rooms/{group['id']}/members",
        json={"user_email": "ana@x.io", "member_email": "bo@x.io"},
    )
    assert resp.status == 200
    assert (await resp.json())["message"] == "Ana added Bo"
    delivered = json.loads(echo_bot.webhooks[-1][0])["payload"]
    assert delivered["message"]["payload"]["type"] == "add_member"
    assert delivered["message"]["payload"]["object_email"] == "bo@x.io"
    assert {p["email"] for p in delivered["room"]["participants"]} == {"ana@x.io", BOT, "bo@x.io"}
