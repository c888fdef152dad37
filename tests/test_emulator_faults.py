"""The emulator as a test's Qiscus: recorded calls, injected faults, lenient and strict modes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from qbot import Bot, Context
from qbot.client import QiscusClient, RetryPolicy
from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, UploadedFile, serve_emulator
from qbot.emulator.harness import Harness
from qbot.errors import QiscusAPIError, QiscusNotFound, QiscusRateLimited, StorageError
from tests.emulated import STRICT, fake_store

BOT = "bot@example.com"
V2 = {"QISCUS-SDK-SECRET": "fake-secret"}
V21 = {**V2, "QISCUS-SDK-APP-ID": "fake-app"}
ONCE = RetryPolicy(max_attempts=1)


@pytest_asyncio.fixture
async def client(fake_qiscus: Emulator) -> AsyncIterator[QiscusClient]:
    async with QiscusClient(
        "fake-app", "fake-secret", base_url=fake_qiscus.base_url, retry=ONCE
    ) as c:
        yield c


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_calls_record_method_path_headers_query_and_each_body_kind(
    fake_qiscus: Emulator, http: aiohttp.ClientSession
) -> None:
    base = fake_qiscus.base_url
    form = aiohttp.FormData()
    form.add_field("type", "users")
    form.add_field("file", b"[]", filename="u.json", content_type="application/json")
    await http.get(f"{base}/api/v2/rest/load_comments?room_id=3&page=2", headers=V2)
    await http.post(f"{base}/api/v2/rest/login_or_register", data={"email": "a@x.com"}, headers=V2)
    await http.post(f"{base}/api/v2.1/rest/get_rooms_info", json={"room_id": ["3"]}, headers=V21)
    await http.post(f"{base}/api/v2/rest/imports", data=form, headers=V2)

    load, login, info, upload = fake_qiscus.calls
    assert (load.method, load.path, load.query, load.body) == (
        "GET", "/api/v2/rest/load_comments", {"room_id": "3", "page": "2"}, None,
    )  # fmt: skip
    assert load.headers["qiscus-sdk-secret"] == "fake-secret"
    assert login.body == {"email": "a@x.com"}
    assert (info.path, info.endpoint, info.body) == (
        "/api/v2.1/rest/get_rooms_info", "get_rooms_info", {"room_id": ["3"]},
    )  # fmt: skip
    assert upload.body == {
        "type": "users",
        "file": UploadedFile("u.json", "application/json", b"[]"),
    }
    assert load.peer is not None
    assert load.peer[0] == "127.0.0.1"
    assert fake_qiscus.calls_to("get_rooms_info") == [info]


async def test_invalid_json_is_recorded_as_text_and_answered_400(
    fake_qiscus: Emulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{fake_qiscus.base_url}/api/v2/rest/post_comment",
        data=b"{not json",
        headers={**V2, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert "not valid JSON" in body["error"]["message"]
    assert fake_qiscus.calls[0].body == "{not json"


async def test_fail_next_without_endpoint_fails_any_call_then_serves_again(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    fake_qiscus.fail_next(status=404, times=2)

    with pytest.raises(QiscusNotFound, match="injected failure 404"):
        await client.load_comments(1)
    with pytest.raises(QiscusNotFound):
        await client.login_or_register("a@x.com", "A")
    user = await client.login_or_register("a@x.com", "A")

    assert user.email == "a@x.com"
    assert [c.endpoint for c in fake_qiscus.calls] == ["load_comments", *["login_or_register"] * 2]


async def test_fail_next_matches_a_full_path_of_one_version_only(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    fake_qiscus.fail_next("/api/v2.1/rest/post_comment", status=500)

    comment = await client.post_comment(BOT, 1, "v2 is not v2.1")

    assert comment.message == "v2 is not v2.1"


async def test_429_carries_retry_after_and_shows_in_the_inspector(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    fake_qiscus.fail_next("post_comment", status=429, retry_after=120)

    with pytest.raises(QiscusRateLimited) as info:
        await client.post_comment(BOT, 1, "hi")

    assert info.value.retry_after == 120
    [exchange] = await fake_qiscus.store.exchanges(None)
    assert [t["status"] for t in exchange["traffic"]] == [429]


async def test_malformed_json_answer_is_an_api_error(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    fake_qiscus.fail_next("post_comment", status=200, body=b'{"results": {"comment"')

    with pytest.raises(QiscusAPIError, match="expected a JSON object"):
        await client.post_comment(BOT, 1, "hi")


async def test_hang_holds_a_call_until_release(client: QiscusClient, fake_qiscus: Emulator) -> None:
    fake_qiscus.hang("post_comment")

    sending = asyncio.create_task(client.post_comment(BOT, 1, "held"))
    await fake_qiscus.wait_for(1)
    await asyncio.sleep(0.05)  # the call was received: it is held, not answered
    assert not sending.done()
    assert fake_qiscus.posted_comments() == []
    fake_qiscus.release()
    comment = await sending

    assert comment.message == "held"
    assert [c["message"] for c in fake_qiscus.posted_comments(1)] == ["held"]


async def test_delay_applies_to_the_next_calls_only(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    fake_qiscus.delay("post_comment", seconds=0.01, times=2)
    fake_qiscus.hang("post_comment", times=1)  # the first call: delayed, then held

    first = asyncio.create_task(client.post_comment(BOT, 1, "delayed and held"))
    await fake_qiscus.wait_for(1)
    second = await client.post_comment(BOT, 1, "delayed only")
    third = await client.post_comment(BOT, 1, "neither")
    fake_qiscus.release()

    assert (await first).message == "delayed and held"
    assert [second.message, third.message] == ["delayed only", "neither"]


@pytest.mark.parametrize(
    ("method", "kwargs", "fragment"),
    [
        ("fail_next", {"status": 500, "times": 0}, "times=0"),
        ("delay", {"seconds": -1}, "seconds=-1"),
        ("hang", {"times": -2}, "times=-2"),
    ],
)
def test_fault_arguments_are_checked(method: str, kwargs: dict[str, float], fragment: str) -> None:
    emulator = Emulator(EmulatorConfig(), EmulatorStore(":memory:"))
    with pytest.raises(ValueError, match=fragment):
        getattr(emulator, method)("post_comment", **kwargs)


async def test_wait_for_times_out_listing_the_calls(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    await client.post_comment(BOT, 1, "only one")

    with pytest.raises(TimeoutError, match=r"calls so far: \['POST /api/v2/rest/post_comment'\]"):
        await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 2, 0.05)


async def test_lenient_creates_the_room_and_sender_a_post_names(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    await client.post_comment(BOT, 42, "hello")

    room = await fake_qiscus.store.get_room(42)
    assert room is not None
    assert [p["email"] for p in room["participants"]] == [BOT]
    assert await fake_qiscus.store.get_user(BOT) is not None
    assert [c.message for c in await client.load_comments(42)] == ["hello"]


async def test_strict_answers_404_for_unknown_users_and_rooms() -> None:
    async with (
        serve_emulator(STRICT, fake_store()) as emulator,
        QiscusClient("fake-app", "fake-secret", base_url=emulator.base_url, retry=ONCE) as client,
    ):
        with pytest.raises(QiscusNotFound, match=r"user 'nobody@x\.com' not found"):
            await client.post_comment("nobody@x.com", 1, "hi")
        with pytest.raises(QiscusNotFound, match="room '5' not found"):
            await client.post_comment(BOT, 5, "hi")
        with pytest.raises(QiscusNotFound, match=r"user 'nobody@x\.com' not found"):
            await client.reset_user_token("nobody@x.com")
        assert await emulator.store.get_room(5) is None


async def test_export_and_import_refuse_bad_input(
    client: QiscusClient, fake_qiscus: Emulator, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(QiscusAPIError, match="'2024-13-01' must use the format YYYY-MM-DD"):
        await client.create_export("users", "2024-13-01", "2024-12-31")
    with pytest.raises(QiscusAPIError, match="is larger than the 4 MB import limit"):
        await client.create_import("users", b"[" + b" " * 4 * 1024 * 1024 + b"]")
    with pytest.raises(QiscusAPIError, match="must hold a JSON array"):
        await client.create_import("users", json.dumps({"Email": "a@x.com"}).encode())
    base = fake_qiscus.base_url
    async with http.post(
        f"{base}/api/v2/rest/imports", json={"type": "users", "file": "x"}, headers=V2
    ) as resp:
        assert resp.status == 400
        assert "multipart file part" in (await resp.json())["error"]["message"]
    async with http.get(f"{base}/download/nope.json") as resp:
        assert resp.status == 404
        assert "no finished export 'nope'" in (await resp.json())["error"]
    assert fake_qiscus.backups.imported_rows == []


async def test_imported_rooms_and_comments_become_rooms_and_comments(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    room = {"Name": "Imported", "CreatorEmail": "a@x.com", "UniqueId": "r1",
            "ParticipantEmails": ["a@x.com", "b@x.com"]}  # fmt: skip
    comment = {"RoomUniqueId": "r1", "CreatorEmail": "b@x.com", "Message": "from the past"}
    lost = {"RoomUniqueId": "missing", "CreatorEmail": "b@x.com", "Message": "skipped"}
    await client.create_import("rooms", json.dumps([room, room]).encode())
    await client.list_imports()
    await client.create_import("comments", json.dumps([comment, lost]).encode())
    await client.list_imports()

    [stored] = await fake_qiscus.store.list_rooms()
    assert (stored["name"], stored["creator"]) == ("Imported", "a@x.com")
    assert [c["message"] for c in await fake_qiscus.store.list_comments()] == ["from the past"]


async def test_base_url_is_known_once_served_or_called() -> None:
    emulator = Emulator(EmulatorConfig(), EmulatorStore(":memory:"))
    with pytest.raises(RuntimeError, match="serve_emulator"):
        _ = emulator.base_url
    emulator.learn_base_url("http://127.0.0.1:1234/")
    emulator.learn_base_url("http://elsewhere:1")
    assert emulator.base_url == "http://127.0.0.1:1234"


def test_store_first_id_must_be_positive() -> None:
    with pytest.raises(StorageError, match="first_id=0"):
        EmulatorStore(":memory:", first_id=0)


async def test_serve_emulator_defaults_to_the_strict_qbot_dev_emulator() -> None:
    async with serve_emulator() as emulator:
        config = emulator.config
        async with QiscusClient(
            config.app_id, config.secret_key, base_url=emulator.base_url, retry=ONCE
        ) as client:
            with pytest.raises(QiscusNotFound, match="room '1' not found"):
                await client.post_comment(config.bot_email, 1, "hi")
        users = [u["email"] for u in await emulator.store.list_users()]

    assert users == [config.bot_email, config.system_email]  # registered at start


async def test_call_history_keeps_the_newest_calls_and_posts() -> None:
    config = EmulatorConfig(app_id="fake-app", secret_key="fake-secret", lenient=True)
    async with (
        serve_emulator(dataclasses.replace(config, call_history=2), fake_store()) as emulator,
        QiscusClient("fake-app", "fake-secret", base_url=emulator.base_url, retry=ONCE) as client,
    ):
        for text in ("one", "two", "three"):
            await client.post_comment(BOT, 1, text)

    assert len(emulator.calls) == 2
    assert [c["message"] for c in emulator.posted_comments()] == ["two", "three"]


async def test_the_harness_emulator_records_the_bots_calls() -> None:
    bot = Bot("recorded")

    @bot.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text)

    async with Harness(bot) as harness:
        chat = await harness.chat()
        await chat.say("hi")
        [call] = harness.emulator.calls_to("post_comment")
        posted = harness.emulator.posted_comments(chat.room_id)

    assert call.body["message"] == "hi"
    assert [p["message"] for p in posted] == ["hi"]


async def test_a_call_still_held_at_the_end_is_answered_so_the_server_stops() -> None:
    async with asyncio.timeout(10), aiohttp.ClientSession() as http:  # else shutdown waits 60 s
        async with serve_emulator(STRICT, fake_store()) as emulator:
            emulator.hang()
            held = asyncio.create_task(
                http.post(f"{emulator.base_url}/api/v2/rest/load_comments", json={}, headers=V2)
            )
            await emulator.wait_for(1)
        async with await held as resp:
            body = await resp.json()

    assert resp.status == 400
    assert body["error"]["message"] == "room_id is required"
