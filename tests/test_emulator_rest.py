"""The emulator's Qiscus REST API, called the way a bot calls Qiscus."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, create_emulator_app

HEADERS = {"QISCUS-SDK-APP-ID": "test-app", "QISCUS-SDK-SECRET": "test-secret"}
BOT = "bot@test.local"

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@pytest_asyncio.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(app_id="test-app", secret_key="test-secret", bot_email=BOT)
    em = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"))
    await em.start()
    yield em
    await em.close()


@pytest_asyncio.fixture
async def client(emulator: Emulator, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    return await aiohttp_client(create_emulator_app(emulator, manage=False))


async def call(client: TestClient[Any, Any], name: str, body: dict[str, Any]) -> Any:
    resp = await client.post(f"/api/v2.1/rest/{name}", json=body, headers=HEADERS)
    data = await resp.json()
    assert resp.status == 200, data
    return data["results"]


async def test_rest_rejects_a_wrong_secret_with_a_qiscus_error(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.post(
        "/api/v2.1/rest/login_or_register",
        json={"email": "a@x.io"},
        headers={**HEADERS, "QISCUS-SDK-SECRET": "nope"},
    )
    assert resp.status == 401
    body = await resp.json()
    assert body["status"] == 401
    assert "QISCUS-SDK-SECRET" in body["error"]["message"]


async def test_rest_rejects_an_unknown_app_id(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/v2.1/rest/login_or_register",
        json={"email": "a@x.io"},
        headers={**HEADERS, "QISCUS-SDK-APP-ID": "other"},
    )
    assert resp.status == 401
    assert "'other'" in (await resp.json())["error"]["message"]


async def test_rest_v2_accepts_the_underscored_secret_header(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/v2/rest/login_or_register",
        data={"email": "ana@x.io", "username": "Ana"},
        headers={"QISCUS_SDK_SECRET": "test-secret"},
    )
    assert resp.status == 200
    assert (await resp.json())["results"]["user"]["username"] == "Ana"


async def test_rest_room_lifecycle_and_comments(client: TestClient[Any, Any]) -> None:
    ana = (await call(client, "login_or_register", {"email": "ana@x.io", "username": "Ana"}))[
        "user"
    ]
    assert isinstance(ana["id"], int)
    await call(client, "login_or_register", {"email": "bo@x.io", "username": "Bo"})

    single = await call(client, "get_or_create_room_with_target", {"emails": ["ana@x.io", BOT]})
    again = await call(client, "get_or_create_room_with_target", {"emails": ["ana@x.io", BOT]})
    assert single["room"]["id"] == again["room"]["id"]
    assert single["room"]["chat_type"] == "single"
    room_id = single["room"]["id"]

    posted = await call(
        client,
        "post_comment",
        {"user_id": BOT, "room_id": str(room_id), "type": "text", "message": "hello"},
    )
    assert posted["comment"]["message"] == "hello"
    assert posted["comment"]["email"] == BOT

    loaded = await call(client, "load_comments", {"room_id": room_id})
    assert [c["message"] for c in loaded["comments"]] == ["hello"]

    group = await call(
        client, "create_room", {"name": "Team", "creator": BOT, "participants": ["ana@x.io"]}
    )
    assert group["room_type"] == "group"
    added = await call(
        client, "add_room_participants", {"room_id": group["room_id"], "emails": ["bo@x.io"]}
    )
    assert sorted(added["participants"]) == sorted([BOT, "ana@x.io", "bo@x.io"])
    removed = await call(
        client, "remove_room_participants", {"room_id": group["room_id"], "emails": ["ana@x.io"]}
    )
    assert "ana@x.io" not in removed["participants"]

    rooms = await call(client, "get_user_rooms", {"user_email": BOT, "show_participants": "true"})
    assert rooms["meta"]["total_room"] == 2
    assert all("participants" in r for r in rooms["rooms_info"])


async def test_rest_get_endpoint_takes_query_parameters(client: TestClient[Any, Any]) -> None:
    await call(client, "login_or_register", {"email": "ana@x.io"})
    resp = await client.get(
        "/api/v2/rest/get_or_create_room_with_target",
        params=[("emails[]", "ana@x.io"), ("emails[]", BOT)],
        headers=HEADERS,
    )
    assert resp.status == 200
    assert (await resp.json())["results"]["room"]["chat_type"] == "single"


async def test_rest_post_comment_errors_name_the_problem(client: TestClient[Any, Any]) -> None:
    await call(client, "login_or_register", {"email": "ana@x.io"})
    room = await call(client, "get_or_create_room_with_target", {"emails": ["ana@x.io", BOT]})
    room_id = room["room"]["id"]
    cases = [
        ({"user_id": "ghost@x.io", "room_id": room_id, "message": "x"}, 404, "ghost@x.io"),
        ({"user_id": BOT, "room_id": 999, "message": "x"}, 404, "999"),
        ({"user_id": BOT, "room_id": room_id, "type": "system_event"}, 400, "system_event"),
        ({"user_id": BOT, "room_id": room_id, "type": "buttons", "payload": {}}, 400, "buttons"),
        ({"user_id": BOT, "room_id": room_id, "message": "x" * 4001}, 400, "4000"),
    ]
    for body, status, needle in cases:
        resp = await client.post("/api/v2.1/rest/post_comment", json=body, headers=HEADERS)
        data = await resp.json()
        assert resp.status == status, (body, data)
        assert needle in data["error"]["message"]


async def test_rest_card_image_url_is_served_back_as_image(client: TestClient[Any, Any]) -> None:
    await call(client, "login_or_register", {"email": "ana@x.io"})
    room = await call(client, "get_or_create_room_with_target", {"emails": ["ana@x.io", BOT]})
    posted = await call(
        client,
        "post_comment",
        {
            "sender_email": BOT,
            "room_id": room["room"]["id"],
            "type": "card",
            "message": "deal",
            # v2 sends the payload as a JSON string
            "payload": json.dumps({"title": "Shoe", "image_url": "https://x.io/s.jpg"}),
        },
    )
    assert posted["comment"]["payload"] == {"title": "Shoe", "image": "https://x.io/s.jpg"}


async def test_rest_reply_is_enriched_with_the_quoted_comment(
    client: TestClient[Any, Any],
) -> None:
    await call(client, "login_or_register", {"email": "ana@x.io", "username": "Ana"})
    room = await call(client, "get_or_create_room_with_target", {"emails": ["ana@x.io", BOT]})
    room_id = room["room"]["id"]
    first = await call(
        client, "post_comment", {"user_id": "ana@x.io", "room_id": room_id, "message": "hello"}
    )
    reply = await call(
        client,
        "post_comment",
        {
            "user_id": BOT,
            "room_id": room_id,
            "type": "reply",
            "message": "hi Ana",
            "payload": {"text": "hi Ana", "replied_comment_id": first["comment"]["id"]},
        },
    )
    payload = reply["comment"]["payload"]
    assert payload["replied_comment_message"] == "hello"
    assert payload["replied_comment_sender_username"] == "Ana"


async def test_rest_system_event_is_posted_by_the_system_user(
    client: TestClient[Any, Any],
) -> None:
    await call(client, "login_or_register", {"email": "ana@x.io", "username": "Ana"})
    room = await call(client, "get_or_create_room_with_target", {"emails": ["ana@x.io", BOT]})
    event = await call(
        client,
        "post_system_event_message",
        {
            "system_event_type": "change_room_name",
            "room_id": room["room"]["id"],
            "subject_email": "ana@x.io",
            "updated_room_name": "Support",
        },
    )
    comment = event["comment"]
    assert comment["type"] == "system_event"
    assert comment["email"] == "system@test-app.qiscus.com"
    assert comment["message"] == "Ana changed room name to 'Support'"
    bad = await client.post(
        "/api/v2.1/rest/post_system_event_message",
        json={"system_event_type": "explode", "room_id": room["room"]["id"]},
        headers=HEADERS,
    )
    assert bad.status == 400
    assert "'explode'" in (await bad.json())["error"]["message"]


@pytest.mark.parametrize("body", ["[1, 2]", "{not json"])
async def test_rest_malformed_json_body_is_a_400(client: TestClient[Any, Any], body: str) -> None:
    resp = await client.post(
        "/api/v2.1/rest/post_comment",
        data=body,
        headers={**HEADERS, "Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert (await resp.json())["status"] == 400


async def test_state_survives_a_restart_and_reset_clears_it(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    config = EmulatorConfig(bot_email=BOT)
    first = Emulator(config, EmulatorStore(path))
    await first.start()
    room = await first.single_room((await first.store.upsert_user("ana@x.io", "Ana"))["email"])
    await first.store.add_comment(
        room_id=room["id"], email="ana@x.io", comment_type="text", message="remember me"
    )
    await first.close()

    second = Emulator(config, EmulatorStore(path))
    await second.start()
    assert [c["message"] for c in await second.store.comments(room["id"])] == ["remember me"]
    await second.close()

    third = Emulator(config, EmulatorStore(path))
    await third.start(reset=True)
    assert await third.store.comments(room["id"]) == []
    assert await third.store.get_user("ana@x.io") is None
    assert await third.store.get_user(BOT) is not None
    # New ids after a reset: a bot deduping on (room, message id) must not drop new messages.
    fresh = await third.single_room((await third.store.upsert_user("ana@x.io", "Ana"))["email"])
    assert fresh["id"] != room["id"]
    await third.close()


async def test_a_room_id_too_big_for_sqlite_is_not_found_not_a_500(
    client: TestClient[Any, Any],
) -> None:
    # sqlite3 raised OverflowError for a 23-digit id (filing the call, looking the room up).
    huge = "9" * 23
    await call(client, "login_or_register", {"email": BOT, "password": "p", "username": "Bot"})
    posted = await client.post(
        "/api/v2.1/rest/post_comment",
        json={"user_id": BOT, "room_id": huge, "message": "x"},
        headers=HEADERS,
    )
    assert posted.status == 404, await posted.text()
    assert "not found" in (await posted.json())["error"]["message"]
    loaded = await client.get(f"/api/v2.1/rest/load_comments?room_id={huge}", headers=HEADERS)
    assert loaded.status == 404
    page = await client.get(f"/emulator/api/rooms/{huge}/comments")
    assert page.status == 404 and "not found" in (await page.json())["error"]
    members = await client.post(f"/emulator/api/rooms/{huge}/members", json={"email": BOT})
    assert members.status == 404
