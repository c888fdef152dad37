"""Replies and desk calls of Omnichannel rooms: one `Delivery` that picks the path per room.

```
Sender ─▶ OutboxDelivery (durable, retried, in order per room) ─▶ RoomDelivery.deliver
            RoomDelivery: the room is an Omnichannel room (room memory)?
              no  ─▶ the Chat SDK's post_comment (DirectDelivery)
              yes ─▶ a desk call (DeskCall)       ─▶ activate / assign on the desk
                     a menu, source in text_menus ─▶ /bot as numbered text, choices remembered
                     anything else                ─▶ /bot
```
qbot remembers per room, in the storage (room state under the reserved `ROOM_KEY` user), that
a room is an Omnichannel room and its channel source, so ``ctx.send(room_id, ...)`` and the
outbox sweeper after a restart take the same path as the reply to the webhook. Desk calls
(bot off or on, assign an agent) travel as outbox records of the reserved comment type
`DESK_CALL`: queued, retried and ordered with the room's replies by the same outbox.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from qbot.errors import ConfigError, QbotError
from qbot.messages import Message, OutgoingComment
from qbot.omnichannel.menus import MENU_TYPES, MenuChoice
from qbot.sending import Lookup
from qbot.storage.base import state_key

if TYPE_CHECKING:
    from qbot.messages import Outgoing
    from qbot.messages.postback import PostbackSigner
    from qbot.omnichannel.client import OmnichannelClient
    from qbot.omnichannel.rooms import OmnichannelRoom
    from qbot.sending import Delivery
    from qbot.storage import Storage

__all__ = [
    "DESK_CALL",
    "MENU_KEY",
    "ROOM_KEY",
    "DeskCall",
    "RoomDelivery",
    "RoomInfo",
    "RoomMemory",
    "load_choices",
    "menu_key",
    "room_key",
]

log = structlog.get_logger("qbot.omnichannel")

DESK_CALL = "qbot_desk_call"
"""The comment type of an outbox record that is a desk call, never posted as a comment."""
ROOM_KEY = "qbot:omnichannel"
"""The reserved state user under which a room's Omnichannel memory is kept."""
MENU_KEY = "qbot:text-menu"
"""The reserved state user under which a room's latest text menu choices are kept."""


def room_key(room_id: str) -> str:
    """The state key of a room's Omnichannel memory."""
    return state_key(room_id, ROOM_KEY)


def menu_key(room_id: str) -> str:
    """The state key of a room's latest text menu choices."""
    return state_key(room_id, MENU_KEY)


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """What qbot remembers of an Omnichannel room: it is one, and its channel source."""

    source: str | None = None

    def dump(self) -> dict[str, Any]:
        return {"omnichannel": True, "source": self.source}

    @classmethod
    def load(cls, value: Any) -> RoomInfo | None:
        if not isinstance(value, dict) or not value.get("omnichannel"):
            return None
        source = value.get("source")
        return cls(source=source if isinstance(source, str) else None)


class RoomMemory:
    """Which rooms are Omnichannel rooms: in the storage, with a bounded cache in front.

    Args:
        storage: where the memory is kept.
        cache_size: rooms whose answer is kept in this process (the least recent dropped).
    """

    def __init__(self, storage: Storage, cache_size: int = 10_000) -> None:
        self.storage = storage
        self.cache_size = cache_size
        self._known: OrderedDict[str, RoomInfo | None] = OrderedDict()

    def _keep(self, room_id: str, info: RoomInfo | None) -> None:
        self._known[room_id] = info
        self._known.move_to_end(room_id)
        if len(self._known) > self.cache_size:
            self._known.popitem(last=False)

    def known(self, room_id: str) -> RoomInfo | None:
        """The cached answer (``None``: not an Omnichannel room, or not read yet)."""
        return self._known.get(room_id)

    def preload(self, room_id: str, value: Any) -> None:
        """Cache what was read with the room's state (``load_room``)."""
        self._keep(room_id, RoomInfo.load(value))

    async def get(self, room_id: str) -> RoomInfo | None:
        """The room's memory, read from the storage once per process."""
        if room_id not in self._known:
            self._keep(room_id, RoomInfo.load(await self.storage.get_state(room_key(room_id))))
        return self._known.get(room_id)

    async def remember(self, room_id: str, found: OmnichannelRoom) -> RoomInfo:
        """Keep that the room is an Omnichannel room (written only when it changes)."""
        info = RoomInfo(source=found.source or (self._known.get(room_id) or RoomInfo()).source)
        if await self.get(room_id) != info:
            await self.storage.set_state(room_key(room_id), info.dump())
            self._keep(room_id, info)
        return info


