"""The emulator page's side of the Omnichannel desk, and deliveries in Omnichannel's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from qbot._json import loads
from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, create_emulator_app
from qbot.emulator.desk import OmnichannelDesk
from qbot.emulator.omnichannel import OMNICHANNEL_KEY

APP, SECRET = "shop-app", "shop-secret"
ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, raw: bytes, headers: Any) -> tuple[int | None, str]:
        self.bodies.append(loads(raw))
        return 200, "{}"


@pytest_asyncio.fixture
async def setup(
    tmp_path: Path, aiohttp_client: ClientFactory
) -> AsyncIterator[tuple[TestClient[Any, Any], OmnichannelDesk, Recorder]]:
    recorder = Recorder()
    config = EmulatorConfig(app_id=APP, secret_key=SECRET, bot_email="bot@shop.local")
    em = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"), deliver=recorder)
    await em.start()
    app = create_emulator_app(em, manage=False)
    client = await aiohttp_client(app)
    yield client, app[OMNICHANNEL_KEY], recorder
    await em.close()


async def test_a_customer_on_a_channel_an_agent_reply_and_resolve(setup: Any) -> None:
    client, desk, recorder = setup
    desk.deliver_as_omnichannel()
    desk.deliver = recorder
    resp = await client.post(
        "/emulator/api/omnichannel/customers",
        json={"email": "harpi@wa.example", "name": "Harpi", "source": "wa"},
    )
    room = await resp.json()
    await desk.em.user_post(room["id"], "harpi@wa.example", text="hello")
    [body] = recorder.bodies
    assert body["app_code"] == APP and body["channel"]["source"] == "wa"  # the 2025 shape
    assert body["payload"]["room"]["id"] == str(room["id"])

    agent = await client.post(
        f"/emulator/api/omnichannel/rooms/{room['id']}/agent", json={"agent_id": 102, "text": "hi"}
    )
    assert agent.status == 200
    snapshot = await (await client.get("/emulator/api/omnichannel")).json()
    [service] = snapshot["services"]
    assert service["status"] == "agent: Bima"
    assert snapshot["delivers_as_omnichannel"] is True

    desk.services[room["id"]].is_handled_by_bot = False
    await desk.em.user_post(room["id"], "harpi@wa.example", text="are you there?")
    assert len(recorder.bodies) == 2  # the agent's message; not the customer's while the bot is off

    resolved = await client.post(f"/emulator/api/omnichannel/rooms/{room['id']}/resolve", json={})
    assert (await resolved.json())["resolved_by"]["name"] == "Bima"
    assert recorder.bodies[-1]["service"]["room_id"] == str(room["id"])
    snapshot = await (await client.get("/emulator/api/omnichannel")).json()
    assert snapshot["services"][0]["status"] == "resolved"


async def test_page_routes_answer_bad_input_with_a_json_error(setup: Any) -> None:
    client, _, _ = setup
    bad_email = await client.post("/emulator/api/omnichannel/customers", json={"email": "x"})
    assert bad_email.status == 400 and "not an email" in (await bad_email.json())["error"]
    channel = await client.post(
        "/emulator/api/omnichannel/customers", json={"email": "a@b.c", "source": "fax"}
    )
    assert channel.status == 400 and "no emulated channel 'fax'" in (await channel.json())["error"]
    missing = await client.post("/emulator/api/omnichannel/rooms/999/agent", json={"text": "x"})
    assert missing.status == 404
    not_json = await client.post("/emulator/api/omnichannel/rooms/999/resolve", data=b"{")
    assert not_json.status == 400


async def open_customer(client: TestClient[Any, Any]) -> int:
    resp = await client.post(
        "/emulator/api/omnichannel/customers",
        json={"email": "6281234@wa.example", "name": "Harpi", "source": "wa"},
    )
    return int((await resp.json())["id"])


async def test_a_resolved_room_is_not_resolved_again(setup: Any) -> None:
    client, desk, recorder = setup
    desk.deliver = recorder
    room_id = await open_customer(client)
    await client.post(f"/emulator/api/omnichannel/rooms/{room_id}/agent", json={"text": "hi"})
    first = await client.post(f"/emulator/api/omnichannel/rooms/{room_id}/resolve", json={})
    assert first.status == 200
    sent = len(recorder.bodies)

    again = await client.post(f"/emulator/api/omnichannel/rooms/{room_id}/resolve", json={})

    assert again.status == 409
    assert (await again.json())["error"] == f"room {room_id} is already resolved"
    assert recorder.bodies[-1]["service"]["room_id"] == str(room_id)
    assert len(recorder.bodies) == sent  # no second resolved webhook, no second survey


async def test_the_resolved_webhook_and_what_follows_are_an_exchange_of_their_own(
    setup: Any,
) -> None:
    client, desk, recorder = setup
    desk.deliver = recorder
    room_id = await open_customer(client)
    await desk.em.user_post(room_id, "6281234@wa.example", text="hello")
    await client.post(
        f"/emulator/api/omnichannel/rooms/{room_id}/agent", json={"agent_id": 101, "text": "hi"}
    )

    await client.post(f"/emulator/api/omnichannel/rooms/{room_id}/resolve", json={})
    await desk.em.record_call(room_id, "POST", f"/bot/{room_id}/activate", {}, 200)

    newest = (await desk.em.store.exchanges(room_id))[-1]
    assert newest["title"] == "resolved by Ayu"
    kinds = [(t["kind"], t["path"]) for t in newest["traffic"]]
    assert kinds == [("webhook", "(in process)"), ("api", f"/bot/{room_id}/activate")]


async def test_the_desk_lists_each_room_by_its_customer(setup: Any) -> None:
    client, _, _ = setup
    room_id = await open_customer(client)

    snapshot = await (await client.get("/emulator/api/omnichannel")).json()

    [service] = snapshot["services"]
    assert service["room_id"] == str(room_id)
    assert service["customer"] == {"user_id": "6281234@wa.example", "name": "Harpi"}
