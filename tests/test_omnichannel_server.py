"""The server's Omnichannel lifecycle routes, and a kill -9 between a resolved webhook's
acceptance and its effects (SQLite, a real `qbot run` subprocess): the effects happen once."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs
from test_scale import Replica, until
from webhooks import sdk_body

from qbot import Bot, Context
from qbot.config import load_settings
from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore
from qbot.emulator.app import create_emulator_app
from qbot.emulator.desk import OmnichannelDesk, resolved_webhook_body
from qbot.emulator.omnichannel import OMNICHANNEL_KEY
from qbot.server import create_app
from qbot.storage import SqliteStorage

APP, SECRET, TOKEN = "omni-app", "omni-secret", "hook-token"


@dataclass
class Served:
    emulator: Emulator
    desk: OmnichannelDesk
    url: str


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    config = EmulatorConfig(app_id=APP, secret_key=SECRET, bot_email="bot@example.com")
    emulator = Emulator(config, EmulatorStore(":memory:"))
    await emulator.start()
    app = create_emulator_app(emulator, manage=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    emulator.base_url = f"http://{host}:{port}"
    try:
        yield Served(emulator, app[OMNICHANNEL_KEY], emulator.base_url)
    finally:
        await runner.cleanup()
        await emulator.close()


def settings(url: str, storage: str = "memory://") -> Any:
    return load_settings(
        None,
        qiscus={"app_id": APP, "secret_key": SECRET, "base_url": url, "max_attempts": 1},
        bot={"email": "bot@example.com"},
        storage={"url": storage},
        omnichannel={"base_url": url, "webhook_token": TOKEN},
    )


def survey_bot() -> Bot:
    bot = Bot("omni")

    @bot.on_resolved
    async def survey(ctx: Context) -> None:
        await ctx.reply("How did we do?")

    @bot.on_new_session
    async def hello(ctx: Context) -> None:
        await ctx.reply("Welcome!")

    return bot


async def admin_texts(served: Served, room: int) -> list[str]:
    comments = await served.emulator.store.comments(room, limit=100)
    return [c["message"] for c in reversed(comments) if c["email"] == served.desk.admin_email]


async def wait_texts(served: Served, room: int, count: int) -> list[str]:
    """The admin's texts in ``room`` once there are ``count`` of them (20 s at most)."""
    async with asyncio.timeout(20):
        while len(found := await admin_texts(served, room)) < count:  # noqa: ASYNC110 - the store has no event to wait on
            await asyncio.sleep(0.05)
    return found


async def test_lifecycle_routes_check_the_token_and_the_body(
    served: Served, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(survey_bot(), settings(served.url)))
    room = await served.desk.open_room("ana@example.com", "Ana", source="wa")
    service = await served.desk.service(room["id"])
    body = await resolved_webhook_body(
        served.desk, service, {"id": 0, "name": "A", "email": "a", "is_available": True}
    )
    missing = await client.post("/webhook/resolved", json=body)
    wrong = await client.post("/webhook/resolved?token=nope", json=body)
    assert (missing.status, wrong.status) == (401, 401)
    assert "missing ?token=" in (await missing.json())["error"]
    bad = await client.post(f"/webhook/resolved?token={TOKEN}", data=b"not json")
    assert bad.status == 400 and "not JSON" in (await bad.json())["error"]
    shape = await client.post(f"/webhook/new-session?token={TOKEN}", json={"room_log": {}})
    assert shape.status == 400 and "room_log.room_id" in (await shape.json())["error"]

    first = await client.post(f"/webhook/resolved?token={TOKEN}", json=body)
    again = await client.post(f"/webhook/resolved?token={TOKEN}", json=body)
    assert [(await r.json())["status"] for r in (first, again)] == ["accepted", "duplicate"]
    await wait_texts(served, room["id"], 1)
    await asyncio.sleep(0.2)  # nothing else comes
    assert await admin_texts(served, room["id"]) == ["How did we do?"]
    assert (await served.desk.service(room["id"])).is_handled_by_bot


async def test_new_session_handlers_answer_through_bot(served: Served, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(survey_bot(), settings(served.url)))
    room = await served.desk.open_room("ana@example.com", "Ana", source="wa")
    body = {"room_log": {"room_id": str(room["id"]), "source": "wa", "user_id": "ana@example.com"}}
    resp = await client.post(f"/webhook/new-session?token={TOKEN}", json=body)
    assert (await resp.json())["status"] == "accepted"
    assert await wait_texts(served, room["id"], 1) == ["Welcome!"]


