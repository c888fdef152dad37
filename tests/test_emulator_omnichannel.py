"""The emulator's Omnichannel endpoints, called raw: checks, errors, the inspector, the desk."""

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
from qbot.emulator.desk import SEED_AGENTS, DeskError, OmnichannelDesk
from qbot.emulator.omnichannel import OMNICHANNEL_KEY
from qbot.emulator.omnichannel_bodies import (
    agent_allocation_body,
    new_session_body,
    omnichannel_body,
)
from qbot.emulator.webhook import MOBILE, webhook_body
from qbot.models.webhook import Update
from qbot.omnichannel import (
    AgentAllocationWebhook,
    NewSessionWebhook,
    ResolvedWebhook,
    detect_room,
)

APP = "shop-app"
SECRET = "shop-secret"
ADMIN = {"Qiscus-App-Id": APP, "Qiscus-Secret-Key": SECRET}
ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@pytest_asyncio.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(app_id=APP, secret_key=SECRET, bot_email="bot@shop.local")
    em = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"))
    await em.start()
    yield em
    await em.close()


@pytest_asyncio.fixture
async def client(emulator: Emulator, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    return await aiohttp_client(create_emulator_app(emulator, manage=False))


@pytest_asyncio.fixture
async def room_id(emulator: Emulator) -> int:
    await emulator.store.upsert_user("ana@widget.local", "Ana")
    room = await emulator.store.create_room(
        name="Ana",
        room_type="group",
        creator="ana@widget.local",
        participants=["bot@shop.local"],
        options=json.dumps({"source": "qiscus"}),
    )
    return int(room["id"])


def desk_of(client: TestClient[Any, Any]) -> OmnichannelDesk:
    return client.app[OMNICHANNEL_KEY]


async def error_of(resp: Any, status: int) -> str:
    assert resp.status == status
    body = await resp.json()
    assert body["status"] == status
    return str(body["error"]["message"])


async def test_bot_accepts_the_documented_underscored_secret_alone(
    client: TestClient[Any, Any], room_id: int, emulator: Emulator
) -> None:
    body = {
        "sender_email": f"{APP}_admin@qismo.com",
        "room_id": str(room_id),
        "type": "buttons",
        "message": "Pick",
        "payload": json.dumps({"text": "Pick", "buttons": []}),  # a JSON string is read too
    }

    resp = await client.post(f"/{APP}/bot", json=body, headers={"QISCUS_SDK_SECRET": SECRET})

    assert resp.status == 200
    comment = (await resp.json())["data"]["comment"]
    assert comment["type"] == "buttons"
    assert comment["payload"] == {"text": "Pick", "buttons": []}
    assert (await emulator.store.get_user(f"{APP}_admin@qismo.com")) is not None


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ({}, "missing header Qiscus-Secret-Key"),
        ({"Qiscus-Secret-Key": "nope", "Qiscus-App-Id": APP}, "wrong Qiscus-Secret-Key"),
        ({"Qiscus-Secret-Key": SECRET}, "missing header Qiscus-App-Id"),
        ({"Qiscus-Secret-Key": SECRET, "Qiscus-App-Id": "other"}, "unknown app code 'other'"),
    ],
)
async def test_desk_calls_check_the_credentials(
    client: TestClient[Any, Any], headers: dict[str, str], needle: str
) -> None:
    resp = await client.get("/api/v2/divisions", headers=headers)

    assert needle in await error_of(resp, 401)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"type": "dance", "message": "x"}, "unknown message type 'dance'"),
        ({"type": "buttons", "message": "x", "payload": {"text": "x"}}, "payload.buttons"),
        ({"type": "carousel", "message": "x", "payload": {}}, "payload.cards"),
        ({"type": "file_attachment", "message": "x", "payload": {}}, "payload.url"),
        ({"type": "custom", "message": "x"}, "must be an object"),
        ({"type": "text", "message": ""}, "message is required"),
        ({"type": "custom", "message": "x", "payload": "{oops"}, "payload must be a JSON"),
    ],
)
async def test_bot_refuses_malformed_messages_with_a_400(
    client: TestClient[Any, Any], room_id: int, body: dict[str, Any], needle: str
) -> None:
    full = {"sender_email": f"{APP}_admin@qismo.com", "room_id": str(room_id), **body}

    resp = await client.post(f"/{APP}/bot", json=full, headers=ADMIN)

    assert needle in await error_of(resp, 400)


async def test_bot_refuses_an_unknown_app_code_or_room(
    client: TestClient[Any, Any], room_id: int
) -> None:
    body = {"sender_email": "other_admin@qismo.com", "room_id": str(room_id), "message": "x"}
    resp = await client.post("/other/bot", json=body, headers=ADMIN)
    assert "unknown app code 'other'" in await error_of(resp, 404)

    body = {"sender_email": f"{APP}_admin@qismo.com", "room_id": "nope", "message": "x"}
    resp = await client.post(f"/{APP}/bot", json=body, headers=ADMIN)
    assert "room 'nope' not found" in await error_of(resp, 404)


