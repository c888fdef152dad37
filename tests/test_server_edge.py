"""The webhook server's edge: bodies however they arrive, hostile input, secrets, hygiene."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from edge import echo_bot, edge_settings, raw_post, read_response, served_bot
from structlog.testing import capture_logs
from webhooks import postback_body, sdk_body

from qbot import Bot, Buttons, Context
from qbot.emulator import Emulator
from qbot.server import create_app

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]

LIMIT = 1024 * 1024


def body_of_size(size: int, **kw: Any) -> bytes:
    """A valid webhook body of exactly ``size`` bytes (the text pads it)."""
    base = json.dumps(sdk_body("", **kw)).encode()
    padded = json.dumps(sdk_body("x" * (size - len(base)), **kw)).encode()
    assert len(padded) == size
    return padded


# --- row 1: bodies are read whole, however they are segmented -----------------------------------


@pytest.mark.parametrize("size", [200 * 1024, 500 * 1024, LIMIT])
async def test_server_reads_a_body_sent_in_many_small_writes(
    fake_qiscus: Emulator, size: int
) -> None:
    body = body_of_size(size, room_id=size)
    async with served_bot(fake_qiscus) as port:
        status, answer = await raw_post(port, body, pieces=40, pause=0.002)
        assert (status, answer) == (200, {"status": "accepted"})
        await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 1)
    assert fake_qiscus.posted_comments()[0]["message"] == "echo: " + "x" * 40


async def test_server_reads_a_chunked_body_sent_in_many_chunks(fake_qiscus: Emulator) -> None:
    body = body_of_size(300 * 1024, room_id=31)
    async with served_bot(fake_qiscus) as port:
        status, answer = await raw_post(port, body, pieces=64, chunked=True, pause=0.001)
    assert (status, answer) == (200, {"status": "accepted"})


async def test_server_answers_413_to_a_chunked_body_over_the_limit(
    fake_qiscus: Emulator,
) -> None:
    body = body_of_size(LIMIT + 1, room_id=32)
    async with served_bot(fake_qiscus) as port:
        status, answer = await raw_post(port, body, pieces=32, chunked=True)
        assert status == 413
        assert "larger than 1048576 bytes" in answer["error"]
        # Nothing was stored: the same body within the limit is new, not a duplicate.
        status, answer = await raw_post(port, body_of_size(LIMIT, room_id=32))
        assert answer == {"status": "accepted"}


async def test_server_answers_413_from_content_length_without_reading(
    fake_qiscus: Emulator,
) -> None:
    async with served_bot(fake_qiscus) as port:
        # The header announces more than the limit; only one byte of it is ever sent.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {LIMIT + 1}\r\n\r\n{{"
        writer.write(head.encode())
        status, _, text = await read_response(reader)
        writer.close()
    assert status == 413
    assert "larger than" in json.loads(text)["error"]


# --- rows 2-5 and 13: hostile input gets a 4xx naming the field, never a 5xx --------------------


@pytest.fixture
async def client(aiohttp_client: ClientFactory, fake_qiscus: Emulator) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(echo_bot(), edge_settings(fake_qiscus)))


def with_value(path: str, value: str, **kw: Any) -> bytes:
    """An SDK body (JSON text) whose field at dotted ``path`` is the raw JSON ``value``."""
    body = sdk_body("hello", **kw)
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node[part]
    node[last] = "@@VALUE@@"
    return json.dumps(body).replace('"@@VALUE@@"', value).encode()


@pytest.mark.parametrize("depth", [5_000, 100_000])
@pytest.mark.parametrize("bracket", ["[", "{"])
async def test_server_refuses_deep_nesting_with_400(
    client: TestClient[Any, Any], depth: int, bracket: str
) -> None:
    body = bracket * depth if bracket == "[" else '{"a":' * depth
    resp = await client.post("/webhook", data=body)
    assert resp.status == 400
    assert "nested too deeply" in (await resp.json())["error"]


async def test_server_refuses_deep_nesting_inside_a_valid_webhook(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.post("/webhook", data=with_value("payload.message.extras", "[" * 5000))
    assert resp.status == 400


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("payload.room.id", "payload.room.id"),
        ("payload.message.id", "payload.message.id"),
        ("payload.message.unique_temp_id", "payload.message.unique_temp_id"),
        ("payload.message.text", "payload.message.text"),
        ("payload.from.email", "payload.from.email"),
    ],
)
async def test_server_refuses_a_lone_surrogate_naming_the_field(
    client: TestClient[Any, Any], fake_qiscus: Emulator, path: str, field: str
) -> None:
    resp = await client.post("/webhook", data=with_value(path, '"a\\ud800b"', room_id=41))
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert field in error
    assert "surrogate" in error
    # The server still works and nothing was posted for the refused body.
    resp = await client.post("/webhook", json=sdk_body("after", room_id=41))
    assert await resp.json() == {"status": "accepted"}
    await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 1)
    assert [c["message"] for c in fake_qiscus.posted_comments()] == ["echo: after"]


@pytest.mark.parametrize("room_id", ['""', '"   "'])
async def test_server_refuses_an_empty_room_id_with_400_not_503(
    client: TestClient[Any, Any], room_id: str
) -> None:
    resp = await client.post("/webhook", data=with_value("payload.room.id", room_id))
    assert resp.status == 400
    assert "payload.room.id" in (await resp.json())["error"]


async def test_server_refuses_a_non_ascii_signature_with_401(
    aiohttp_client: ClientFactory, fake_qiscus: Emulator
) -> None:
    settings = edge_settings(fake_qiscus, webhook={"signature_token": "sig-token"})
    client = await aiohttp_client(create_app(echo_bot(), settings))
    body = json.dumps(sdk_body("hi", room_id=42)).encode()
    # Header bytes as sent: UTF-8 text, and a byte that is not UTF-8 at all.
    for raw in ("é".encode() * 32, "ÿ".encode(), b"abc\xff" * 20):
        resp = await client.post(
            "/webhook",
            data=body,
            headers={"QISCUS-SDK-SIGNATURE": raw.decode("latin-1")},
        )
        assert resp.status == 401
    good = hmac.new(b"sig-token", body, hashlib.sha256).hexdigest()
    resp = await client.post("/webhook", data=body, headers={"QISCUS-SDK-SIGNATURE": good})
    assert resp.status == 200


async def test_server_processes_a_message_without_identity_once(
    client: TestClient[Any, Any], fake_qiscus: Emulator
) -> None:
    body = sdk_body("no id", room_id=43, message_id=0)
    body["payload"]["message"]["unique_temp_id"] = None
    answers = [await (await client.post("/webhook", json=body)).json() for _ in range(3)]
    assert answers == [{"status": "accepted"}] + [{"status": "duplicate"}] * 2
    other = sdk_body("no id", room_id=43, message_id=0)
    other["payload"]["message"]["unique_temp_id"] = ""
    other["payload"]["message"]["unix_timestamp"] += 1  # the same text a second later is new
    resp = await client.post("/webhook", json=other)
    assert await resp.json() == {"status": "accepted"}
    await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 2)
    assert [c["message"] for c in fake_qiscus.posted_comments()] == ["echo: no id"] * 2


# --- row 8: a postback button works only in its own conversation --------------------------------


def refund_bot() -> Bot:
    bot = Bot("refunds")

    @bot.message(text="menu")
    async def menu(ctx: Context) -> None:
        await ctx.reply(Buttons("Refund?").postback("Yes", action="refund", data={"amount": 5}))

    @bot.postback(action="refund")
    async def refund(ctx: Context) -> None:
        await ctx.reply(f"refunded {ctx.postback.data['amount'] if ctx.postback else '?'}")

    return bot


async def test_server_refuses_a_button_tapped_in_another_room_or_by_another_user(
    aiohttp_client: ClientFactory, fake_qiscus: Emulator
) -> None:
    settings = edge_settings(fake_qiscus, postback={"secret": "pb-secret"})
    client = await aiohttp_client(create_app(refund_bot(), settings))
    await client.post("/webhook", json=sdk_body("menu", room_id=61, sender="ani@x.id"))
    await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 1)
    button = fake_qiscus.posted_comments()[0]["payload"]["buttons"][0]
    with capture_logs() as logs:
        for room, sender in ((62, "ani@x.id"), (61, "eve@x.id")):
            resp = await client.post(
                "/webhook", json=postback_body(button, room_id=room, sender=sender)
            )
            assert await resp.json() == {"status": "accepted"}
        resp = await client.post(
            "/webhook", json=postback_body(button, room_id=61, sender="ani@x.id")
        )
        await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 2)
    assert [c["message"] for c in fake_qiscus.posted_comments()[1:]] == ["refunded 5"]
    assert str(fake_qiscus.posted_comments()[1]["room_id"]) == "61"
    rejected = [e["reason"] for e in logs if e["event"] == "postback.rejected"]
    assert len(rejected) == 2
    assert "tapped in room '62'" in rejected[0]
    assert "meant for another user" in rejected[1]