BOT = textwrap.dedent(
    """
    import asyncio, os, pathlib
    from qbot import Bot, Context

    bot = Bot("omni-crash")
    FLAGS = pathlib.Path(os.environ["SCALE_FLAGS"])

    @bot.message(text="human")
    async def human(ctx: Context) -> None:
        await ctx.handoff("asked", agent_id=101)

    @bot.message(text="count")
    async def count(ctx: Context) -> None:
        n = await ctx.state.get("n", 0)
        await ctx.state.set("n", n + 1)
        await ctx.reply(f"count {n + 1}")

    @bot.on_resolved
    async def survey(ctx: Context) -> None:
        await ctx.reply("How did we do?")
        marker = FLAGS / "blocked"
        if not marker.exists():  # only the first run blocks: the one that gets killed
            marker.write_text(str(os.getpid()))
            await asyncio.sleep(60)
        await ctx.reply("Answer 1 to 5")
    """
)


class OmniReplica(Replica):
    def __init__(self, folder: Path, served: Served, storage_url: str, name: str) -> None:
        super().__init__(folder, served.emulator, storage_url, name)
        self.config.write_text(
            self.config.read_text()
            + f"omnichannel: {{base_url: '{served.url}', webhook_token: {TOKEN}}}\n"
        )


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> str:
    async with http.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        status: str = (await resp.json())["status"]
        return status


async def test_a_kill_after_a_resolved_webhook_is_accepted_loses_and_repeats_nothing(
    tmp_path: Path, served: Served
) -> None:
    (tmp_path / "scalebot.py").write_text(BOT)
    url = f"sqlite:///{tmp_path / 'qbot.db'}"
    desk, em = served.desk, served.emulator
    room = await desk.open_room("ana@example.com", "Ana", source="wa")
    room_id = int(room["id"])
    first: Replica = await OmniReplica(tmp_path, served, url, "first").start()
    second: Replica | None = None
    try:
        async with aiohttp.ClientSession() as http:

            def says(text: str) -> dict[str, Any]:
                body = sdk_body(text, room_id=room_id, sender="ana@example.com")
                body["payload"]["room"]["options"] = room["options"]
                return body

            assert await post(http, f"{first.url}/webhook", says("count")) == "accepted"
            assert await post(http, f"{first.url}/webhook", says("human")) == "accepted"
            await em.call_log.wait_for(lambda: bool((desk.services[room_id]).agent_ids), 20)
            service = desk.services[room_id]
            body = await resolved_webhook_body(desk, service, desk.agent_view(101))
            resolved = f"{first.url}/webhook/resolved?token={TOKEN}"
            assert await post(http, resolved, body) == "accepted"
            await until(lambda: (tmp_path / "blocked").exists(), 20)
            await first.kill()
            assert await admin_texts(served, room_id) == ["count 1", "How did we do?"]

            second = await OmniReplica(tmp_path, served, url, "second").start()
            resolved = f"{second.url}/webhook/resolved?token={TOKEN}"
            assert await post(http, resolved, body) == "duplicate"  # dedupe survived the kill
            await wait_texts(served, room_id, 3)
            assert await post(http, f"{second.url}/webhook", says("count")) == "accepted"
            await wait_texts(served, room_id, 4)
            await asyncio.sleep(0.3)  # nothing more arrives: nothing is sent twice
    finally:
        for replica in (first, second):
            if replica is not None:
                await replica.stop()
    assert await admin_texts(served, room_id) == [
        "count 1",
        "How did we do?",
        "Answer 1 to 5",
        "count 1",  # the conversation state was cleared by the resolve
    ]
    activations = [c.body for c in em.calls if c.path == f"/bot/{room_id}/activate"]
    assert activations == [{"is_active": False}, {"is_active": True}]
    assert desk.services[room_id].is_handled_by_bot
    async with SqliteStorage(str(tmp_path / "qbot.db")) as storage:
        assert await storage.handoff_get(str(room_id)) is None


def replying_bot(url: str, storage: str) -> Bot:
    bot = Bot("omni-restart")

    @bot.message()
    async def hello(ctx: Context) -> None:
        await ctx.reply("hello")

    bot.configure(settings(url, storage))
    return bot


async def test_a_reply_left_pending_is_sent_through_bot_after_a_restart(
    served: Served, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'qbot.db'}"
    room = await served.desk.open_room("ana@example.com", "Ana", source="wa")
    body = sdk_body("hi", room_id=room["id"], sender="ana@example.com")
    body["payload"]["room"]["options"] = room["options"]
    first = replying_bot(served.url, storage)
    served.emulator.fail_next(f"/{APP}/bot", status=503)
    with capture_logs() as logs:
        await first.feed_update(body)
    assert any(e["event"] == "reply.queued" for e in logs)
    await first.aclose()
    assert await admin_texts(served, room["id"]) == []

    # A new process: it knows the room is an Omnichannel room from the storage alone.
    second = replying_bot(served.url, storage)
    await second.open()
    try:
        assert await second.dispatcher.flush(str(room["id"])) == 0
    finally:
        await second.aclose()
    assert await admin_texts(served, room["id"]) == ["hello"]
    assert not served.emulator.calls_to("post_comment")