async def test_bad_input_on_desk_calls_is_a_400_that_names_it(
    client: TestClient[Any, Any], room_id: int
) -> None:
    resp = await client.post(f"/bot/{room_id}/activate", json={}, headers=ADMIN)
    assert "is_active is required" in await error_of(resp, 400)
    resp = await client.post(f"/bot/{room_id}/activate", json={"is_active": "maybe"}, headers=ADMIN)
    assert "is_active must be true or false" in await error_of(resp, 400)
    resp = await client.get("/api/v2/admin/agents/by_division", headers=ADMIN)
    assert "division_ids is required" in await error_of(resp, 400)
    resp = await client.post(
        "/api/v1/admin/service/assign_agent",
        data={"room_id": str(room_id), "agent_id": "999"},
        headers=ADMIN,
    )
    assert "agent 999 not found" in await error_of(resp, 404)
    resp = await client.post(
        f"/api/v1/qiscus/room/{room_id}/user_info",
        json={"user_properties": [{"value": 1}]},
        headers=ADMIN,
    )
    assert "list of {key, value}" in await error_of(resp, 400)
    resp = await client.post("/api/v2/customer_rooms", json={"status": "odd"}, headers=ADMIN)
    assert "status 'odd'" in await error_of(resp, 400)
    resp = await client.post(
        "/api/v2/customer_rooms", data="{", headers=ADMIN | {"Content-Type": "application/json"}
    )
    assert "not valid JSON" in await error_of(resp, 400)


