"""OmnichannelClient against the emulator's Omnichannel endpoints, over real HTTP on port 0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from qbot.client import RetryPolicy
from qbot.config import load_settings
from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, create_emulator_app
from qbot.emulator.desk import OmnichannelDesk
from qbot.emulator.omnichannel import OMNICHANNEL_KEY
from qbot.errors import (
    ConfigError,
    MessageBuildError,
    QiscusAPIError,
    QiscusNotFound,
    QiscusRateLimited,
    QiscusServerError,
    QiscusUnauthorized,
)
from qbot.messages import Buttons, Card, Carousel, Custom, SystemEvent, Text
from qbot.messages.base import OutgoingComment
from qbot.omnichannel import (
    Agent,
    OmnichannelClient,
    ResolvedWebhook,
    ServiceRecord,
    admin_email,
)

APP = "kovof-123"
SECRET = "omni-secret"
FAST = RetryPolicy(max_attempts=3, base_delay=0, max_delay=0, jitter=False)
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@dataclass
class Desk:
    emulator: Emulator
    desk: OmnichannelDesk
    url: str
    room_id: int

    async def calls(self, path: str | None = None) -> list[dict[str, Any]]:
        """Every Omnichannel call the inspector recorded for the room (to ``path``)."""
        traffic = [
            t
            for exchange in await self.emulator.store.exchanges(self.room_id)
            for t in exchange["traffic"]
            if t["kind"] == "api"
        ]
        return [t for t in traffic if path is None or t["path"] == path]

    async def comments(self) -> list[dict[str, Any]]:
        return list(reversed(await self.emulator.store.comments(self.room_id, limit=50)))


@pytest_asyncio.fixture
async def desk(tmp_path: Path, aiohttp_server: ServerFactory) -> AsyncIterator[Desk]:
    config = EmulatorConfig(app_id=APP, secret_key=SECRET, bot_email="bot@shop.local")
    emulator = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"))
    await emulator.start()
    app = create_emulator_app(emulator, manage=False)
    server = await aiohttp_server(app)
    await emulator.store.upsert_user("6281234@wa", "Harpi")
    options = json.dumps({"channel": "wa", "source": "wa", "channel_details": {"channel_id": 2}})
    room = await emulator.store.create_room(
        name="Harpi",
        room_type="group",
        creator="6281234@wa",
        participants=[config.bot_email],
        options=options,
    )
    yield Desk(emulator, app[OMNICHANNEL_KEY], str(server.make_url("")).rstrip("/"), room["id"])
    await emulator.close()


@pytest_asyncio.fixture
async def omni(desk: Desk) -> AsyncIterator[OmnichannelClient]:
    async with OmnichannelClient(APP, SECRET, base_url=desk.url, retry=FAST) as client:
        yield client


async def test_send_bot_message_posts_as_the_app_admin_with_a_string_room_id(
    omni: OmnichannelClient, desk: Desk
) -> None:
    sent = await omni.send_bot_message(desk.room_id, "hello from the bot")

    [call] = await desk.calls(f"/{APP}/bot")
    assert call["method"] == "POST"
    assert call["status"] == 200
    assert call["body"]["sender_email"] == f"{APP}_admin@qismo.com"
    assert call["body"]["room_id"] == str(desk.room_id)
    assert call["body"]["type"] == "text"
    [comment] = await desk.comments()
    assert comment["email"] == admin_email(APP)
    assert comment["message"] == "hello from the bot"
    assert str(sent.id) == str(comment["id"])


@pytest.mark.parametrize(
    "message",
    [
        Text("plain"),
        Buttons("Pick one").postback("Track my order", action="track").link("Docs", "https://d.io"),
        Card(title="Shoes", description="Red", image_url="https://i.io/s.png").postback(
            "Buy", action="buy", data={"sku": 7}
        ),
        Carousel(
            [
                Card(title="A", url="https://a.example").postback("Pick A", action="pick"),
                Card(title="B", url="https://b.example"),
            ]
        ),
        Custom({"type": "promo", "content": {"code": "HEMAT10"}}),
    ],
    ids=["text", "buttons", "card", "carousel", "custom"],
)
async def test_send_delivers_every_builder_type_with_its_payload_object(
    omni: OmnichannelClient, desk: Desk, message: Any
) -> None:
    [outgoing] = message.to_outgoing()

    await omni.send(desk.room_id, outgoing)

    [call] = await desk.calls(f"/{APP}/bot")
    assert call["body"]["type"] == outgoing.type
    assert call["body"]["message"] == outgoing.message
    assert call["body"].get("payload") == outgoing.payload  # an object, not a JSON string
    [comment] = await desk.comments()
    assert comment["type"] == outgoing.type
    assert comment["payload"] == outgoing.payload


async def test_send_text_menu_sends_numbered_text_and_returns_the_choices(
    omni: OmnichannelClient, desk: Desk
) -> None:
    [outgoing] = (
        Buttons("How can we help?")
        .postback("Track my order", action="track")
        .postback("Talk to an agent", action="human")
        .to_outgoing()
    )
    assert isinstance(outgoing, OutgoingComment)

    menu = await omni.send_text_menu(desk.room_id, outgoing)

    [comment] = await desk.comments()
    assert comment["type"] == "text"
    assert comment["message"] == "How can we help?\n\n1. Track my order\n2. Talk to an agent"
    assert [c.label for c in menu.choices] == ["Track my order", "Talk to an agent"]
    with pytest.raises(MessageBuildError):
        await omni.send_text_menu(desk.room_id, Text("plain").to_outgoing()[0])  # type: ignore[arg-type]


async def test_send_file_sends_a_file_attachment(omni: OmnichannelClient, desk: Desk) -> None:
    await omni.send_file(desk.room_id, "https://files.io/menu.pdf", caption="Our menu")

    [comment] = await desk.comments()
    assert comment["type"] == "file_attachment"
    assert comment["payload"] == {"url": "https://files.io/menu.pdf", "caption": "Our menu"}


async def test_send_refuses_a_system_event_with_a_named_error(
    omni: OmnichannelClient, desk: Desk
) -> None:
    [event] = SystemEvent.custom({"type": "note", "message": "x"}).to_outgoing()

    with pytest.raises(MessageBuildError, match="system events"):
        await omni.send(desk.room_id, event)  # type: ignore[arg-type]
    assert await desk.calls() == []


async def test_a_plain_text_200_is_a_failed_send_and_not_retried(
    omni: OmnichannelClient, desk: Desk
) -> None:
    desk.emulator.fail_next(f"/{APP}/bot", status=200, body="sender_email is invalid")

    with pytest.raises(QiscusAPIError) as info:
        await omni.send_bot_message(desk.room_id, "hi")

    assert info.value.status == 200
    assert "sender_email is invalid" in str(info.value)
    assert len(await desk.calls(f"/{APP}/bot")) == 1
    assert await desk.comments() == []


async def test_a_json_200_that_carries_an_error_is_a_failed_send(
    omni: OmnichannelClient, desk: Desk
) -> None:
    desk.emulator.fail_next(None, status=200, body=b'{"errors": "room is already resolved"}')

    with pytest.raises(QiscusAPIError, match="room is already resolved") as info:
        await omni.send_bot_message(desk.room_id, "hi")
    assert info.value.status == 200


async def test_the_emulator_answers_a_wrong_sender_with_a_plain_text_200(
    desk: Desk, aiohttp_client: Any
) -> None:
    # What the real endpoint does, seen without the client in between.
    headers = {"QISCUS_SDK_SECRET": SECRET}
    body = {"sender_email": "bot@shop.local", "room_id": str(desk.room_id), "message": "x"}
    async with (
        OmnichannelClient(APP, SECRET, base_url=desk.url) as omni,
        omni._http.session().post(f"{desk.url}/{APP}/bot", json=body, headers=headers) as resp,
    ):
        assert resp.status == 200
        assert await resp.text() == "sender_email is invalid"


async def test_5xx_and_429_are_retried_until_the_send_succeeds(
    omni: OmnichannelClient, desk: Desk
) -> None:
    desk.emulator.fail_next(f"/{APP}/bot", status=503)
    desk.emulator.fail_next(f"/{APP}/bot", status=429, retry_after=0)

    with capture_logs() as logs:
        await omni.send_bot_message(desk.room_id, "eventually")

    statuses = [c["status"] for c in await desk.calls(f"/{APP}/bot")]
    assert statuses == [503, 429, 200]
    assert [e["attempt"] for e in logs if e["event"] == "qiscus.retry"] == [1, 2]
    assert [c["message"] for c in await desk.comments()] == ["eventually"]


async def test_retries_give_up_with_the_last_error(omni: OmnichannelClient, desk: Desk) -> None:
    desk.emulator.fail_next(None, status=503, times=5)

    with pytest.raises(QiscusServerError) as info:
        await omni.activate_bot(desk.room_id, False)
    assert info.value.status == 503
    assert len(await desk.calls()) == 3

    desk.emulator.fail_next(None, status=429, times=5, retry_after=0)
    with pytest.raises(QiscusRateLimited):
        await omni.activate_bot(desk.room_id, False)


async def test_a_wrong_secret_is_unauthorized_and_never_logged(desk: Desk) -> None:
    async with OmnichannelClient(APP, "wrong-secret", base_url=desk.url, retry=FAST) as omni:
        with capture_logs() as logs, pytest.raises(QiscusUnauthorized) as info:
            await omni.divisions()

    assert "Qiscus-Secret-Key" in info.value.message
    assert "wrong-secret" not in repr(logs) + str(info.value) + repr(omni)


async def test_an_unknown_room_is_not_found(omni: OmnichannelClient) -> None:
    with pytest.raises(QiscusNotFound, match="room '999' not found"):
        await omni.activate_bot(999, False)


async def test_activate_turns_the_bot_off_and_on_for_the_room(
    omni: OmnichannelClient, desk: Desk
) -> None:
    off = await omni.activate_bot(desk.room_id, False)
    assert isinstance(off, ServiceRecord)
    assert off.room_id == str(desk.room_id)
    assert off.is_handled_by_bot is False
    assert off.is_waiting is True
    assert off.source == "wa"
    [call] = await desk.calls(f"/bot/{desk.room_id}/activate")
    assert call["body"]["is_active"] is False

    on = await omni.activate_bot(desk.room_id)
    assert on.is_handled_by_bot is True


async def test_divisions_agents_and_the_least_busy_agent_of_a_division(
    omni: OmnichannelClient, desk: Desk
) -> None:
    assert [d.name for d in await omni.divisions()] == ["support", "sales"]
    everyone = await omni.agents()
    assert {a.name for a in everyone} == {"Ayu", "Bima", "Citra"}
    assert [a.name for a in await omni.agents(search="ayu", scope="name")] == ["Ayu"]

    support = await omni.agents_by_division(1, is_available=True, sort="asc")
    assert {a.name for a in support} == {"Ayu", "Bima"}
    assert all(a.user_roles and a.current_customer_count == 0 for a in support)

    # Ayu takes the room: the least busy agent of support is now Bima.
    added = await omni.assign_agent(desk.room_id, 101)
    assert isinstance(added, Agent)
    assert added.name == "Ayu"
    busiest_last = await omni.least_busy_agent("Support")
    assert busiest_last is not None
    assert busiest_last.name == "Bima"
    by_id = await omni.least_busy_agent(1)
    assert by_id is not None
    assert by_id.name == "Bima"
    # Nobody available in sales but Bima; Citra is away.
    available = await omni.available_agents(desk.room_id)
    assert [a.name for a in available] == ["Bima", "Ayu"]


async def test_an_unknown_division_names_the_known_ones(omni: OmnichannelClient) -> None:
    with pytest.raises(ConfigError, match=r"no Omnichannel division 'billing'.*'support'"):
        await omni.least_busy_agent("billing")


async def test_assign_agent_sends_form_fields_and_the_agent_joins_the_room(
    omni: OmnichannelClient, desk: Desk
) -> None:
    await omni.assign_agent(desk.room_id, 102, replace_latest_agent=True, max_agent=1)

    [call] = await desk.calls("/api/v1/admin/service/assign_agent")
    assert call["body"]["room_id"] == str(desk.room_id)
    assert call["body"]["agent_id"] == "102"
    assert call["body"]["replace_latest_agent"] == "true"
    room = await desk.emulator.store.get_room(desk.room_id)
    assert room is not None
    assert "bima@desk.qbot.local" in {p["email"] for p in room["participants"]}
    detail = await omni.customer_room(desk.room_id)
    assert detail.is_waiting is False
    assert detail.model_extra is not None
    assert [a["name"] for a in detail.model_extra["agents"]] == ["Bima"]


async def test_mark_as_resolved_sends_the_documented_resolved_webhook(
    omni: OmnichannelClient, desk: Desk, aiohttp_server: ServerFactory
) -> None:
    received: list[dict[str, Any]] = []

    async def webhook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"ok": True})

    receiver = web.Application()
    receiver.router.add_post("/webhook/resolved", webhook)
    server = await aiohttp_server(receiver)
    await omni.set_resolved_webhook(str(server.make_url("/webhook/resolved")))
    await omni.update_user_info(desk.room_id, plan="gold")
    await omni.assign_agent(desk.room_id, 101)
    await omni.send_bot_message(desk.room_id, "thanks")

    service = await omni.mark_as_resolved(desk.room_id, notes="done", last_comment_id=42)

    assert service.room_id == str(desk.room_id)
    assert service.is_resolved is True
    assert service.notes == "done"
    assert service.last_comment_id == "42"
    [body] = received
    resolved = ResolvedWebhook.model_validate(body)
    assert resolved.room_id == str(desk.room_id)
    assert resolved.service.is_resolved is True
    assert resolved.service.source == "wa"
    assert resolved.resolved_by.name == "Ayu"
    assert resolved.customer.user_id == "6281234@wa"
    assert resolved.customer.additional_info == [{"key": "plan", "value": "gold"}]
    assert (await omni.customer_room(desk.room_id)).is_resolved is True
    webhooks = [
        t
        for e in await desk.emulator.store.exchanges(desk.room_id)
        for t in e["traffic"]
        if t["kind"] == "webhook"
    ]
    assert [(w["status"], w["body"]["service"]["room_id"]) for w in webhooks] == [
        (200, str(desk.room_id))
    ]


async def test_room_tags_are_added_and_listed(omni: OmnichannelClient, desk: Desk) -> None:
    tag = await omni.add_room_tag(desk.room_id, "vip")
    await omni.add_room_tag(desk.room_id, "complaint")

    assert tag.name == "vip"
    assert [t.name for t in await omni.room_tags(desk.room_id)] == ["vip", "complaint"]
    with pytest.raises(MessageBuildError, match="empty"):
        await omni.add_room_tag(desk.room_id, "  ")


async def test_user_info_update_merges_while_set_replaces(
    omni: OmnichannelClient, desk: Desk
) -> None:
    assert await omni.user_info(desk.room_id) == {}
    await omni.set_user_info(desk.room_id, {"name": "Harpi", "city": "Bandung"})

    merged = await omni.update_user_info(desk.room_id, plan="gold", city="Jakarta")

    expected = {"name": "Harpi", "city": "Jakarta", "plan": "gold"}
    assert merged == expected
    assert await omni.user_info(desk.room_id) == expected
    calls = await desk.calls(f"/api/v1/qiscus/room/{desk.room_id}/user_info")
    write = [c for c in calls if c["method"] == "POST"][-1]
    assert {p["key"] for p in write["body"]["user_properties"]} == set(expected)

    assert await omni.set_user_info(desk.room_id, {"only": 1}) == {"only": 1}


async def test_customer_rooms_channels_and_office_hours(
    omni: OmnichannelClient, desk: Desk
) -> None:
    await omni.activate_bot(desk.room_id, False)

    [room] = await omni.customer_rooms(status="unresolved")
    assert room.room_id == str(desk.room_id)
    assert room.source == "wa"
    assert room.user_id == "6281234@wa"
    assert await omni.customer_rooms(status="resolved") == []
    by_source = (await omni.channels()).by_source()
    assert {"wa", "qiscus", "ig", "fb", "line", "telegram"} <= set(by_source)
    assert by_source["wa"][0].name == "WhatsApp"
    hours = await omni.office_hours()
    assert hours.timezone == "+07:00"
    assert [h.day for h in hours.office_hours] == [1, 2, 3, 4, 5]


async def test_the_bot_webhook_can_be_registered(omni: OmnichannelClient, desk: Desk) -> None:
    await omni.set_bot_webhook("https://bot.example/webhook")

    assert desk.desk.bot_webhook_url == "https://bot.example/webhook"


def test_client_refuses_missing_credentials_and_bad_urls() -> None:
    with pytest.raises(ConfigError, match="app_code"):
        OmnichannelClient("", SECRET)
    with pytest.raises(ConfigError, match="secret_key"):
        OmnichannelClient(APP, "")
    with pytest.raises(ConfigError, match="http"):
        OmnichannelClient(APP, SECRET, base_url="multichannel.qiscus.com")


def test_from_settings_defaults_the_app_code_to_the_app_id(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("qiscus:\n  app_id: kovof-123\n  secret_key: s\nbot:\n  email: b@x.io\n")

    client = OmnichannelClient.from_settings(load_settings(path))

    assert client.app_code == "kovof-123"
    assert client.bot_email == "kovof-123_admin@qismo.com"
    assert client.base_url == "https://multichannel.qiscus.com"
    assert "s" not in repr(client).split("app_code")[0]


def test_agent_models_drop_authentication_tokens() -> None:
    agent = Agent.model_validate({"id": 1, "name": "Ayu", "authentication_token": "tok-123"})

    assert "tok-123" not in repr(agent)
    assert "authentication_token" not in agent.model_dump()
