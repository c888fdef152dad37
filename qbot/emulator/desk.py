"""The emulated Omnichannel agent desk, independent of HTTP: services, agents, the resolved webhook.

:mod:`qbot.emulator.omnichannel` serves it over HTTP; the future desk pane and the test kit can
drive :class:`OmnichannelDesk` directly (assign, resolve) the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from qbot._json import dumps, dumps_text
from qbot.emulator.core import Deliver, Emulator
from qbot.emulator.omnichannel_bodies import omnichannel_body
from qbot.omnichannel.client import admin_email
from qbot.omnichannel.rooms import detect_room

if TYPE_CHECKING:
    from qbot.emulator.whatsapp import TemplateCatalog

__all__ = [
    "OFFICE_HOURS",
    "SEED_AGENTS",
    "SEED_CHANNELS",
    "SEED_DIVISIONS",
    "DeskError",
    "OmnichannelDesk",
    "Service",
    "as_bool",
    "as_int",
    "customer_of",
    "required",
    "resolved_webhook_body",
    "room_number",
]

log = structlog.get_logger()

SEED_DIVISIONS: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "support"},
    {"id": 2, "name": "sales"},
)
SEED_AGENTS: tuple[dict[str, Any], ...] = (
    {"id": 101, "name": "Ayu", "email": "ayu@desk.qbot.local", "divisions": [1], "on": True},
    {"id": 102, "name": "Bima", "email": "bima@desk.qbot.local", "divisions": [1, 2], "on": True},
    {"id": 103, "name": "Citra", "email": "citra@desk.qbot.local", "divisions": [2], "on": False},
)
SEED_CHANNELS: dict[str, list[dict[str, Any]]] = {
    "qiscus_channels": [{"id": 1, "name": "Web widget", "is_active": True}],
    "wa_channels": [{"id": 2, "name": "WhatsApp", "is_active": True}],
    "ig_channels": [{"id": 3, "name": "Instagram", "is_active": True}],
    "fb_channels": [{"id": 4, "name": "Messenger", "is_active": True}],
    "line_channels": [{"id": 5, "name": "Line", "is_active": True}],
    "telegram_channels": [{"id": 6, "name": "Telegram", "is_active": True}],
}
OFFICE_HOURS: dict[str, Any] = {
    "timezone": "+07:00",
    "online_message": "Hi! An agent will be with you shortly.",
    "offline_message": "We are closed now; we answer from 08:00 to 17:00, Monday to Friday.",
    "office_hours": [{"day": day, "starttime": "08:00", "endtime": "17:00"} for day in range(1, 6)],
}


class DeskError(Exception):
    """A call Omnichannel would refuse; answered as ``{"status", "error": {"message"}}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Service:
    """A room's service on the desk."""

    room_id: int
    source: str
    channel_id: int | str | None
    is_handled_by_bot: bool = True
    is_waiting: bool = False
    resolved: bool = False
    agent_ids: list[int] = field(default_factory=list)
    notes: str | None = None
    tags: list[str] = field(default_factory=list)
    user_properties: list[dict[str, Any]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The service record Omnichannel answers ``activate`` with."""
        return {
            "id": self.room_id,
            "room_id": str(self.room_id),
            "is_handled_by_bot": self.is_handled_by_bot,
            "is_waiting": self.is_waiting,
            "resolved": self.resolved,
            "channel_id": self.channel_id,
            "source": self.source,
            "notes": self.notes,
            "agent_ids": list(self.agent_ids),
        }


def required(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None or value == "" or value == []:
        raise DeskError(400, f"{name} is required")
    return value


def as_int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as e:
        raise DeskError(400, f"{name} must be an integer, got {value!r:.80}") from e


def as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.casefold() in ("true", "false", "1", "0"):
        return value.casefold() in ("true", "1")
    raise DeskError(400, f"{name} must be true or false, got {value!r:.80}")


def room_number(value: Any) -> int | None:
    text = str(value)
    return int(text) if text.isdigit() else None


class OmnichannelDesk:
    """The emulated agent desk: services, agents, divisions, tags, customer properties.

    Args:
        emulator: the emulator whose rooms, users and inspector log the desk shares.
        deliver: replaces HTTP delivery of the resolved webhook (``(raw, headers) ->
            (status, detail)``, as `Emulator` takes); else it is POSTed to the URL registered
            with ``/api/v1/app/webhook/mark_as_resolved`` or given as ``resolved_webhook_url``.
        resolved_webhook_url: where the resolved webhook goes until the API registers another.

    ``whatsapp`` is the app's WhatsApp templates (`qbot.emulator.whatsapp.TemplateCatalog`),
    set when the desk is served.
    """

    whatsapp: TemplateCatalog

    def __init__(
        self,
        emulator: Emulator,
        *,
        deliver: Deliver | None = None,
        resolved_webhook_url: str | None = None,
    ) -> None:
        self.em = emulator
        self.deliver = deliver
        self.resolved_webhook_url = resolved_webhook_url
        self.bot_webhook_url: str | None = None
        self.admin_email = admin_email(emulator.config.app_id)
        self.divisions = [dict(d) for d in SEED_DIVISIONS]
        self.agents = {
            a["id"]: {
                "id": a["id"],
                "name": a["name"],
                "email": a["email"],
                "is_available": a["on"],
                "division_ids": list(a["divisions"]),
            }
            for a in SEED_AGENTS
        }
        self.services: dict[int, Service] = {}
        self._tag_ids: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None
        self._admin_ready = False

    def tag_id(self, name: str) -> int:
        """The id of room tag ``name`` (numbered as tags are first used, like Omnichannel's)."""
        return self._tag_ids.setdefault(name, len(self._tag_ids) + 1)

    async def close(self) -> None:
        """Close the HTTP session used for the resolved webhook."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def ensure_admin(self) -> None:
        """Register the app admin (who ``/bot`` posts as) once, not on every message."""
        if not self._admin_ready:
            await self.em.store.upsert_user(self.admin_email, self.em.config.bot_name)
            self._admin_ready = True

    def deliver_as_omnichannel(self) -> None:
        """Deliver the desk's rooms' messages as Omnichannel does (``qbot dev --omnichannel``).

        In Omnichannel's 2025 body (top-level ``app_code`` and ``channel``), and not at all while
        the bot is off for the room (an agent has it).
        """
        self.em.reshape = self.reshape

    def reshape(self, body: dict[str, Any], room: dict[str, Any]) -> dict[str, Any] | None:
        """``body`` in Omnichannel's shape for a desk room; ``None`` while its bot is off."""
        service = self.services.get(int(room["id"]))
        if service is None:
            return body
        if not service.is_handled_by_bot:
            return None
        channel = SEED_CHANNELS.get(f"{service.source}_channels") or [{"id": 0, "name": ""}]
        return omnichannel_body(
            body, app_code=self.em.config.app_id, channel=channel[0], source=service.source
        )

    def status(self, service: Service) -> str:
        """Who handles the room: ``resolved``, ``agent: NAME``, ``waiting`` or ``bot``."""
        if service.resolved:
            return "resolved"
        if service.agent_ids:
            return "agent: " + ", ".join(self.agents[i]["name"] for i in service.agent_ids)
        if not service.is_handled_by_bot:
            return "waiting"
        return "bot"

    # -- state -----------------------------------------------------------------------------------
    @staticmethod
    def channel(source: str) -> dict[str, Any]:
        """The seeded channel of a source (``wa``, ``qiscus``...).

        Raises:
            DeskError: no channel of that source is seeded.
        """
        found = SEED_CHANNELS.get(f"{source}_channels")
        if not found:
            known = ", ".join(k.removesuffix("_channels") for k in SEED_CHANNELS)
            raise DeskError(400, f"no emulated channel {source!r}: one of {known}")
        return dict(found[0])

    async def open_room(self, customer_email: str, name: str, source: str = "wa") -> dict[str, Any]:
        """A customer's room on a channel, as Omnichannel creates it.

        A group of the customer and the bot whose ``options`` name the channel (``source``,
        ``channel``, ``channel_details``), with its service open and handled by the bot.
        """
        channel = self.channel(source)
        options = {
            "channel": source,
            "source": source,
            "channel_details": {"channel_id": channel["id"], "name": channel["name"]},
            "is_resolved": False,
            "is_waiting": False,
        }
        await self.em.store.upsert_user(customer_email, name)
        room = await self.em.store.create_room(
            name=name,
            room_type="group",
            creator=customer_email,
            participants=[self.em.config.bot_email],
            options=dumps_text(options),
        )
        self.em.publish({"event": "room", "room": room})
        await self.service(room["id"])
        return room

    async def service(self, room_id: Any) -> Service:
        """The room's service, opened on first use from the room's options (its channel)."""
        number = room_number(room_id)
        room = await self.em.store.get_room(number) if number is not None else None
        if number is None or room is None:
            raise DeskError(404, f"room {room_id!r} not found")
        service = self.services.get(number)
        if service is None:
            body = {"payload": {"room": {"options": room["options"]}}}
            found = detect_room(body, "always")
            service = Service(number, found.source or "qiscus", found.channel_id)
            self.services[number] = service
        return service

    def agent_view(self, agent_id: int) -> dict[str, Any]:
        """An agent as the API lists it, with its divisions and current customer count."""
        agent = self.agents[agent_id]
        count = sum(1 for s in self.services.values() if agent_id in s.agent_ids and not s.resolved)
        roles = [d for d in self.divisions if d["id"] in agent["division_ids"]]
        return {
            "id": agent["id"],
            "name": agent["name"],
            "email": agent["email"],
            "is_available": agent["is_available"],
            "current_customer_count": count,
            "type": 2,
            "type_as_string": "agent",
            "user_roles": roles,
        }

    def _agent(self, value: Any) -> dict[str, Any]:
        agent_id = as_int(value, "agent_id")
        if agent_id not in self.agents:
            raise DeskError(404, f"agent {agent_id} not found: the desk has {sorted(self.agents)}")
        return self.agent_view(agent_id)

    def snapshot(self) -> dict[str, Any]:
        """The desk as a page shows it: divisions, agents, every room's service, webhook URLs."""
        return {
            "app_code": self.em.config.app_id,
            "admin_email": self.admin_email,
            "divisions": [dict(d) for d in self.divisions],
            "agents": [self.agent_view(i) for i in self.agents],
            "services": [
                s.record() | {"tags": list(s.tags), "status": self.status(s)}
                for s in self.services.values()
            ],
            "delivers_as_omnichannel": self.em.reshape is not None,
            "bot_webhook_url": self.bot_webhook_url,
            "resolved_webhook_url": self.resolved_webhook_url,
        }

    async def assign(self, room_id: Any, agent_id: Any, *, replace: bool = False) -> dict[str, Any]:
        """Put an agent on a room: the agent joins the room and the room stops waiting."""
        service = await self.service(room_id)
        agent = self._agent(agent_id)
        if replace:
            service.agent_ids = [agent["id"]]
        elif agent["id"] not in service.agent_ids:
            service.agent_ids.append(agent["id"])
        service.is_waiting = False
        service.resolved = False
        await self.em.store.upsert_user(agent["email"], agent["name"])
        await self.em.store.add_participants(service.room_id, [agent["email"]])
        room = await self.em.store.get_room(service.room_id)
        if room is not None:
            self.em.publish({"event": "room", "room": room})
        return self.agent_view(agent["id"])

    async def resolve(
        self, room_id: Any, *, agent_id: int | None = None, notes: str | None = None
    ) -> dict[str, Any]:
        """Resolve a room (as the agent ``agent_id``, else as the admin) and send the webhook.

        Returns:
            The resolved webhook body, delivered before this returns.

        Raises:
            DeskError: 409 when the room is already resolved (the webhook is sent once).
        """
        service = await self.service(room_id)
        if service.resolved:
            raise DeskError(409, f"room {service.room_id} is already resolved")
        service.resolved = True
        service.is_waiting = False
        if notes is not None:
            service.notes = notes
        if agent_id is None and service.agent_ids:
            agent_id = service.agent_ids[-1]
        resolver = (
            self._agent(agent_id)
            if agent_id is not None
            else {"id": 0, "name": "Admin", "email": self.admin_email, "is_available": True}
        )
        body = await resolved_webhook_body(self, service, resolver)
        await self._send_resolved(service.room_id, body, f"resolved by {resolver['name']}")
        return body

    async def _send_resolved(self, room_id: int, body: dict[str, Any], title: str) -> None:
        raw = dumps(body)
        headers = {"Content-Type": "application/json"}
        url = self.resolved_webhook_url
        # An exchange of its own: the webhook and what the bot does about it (/activate, the
        # survey) are not filed under the customer's last message.
        exchange_id = await self.em.store.start_exchange(room_id, None, title)
        exchange = {"id": exchange_id, "room_id": room_id, "comment_id": None, "title": title}
        self.em.publish({"event": "exchange", "exchange": exchange | {"traffic": []}})
        target = url if self.deliver is None else "(in process)"
        entry = await self.em.store.add_traffic(
            exchange_id,
            kind="webhook",
            method="POST",
            path=target or "(no resolved webhook URL)",
            body=body,
            status=None,
            detail="sending",
        )
        self.em.publish({"event": "traffic", "room_id": room_id, "traffic": dict(entry)})
        if self.deliver is not None:
            status, detail = await self.deliver(raw, headers)
        elif url is None:
            status, detail = None, "no resolved webhook URL registered: not delivered"
        else:
            status, detail = await self._post(url, raw, headers)
        await self.em.store.finish_traffic(entry["id"], status, detail)
        entry.update(status=status, detail=detail)
        self.em.publish({"event": "traffic", "room_id": room_id, "traffic": entry})

    async def _post(self, url: str, raw: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.em.config.webhook_timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        try:
            async with self._session.post(url, data=raw, headers=headers) as resp:
                return resp.status, (await resp.text())[:2000]
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("emulator.omnichannel.webhook_failed", url=url, error=str(e))
            return None, f"delivery to {url} failed: {e.__class__.__name__}: {e}"


async def customer_of(desk: OmnichannelDesk, service: Service) -> dict[str, Any]:
    """The room's customer: its first participant who is neither the bot nor an agent."""
    room = await desk.em.store.get_room(service.room_id)
    staff = {desk.em.config.bot_email, desk.em.config.system_email, desk.admin_email}
    staff.update(a["email"] for a in desk.agents.values())
    for member in room["participants"] if room else []:
        if member["email"] not in staff:
            return {
                "user_id": member["email"],
                "name": member["username"],
                "avatar": member["avatar_url"],
            }
    return {"user_id": None, "name": "", "avatar": None}


async def resolved_webhook_body(
    desk: OmnichannelDesk, service: Service, resolver: dict[str, Any]
) -> dict[str, Any]:
    """The documented mark-as-resolved webhook body for a room."""
    comments = await desk.em.store.comments(service.room_id, limit=100)
    ids = [c["id"] for c in comments]
    customer = await customer_of(desk, service)
    return {
        "service": {
            "id": service.room_id,
            "room_id": str(service.room_id),
            "is_resolved": True,
            "notes": service.notes,
            "first_comment_id": str(min(ids)) if ids else None,
            "last_comment_id": str(max(ids)) if ids else None,
            "source": service.source,
        },
        "resolved_by": {
            "id": resolver["id"],
            "email": resolver["email"],
            "name": resolver["name"],
            "type": "agent" if resolver["id"] else "admin",
            "is_available": resolver["is_available"],
        },
        "customer": {**customer, "additional_info": list(service.user_properties)},
    }