async def test_by_division_reads_repeated_ids_and_filters(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get(
        "/api/v2/admin/agents/by_division?division_ids[]=2&division_ids[]=1&is_available=false",
        headers=ADMIN,
    )

    assert resp.status == 200
    assert [a["name"] for a in (await resp.json())["data"]] == ["Citra"]


async def test_every_call_is_in_the_inspector_under_its_room(
    client: TestClient[Any, Any], room_id: int
) -> None:
    await client.post(f"/bot/{room_id}/activate", json={"is_active": False}, headers=ADMIN)
    await client.post(
        "/api/v1/room_tag/create", data={"room_id": str(room_id), "tag": "vip"}, headers=ADMIN
    )

    resp = await client.get(f"/emulator/api/exchanges?room_id={room_id}")
    traffic = [t for e in await resp.json() for t in e["traffic"]]

    assert [(t["kind"], t["method"], t["path"], t["status"]) for t in traffic] == [
        ("api", "POST", f"/bot/{room_id}/activate", 200),
        ("api", "POST", "/api/v1/room_tag/create", 200),
    ]
    assert traffic[1]["body"]["tag"] == "vip"


async def test_resolve_delivers_the_webhook_in_process_and_records_it(
    client: TestClient[Any, Any], room_id: int, emulator: Emulator
) -> None:
    delivered: list[bytes] = []

    async def deliver(raw: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
        delivered.append(raw)
        return 200, "ok"

    desk = desk_of(client)
    desk.deliver = deliver
    agent = SEED_AGENTS[1]
    await desk.assign(room_id, agent["id"])

    body = await desk.resolve(room_id, notes="sorted")

    [raw] = delivered
    assert json.loads(raw) == body
    resolved = ResolvedWebhook.model_validate(body)
    assert resolved.room_id == str(room_id)
    assert resolved.service.notes == "sorted"
    assert resolved.service.source == "qiscus"
    assert resolved.resolved_by.email == agent["email"]
    assert resolved.customer.name == "Ana"
    [exchange] = await emulator.store.exchanges(room_id)
    [webhook] = [t for t in exchange["traffic"] if t["kind"] == "webhook"]
    assert (webhook["path"], webhook["status"]) == ("(in process)", 200)


async def test_resolve_without_a_registered_url_is_recorded_as_not_delivered(
    client: TestClient[Any, Any], room_id: int, emulator: Emulator
) -> None:
    resp = await client.post(
        "/api/v1/admin/service/mark_as_resolved", data={"room_id": str(room_id)}, headers=ADMIN
    )

    assert resp.status == 200
    assert (await resp.json())["data"]["service"]["is_resolved"] is True
    webhooks = [
        t
        for e in await emulator.store.exchanges(room_id)
        for t in e["traffic"]
        if t["kind"] == "webhook"
    ]
    assert [w["detail"] for w in webhooks] == ["no resolved webhook URL registered: not delivered"]
    assert webhooks[0]["body"]["resolved_by"]["type"] == "admin"


async def test_an_unreachable_resolved_webhook_is_recorded_not_raised(
    client: TestClient[Any, Any], room_id: int, emulator: Emulator
) -> None:
    resp = await client.post(
        "/api/v1/app/webhook/mark_as_resolved",
        data={"webhook_url": "http://127.0.0.1:9/resolved", "is_webhook_enabled": "true"},
        headers=ADMIN,
    )
    assert resp.status == 200

    await desk_of(client).resolve(room_id)

    webhooks = [
        t
        for e in await emulator.store.exchanges(room_id)
        for t in e["traffic"]
        if t["kind"] == "webhook"
    ]
    assert webhooks[0]["status"] is None
    assert "delivery to http://127.0.0.1:9/resolved failed" in webhooks[0]["detail"]


async def test_injected_faults_hit_only_their_path_and_run_out(
    client: TestClient[Any, Any],
) -> None:
    desk_of(client).em.fail_next("/api/v2/divisions", status=502, times=2, retry_after=1)

    other = await client.get("/api/v2/channels", headers=ADMIN)
    first = await client.get("/api/v2/divisions", headers=ADMIN)
    second = await client.get("/api/v2/divisions", headers=ADMIN)
    third = await client.get("/api/v2/divisions", headers=ADMIN)

    assert [other.status, first.status, second.status, third.status] == [200, 502, 502, 200]
    assert first.headers["Retry-After"] == "1"


def keys_of(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON object (lists are not walked)."""
    if not isinstance(value, dict):
        return set()
    found = set()
    for key, inner in value.items():
        path = f"{prefix}{key}"
        found.add(path)
        found |= keys_of(inner, path + ".")
    return found


async def test_open_room_and_the_bot_webhook_in_the_documented_omnichannel_shape(
    client: TestClient[Any, Any], emulator: Emulator
) -> None:
    desk = desk_of(client)
    room = await desk.open_room("6281234@wa", "Harpi", "wa")
    comment = await emulator.store.add_comment(
        room_id=room["id"], email="6281234@wa", comment_type="text", message="halo"
    )
    sender = await emulator.store.get_user("6281234@wa")
    assert sender is not None
    sdk = webhook_body(MOBILE, comment, room, sender)

    body = omnichannel_body(sdk, app_code=APP, channel=desk.channel("wa"), source="wa")

    documented = json.loads(
        (Path(__file__).parent / "examples" / "omnichannel-documented-2025.json").read_text()
    )
    assert keys_of(documented) <= keys_of(body)
    update = Update.model_validate(body)
    assert update.room.id == str(room["id"])
    assert update.message.identity == f"utid:{comment['unique_temp_id']}"
    assert update.event_type == MOBILE
    found = detect_room(body)
    assert (found.omnichannel, found.source, found.channel_id) == (True, "wa", 2)
    assert detect_room(Update.model_validate(sdk)).source == "wa"  # room.options alone say it
    assert desk.services[room["id"]].source == "wa"
    assert sdk["payload"]["room"]["id"] == room["id"]  # the SDK body is left as it was


async def test_new_session_and_agent_allocation_bodies_parse_as_their_models(
    client: TestClient[Any, Any], emulator: Emulator
) -> None:
    desk = desk_of(client)
    room = await desk.open_room("ana@widget.local", "Ana", "qiscus")
    comment = await emulator.store.add_comment(
        room_id=room["id"], email="ana@widget.local", comment_type="text", message="hi"
    )
    sender = await emulator.store.get_user("ana@widget.local")
    assert sender is not None
    bot_body = omnichannel_body(
        webhook_body(MOBILE, comment, room, sender),
        app_code=APP,
        channel=desk.channel("qiscus"),
        source="qiscus",
    )

    session = NewSessionWebhook.model_validate(
        new_session_body(bot_body, created_at="2026-01-01T00:00:00Z")
    )
    allocation = AgentAllocationWebhook.model_validate(
        agent_allocation_body(bot_body, desk.agent_view(101), app_code=APP)
    )

    assert session.room_id == str(room["id"])
    assert session.room_log.source == "qiscus"
    assert session.room_log.user_id == "ana@widget.local"
    assert str(allocation.room_id) == str(room["id"])
    assert allocation.candidate_agent is not None
    assert allocation.candidate_agent.name == "Ayu"
    assert allocation.source == "qiscus"


async def test_open_room_refuses_an_unknown_channel(client: TestClient[Any, Any]) -> None:
    with pytest.raises(DeskError, match="no emulated channel 'fax'"):
        await desk_of(client).open_room("x@y.z", "X", "fax")


async def test_the_page_sees_the_desk_state(client: TestClient[Any, Any], room_id: int) -> None:
    await client.post(f"/bot/{room_id}/activate", json={"is_active": False}, headers=ADMIN)
    await client.post(
        "/api/v1/admin/service/assign_agent",
        data={"room_id": str(room_id), "agent_id": "102"},
        headers=ADMIN,
    )

    resp = await client.get("/emulator/api/omnichannel")
    state = await resp.json()

    assert resp.status == 200
    assert [d["name"] for d in state["divisions"]] == ["support", "sales"]
    bima = next(a for a in state["agents"] if a["id"] == 102)
    assert bima["current_customer_count"] == 1
    [service] = state["services"]
    assert service["room_id"] == str(room_id)
    assert (service["is_handled_by_bot"], service["is_waiting"]) == (False, False)
    assert service["agent_ids"] == [102]
