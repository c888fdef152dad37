"""Every endpoint of the reference, called through QiscusClient against the fake server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from qbot.client import QiscusClient
from qbot.emulator import Emulator, UploadedFile
from qbot.errors import QiscusNotFound
from qbot.models.api import Comment, Export, Room

BOT = "bot@example.com"


@pytest_asyncio.fixture
async def client(fake_qiscus: Emulator) -> AsyncIterator[QiscusClient]:
    async with QiscusClient(
        fake_qiscus.config.app_id, fake_qiscus.config.secret_key, base_url=fake_qiscus.base_url
    ) as c:
        yield c


async def test_post_comment_sends_v2_fields_and_payload_as_json_string(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    buttons = {"text": "pick", "buttons": [{"label": "A", "type": "link", "payload": {"url": "u"}}]}
    comment = await client.post_comment(BOT, 42, "pick", type="buttons", payload=buttons)

    call = fake_qiscus.calls_to("post_comment")[0]
    assert call.path == "/api/v2/rest/post_comment"
    assert call.headers["QISCUS-SDK-SECRET"] == "fake-secret"
    assert call.headers["QISCUS-SDK-APP-ID"] == "fake-app"
    assert call.body["sender_email"] == BOT
    assert isinstance(call.body["payload"], str)
    assert json.loads(call.body["payload"]) == buttons
    assert isinstance(comment, Comment)
    assert comment.type == "buttons"
    assert comment.payload == buttons
    assert fake_qiscus.posted_comments(42)[0]["payload"] == buttons


async def test_post_comment_ids_increase_and_unique_temp_id_is_kept_or_generated(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    first = await client.post_comment(BOT, 1, "one", unique_temp_id="reply-1")
    second = await client.post_comment(BOT, 1, "two")

    assert int(second.id) > int(first.id)
    assert first.unique_temp_id == "reply-1"
    assert second.unique_temp_id
    assert second.unique_temp_id.startswith("qbot-")
    assert [c["message"] for c in fake_qiscus.posted_comments(1)] == ["one", "two"]


async def test_rooms_create_add_remove_participants(client: QiscusClient) -> None:
    room = await client.create_room("Team", ["a@x.com", "b@x.com"], creator=BOT)
    assert isinstance(room, Room)
    assert room.room_name == "Team"
    assert set(room.participants) == {BOT, "a@x.com", "b@x.com"}

    added = await client.add_room_participants(room.room_id, ["c@x.com"])
    assert "c@x.com" in added.participants
    removed = await client.remove_room_participants(room.room_id, ["a@x.com"])
    assert "a@x.com" not in removed.participants
    assert "c@x.com" in removed.participants


async def test_get_or_create_room_with_target_sends_emails_array_and_reuses_room(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    first = await client.get_or_create_room_with_target(["a@x.com", "b@x.com"])
    again = await client.get_or_create_room_with_target(["b@x.com", "a@x.com"])

    assert fake_qiscus.calls_to("get_or_create_room_with_target")[0].query["emails"] == [
        "a@x.com",
        "b@x.com",
    ]
    assert first.room.chat_type == "single"
    assert {p.email for p in first.room.participants} == {"a@x.com", "b@x.com"}
    assert again.room.id == first.room.id


async def test_get_rooms_info_returns_last_comment(client: QiscusClient) -> None:
    room = await client.create_room("R", ["a@x.com"], creator=BOT)
    await client.post_comment(BOT, room.room_id, "latest")

    infos = await client.get_rooms_info([room.room_id], BOT)

    assert [i.room_id for i in infos] == [room.room_id]
    assert infos[0].last_comment_message == "latest"


async def test_load_comments_pages_and_iter_comments_walks_every_page(
    client: QiscusClient,
) -> None:
    for n in range(25):
        await client.post_comment(BOT, 9, f"m{n}")

    page = await client.load_comments(9, page=2, limit=10)
    every = [c.message async for c in client.iter_comments(9, limit=10)]

    assert [c.message for c in page] == [f"m{n}" for n in range(14, 4, -1)]
    assert every == [f"m{n}" for n in range(24, -1, -1)]


async def test_iter_user_rooms_walks_all_pages_with_participants(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    for n in range(45):
        await fake_qiscus.add_room(f"room {n}", [BOT, f"u{n}@x.com"])

    first = await client.get_user_rooms(BOT)
    rooms = [r async for r in client.iter_user_rooms(BOT, show_participants=True)]

    assert first.meta.total_room == 45
    assert len(first.rooms_info) == 20
    assert first.rooms_info[0].participants is None
    assert len(rooms) == 45
    assert len({r.room_id for r in rooms}) == 45
    assert all(r.participants and r.participants[0].email == BOT for r in rooms)
    pages = [c.query.get("page") for c in fake_qiscus.calls_to("get_user_rooms")]
    assert pages == [None, "1", "2", "3"]


async def test_login_or_register_then_reset_token(client: QiscusClient) -> None:
    user = await client.login_or_register("new@x.com", "New", password="pw", avatar_url="https://a")
    reset = await client.reset_user_token("new@x.com")

    assert user.email == "new@x.com"
    assert user.username == "New"
    assert user.token
    assert reset.token
    assert reset.token != user.token


async def test_post_system_event_message_add_member_and_custom(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    added = await client.post_system_event_message("add_member", 5, BOT, object_email="a@x.com")
    custom = await client.post_system_event_message(
        "custom", 5, BOT, payload={"type": "add_admin", "admin_email": "a@x.com"}
    )

    assert fake_qiscus.posted_system_events(5)[0]["object_email"] == ["a@x.com"]
    assert added.type == "system_event"
    assert added.payload["type"] == "add_member"
    assert added.email == "system@fake-app.qiscus.com"
    assert custom.payload == {"type": "add_admin", "admin_email": "a@x.com"}


async def test_export_progresses_downloads_lists_and_deletes(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    await client.post_comment(BOT, 3, "backed up")
    today = datetime.now(UTC).date()  # the emulator exports the range's comments (UTC days)
    days = [(today + timedelta(days=d)).isoformat() for d in (-1, 1)]  # midnight-proof
    created = await client.create_export("comments", *days)
    progress = [await client.get_export(created.unique_id) for _ in range(2)]
    data = await client.download_export(progress[-1])
    listed = await client.list_exports()
    deleted = await client.delete_export(created.unique_id)

    assert isinstance(created, Export)
    assert created.percentage == 0
    assert not created.finished
    assert [p.percentage for p in progress] == [50, 100]
    assert progress[-1].finished
    assert [row["message"] for row in json.loads(data)] == ["backed up"]
    assert [e.unique_id for e in listed] == [created.unique_id]
    assert deleted.unique_id == created.unique_id
    download = fake_qiscus.calls[-3]
    assert download.path.startswith("/download/")
    assert "QISCUS-SDK-SECRET" not in download.headers
    with pytest.raises(QiscusNotFound, match=created.unique_id):
        await client.get_export(created.unique_id)


async def test_create_import_uploads_multipart_from_bytes_and_path(
    client: QiscusClient, fake_qiscus: Emulator, tmp_path: Path
) -> None:
    users = [{"Email": "imp@x.com", "Name": "Imp"}]
    path = tmp_path / "users.json"
    path.write_text(json.dumps(users))

    from_bytes = await client.create_import("users", json.dumps(users).encode())
    from_path = await client.create_import("users", path)
    listed = await client.list_imports()

    body = fake_qiscus.calls_to("imports")[0].body
    assert body["type"] == "users"
    assert isinstance(body["file"], UploadedFile)
    assert json.loads(body["file"].data) == users
    assert from_bytes.status == "started"
    assert from_path.original_filename == "users.json"
    assert {i.status for i in listed} == {"finished"}
    assert await fake_qiscus.store.get_user("imp@x.com") is not None


async def test_client_without_context_manager_reuses_one_connection(
    fake_qiscus: Emulator,
) -> None:
    client = QiscusClient("fake-app", "fake-secret", base_url=fake_qiscus.base_url)
    for n in range(5):
        await client.post_comment(BOT, 1, f"n{n}")
    await client.close()
    await client.post_comment(BOT, 1, "after close")  # a closed client reopens its session
    await client.close()

    peers = {c.peer for c in fake_qiscus.calls[:5]}
    assert len(peers) == 1
    assert len(fake_qiscus.posted_comments(1)) == 6


async def test_shared_session_is_left_open(fake_qiscus: Emulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with QiscusClient(
            "fake-app", "fake-secret", base_url=fake_qiscus.base_url, session=session
        ) as client:
            await client.post_comment(BOT, 1, "hi")
        assert not session.closed


async def test_secret_never_appears_in_repr_or_logs(client: QiscusClient) -> None:
    with capture_logs() as logs:
        await client.post_comment(BOT, 1, "hi")

    assert "fake-secret" not in repr(client)
    assert "fake-secret" not in repr(logs)
    assert logs[-1]["event"] == "qiscus.request"
    assert logs[-1]["endpoint"] == "/api/v2/rest/post_comment"
    assert logs[-1]["status"] == 200


async def test_iter_user_rooms_without_meta_still_walks_pages(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    for n in range(25):
        await fake_qiscus.add_room(f"room {n}", [BOT])
    fake_qiscus.fail_next(
        "get_user_rooms",
        status=200,
        body={"status": 200, "results": {"rooms_info": [{"room_id": 100 + n} for n in range(20)]}},
    )

    rooms = [r.room_id async for r in client.iter_user_rooms(BOT)]

    assert len(rooms) == 25
    assert len(set(rooms)) == 25