class DeskCall(Message):
    """A desk call sent through the outbox like a reply (see `DESK_CALL`).

    Args:
        call: ``activate`` (``active``), ``assign`` (``agent_id`` or ``division``).
        args: the call's arguments, JSON values.
    """

    CALLS = ("activate", "assign")

    def __init__(self, call: str, **args: Any) -> None:
        if call not in self.CALLS:
            raise QbotError(f"unknown desk call {call!r}: one of {', '.join(self.CALLS)}")
        self.call = call
        self.args = args

    def to_outgoing(self, *, signer: PostbackSigner | None = None) -> list[Outgoing]:
        return [OutgoingComment(type=DESK_CALL, message=self.call, payload=dict(self.args))]


class RoomDelivery:
    """Posts through the Chat SDK or Omnichannel's ``/bot``, as the room's memory says.

    Args:
        chat: the Chat SDK delivery (``post_comment``).
        omnichannel: the Omnichannel client, ``None`` when the bot has none.
        rooms: the room memory.
        text_menus: channel sources whose menus are sent as numbered text.
    """

    def __init__(
        self,
        chat: Delivery,
        omnichannel: OmnichannelClient | None,
        rooms: RoomMemory,
        text_menus: list[str],
    ) -> None:
        self.chat = chat
        self.omnichannel = omnichannel
        self.rooms = rooms
        self.text_menus = frozenset(text_menus)

    async def deliver(self, room_id: int | str, outgoing: Outgoing, unique_temp_id: str) -> Any:
        room = str(room_id)
        info = await self.rooms.get(room)
        is_desk = isinstance(outgoing, OutgoingComment) and outgoing.type == DESK_CALL
        if info is None or self.omnichannel is None or not isinstance(outgoing, OutgoingComment):
            if is_desk:  # not an Omnichannel room: there is no desk to tell
                log.info("desk.skipped", to_room=room, reason="not an Omnichannel room")
                return None
            return await self.chat.deliver(room_id, outgoing, unique_temp_id)
        omni = self.omnichannel
        if is_desk:
            return await self._desk(omni, room, outgoing.message, outgoing.payload or {})
        if info.source not in self.text_menus:
            return await omni.send(room, outgoing)
        if outgoing.type in MENU_TYPES:
            menu = await omni.send_text_menu(room, outgoing)
            choices = [c.model_dump() for c in menu.choices]
            await self.rooms.storage.set_state(menu_key(room), choices)
            return menu
        sent = await omni.send(room, outgoing)
        # A later question's "2" must not pick a choice of a menu it replaced.
        await self.rooms.storage.delete_state(menu_key(room))
        return sent

    async def find(self, room_id: int | str, unique_temp_id: str) -> bool:
        """Whether a reply that may have landed unrecorded is in the room (see ``Lookup``).

        Only the Chat SDK lets us look: Omnichannel's ``/bot`` keeps no ``unique_temp_id``, so
        for its rooms the answer is "not found" and the reply is posted again.
        """
        info = await self.rooms.get(str(room_id))
        if (info is None or self.omnichannel is None) and isinstance(self.chat, Lookup):
            return await self.chat.find(room_id, unique_temp_id)
        return False

    async def _desk(
        self, omni: OmnichannelClient, room: str, call: str, args: dict[str, Any]
    ) -> Any:
        if call == "activate":
            active = bool(args.get("active"))
            result = await omni.activate_bot(room, active)
            log.info("desk.bot_activated" if active else "desk.bot_deactivated", to_room=room)
            return result
        if call == "assign":
            agent_id = args.get("agent_id")
            division = args.get("division")
            if agent_id is None and division is not None:
                try:
                    agent = await omni.least_busy_agent(division)
                except ConfigError as e:  # no such division: retrying would not help
                    log.error("desk.unknown_division", to_room=room, error=str(e))
                    return None
                if agent is None:
                    log.warning("desk.no_agent", to_room=room, division=division)
                    return None
                agent_id = agent.id
            if agent_id is None:
                return None
            assigned = await omni.assign_agent(room, agent_id)
            log.info("desk.agent_assigned", to_room=room, agent_id=agent_id, division=division)
            return assigned
        raise QbotError(f"unknown desk call {call!r} in the outbox")


def load_choices(value: Any) -> list[MenuChoice]:
    """The text menu choices kept in room state (``[]`` when none or unreadable)."""
    if not isinstance(value, list):
        return []
    choices = []
    for item in value:
        try:
            choices.append(MenuChoice.model_validate(item))
        except ValueError:
            return []
    return choices
