"""WhatsApp's 24-hour window: when the customer last wrote, and what may be sent now.

WhatsApp takes free-form messages only within 24 hours (``omnichannel.whatsapp.window_hours``)
of the customer's last message. qbot records, per Omnichannel WhatsApp room, when the customer
last wrote (by ``dispatcher.clock``), in the storage (state key `window_key`), written in the
same commit as the message's state and ack. Then:

- ``ctx.window`` is how long is left (a ``timedelta``, zero once closed), ``None`` where no
  window applies (other channels, Chat SDK rooms) or qbot cannot know: it never saw the
  customer write, or an agent had the room since (while the bot is off, Omnichannel sends it
  none of the customer's messages; the resolved webhook makes the record unknown until the
  customer writes again). Unknown, qbot sends and WhatsApp decides;
- a free-form ``ctx.reply``/``ctx.send`` to a WhatsApp room whose window is closed is not
  posted: `guard` raises `~qbot.errors.OutsideWindowError`, or, with a fallback template
  configured (``omnichannel.whatsapp.fallback_template`` or ``Bot(fallback_template=...)``),
  sends that template instead, once per closed window (what else the handler sends until the
  customer writes again is dropped, logged as ``window.dropped``: each template is charged);
- templates (`~qbot.omnichannel.templates.Template`) always go out: that is their point.

The same record keeps the customer's number and the room's WhatsApp channel (what a template
to the room is sent to), and a per-number record (`phone_key`) finds the room of a number, so
``bot.send_template("62812...")`` is ordered with that room's replies.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from qbot._json import loads
from qbot.errors import OutsideWindowError, QbotError
from qbot.handlers import EVENT, update_kind
from qbot.messages.postback import unpack_postback
from qbot.omnichannel.rooms import detect_room
from qbot.omnichannel.templates import Template
from qbot.storage.base import state_key
from qbot.storage.records import StateWrite

if TYPE_CHECKING:
    from qbot.dispatcher import Dispatcher
    from qbot.messages import Message
    from qbot.models.webhook import Update

__all__ = [
    "FALLBACK_KEY",
    "QUICK_REPLIES_KEY",
    "QUICK_REPLY_DAYS",
    "WINDOW_KEY",
    "Decision",
    "Fallback",
    "WindowRecord",
    "WindowTracker",
    "fallback_key",
    "guard",
    "phone_key",
    "phone_of",
    "quick_replies_key",
    "quick_reply_answer",
    "window_key",
]

log = structlog.get_logger("qbot.whatsapp")

WINDOW_KEY = "qbot:whatsapp"
"""The reserved state user under which a room's (and a number's) WhatsApp record is kept."""
FALLBACK_KEY = "qbot:whatsapp-fallback"
"""The reserved state user under which a room's fallback-template note is kept."""
QUICK_REPLY_DAYS = 30
"""Days a template's quick-reply labels are read as taps after it was sent."""
QUICK_REPLIES_KEY = "qbot:quick-replies"
"""The reserved state user under which a number's latest template quick replies are kept."""
_CUSTOMER_TYPES = frozenset(
    {"text", "reply", "file_attachment", "button_postback_response", "location", "contact"}
)
"""Message types a customer writes (what opens the window); not the bot's own reserved ones."""

LIFECYCLE_TYPE = "qbot_omnichannel_lifecycle"
"""``qbot.omnichannel.lifecycle.LIFECYCLE`` (not imported: lifecycle imports this module)."""

Fallback = Template | Callable[[str, "Message"], Template | None]
"""A fallback template, or a function of (room id, the refused message) that returns one."""


def window_key(room_id: str) -> str:
    """The state key of a room's WhatsApp record."""
    return state_key(room_id, WINDOW_KEY)


def fallback_key(room_id: str) -> str:
    """The state key of the note that a room's fallback template went out (for which window)."""
    return state_key(room_id, FALLBACK_KEY)


def phone_key(phone: str) -> str:
    """The state key of a number's record: its room and channel."""
    return state_key(f"whatsapp:{phone}", WINDOW_KEY)


def quick_replies_key(phone: str) -> str:
    """The state key of the quick replies of the latest template sent to a number."""
    return state_key(f"whatsapp:{phone}", QUICK_REPLIES_KEY)


def phone_of(user: str) -> str | None:
    """The customer's number when their Omnichannel user id is one (WhatsApp's are)."""
    if "@" in user:  # an email: no number (and no need to scan it)
        return None
    digits = "".join(ch for ch in user if ch.isdigit())
    return digits if len(digits) >= 6 else None


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """What qbot keeps of a WhatsApp room.

    Attributes:
        last_customer_at: clock time of the customer's last message (``None``: never seen).
        customer: the customer's number (their Omnichannel user id).
        channel_id: the room's WhatsApp channel.
    """

    last_customer_at: float | None = None
    customer: str | None = None
    channel_id: int | str | None = None

    def dump(self) -> dict[str, Any]:
        return {
            "last_customer_at": self.last_customer_at,
            "customer": self.customer,
            "channel_id": self.channel_id,
        }

    @classmethod
    def load(cls, value: Any) -> WindowRecord:
        if not isinstance(value, dict):
            return cls()

        def number(name: str) -> float | None:
            found = value.get(name)
            if isinstance(found, int | float) and not isinstance(found, bool):
                return float(found)
            return None

        customer = value.get("customer")
        channel = value.get("channel_id")
        return cls(
            last_customer_at=number("last_customer_at"),
            customer=customer if isinstance(customer, str) else None,
            channel_id=channel if isinstance(channel, int | str) else None,
        )

    def left(self, now: float, hours: float) -> timedelta:
        """How long the window stays open (zero once closed or never opened)."""
        if self.last_customer_at is None:
            return timedelta(0)
        return timedelta(seconds=max(0.0, self.last_customer_at + hours * 3600 - now))


class WindowTracker:
    """The dispatcher's WhatsApp records: read with each message, written with its commit.

    Args:
        dispatcher: whose storage, clock, settings and room memory it uses.
        cache_size: rooms whose record is kept in this process (the least recent dropped).
    """

    def __init__(self, dispatcher: Dispatcher, cache_size: int = 10_000) -> None:
        self.dispatcher = dispatcher
        self.cache_size = cache_size
        self._records: OrderedDict[str, WindowRecord] = OrderedDict()
        self._pending: dict[str, list[StateWrite]] = {}

    @property
    def hours(self) -> float:
        settings = self.dispatcher.settings
        return settings.omnichannel.whatsapp.window_hours if settings is not None else 24.0

    @staticmethod
    def keys(room_id: str, sender: str) -> list[str]:
        """The keys `seen` needs, read with the room's state (one round trip)."""
        phone = phone_of(sender) or "-"
        return [window_key(room_id), phone_key(phone), quick_replies_key(phone)]

    def _keep(self, room_id: str, record: WindowRecord) -> None:
        self._records[room_id] = record
        self._records.move_to_end(room_id)
        if len(self._records) > self.cache_size:
            self._records.popitem(last=False)

    def known(self, room_id: str) -> WindowRecord | None:
        """The record read (or written) last in this process, ``None`` if none."""
        return self._records.get(room_id)

    async def get(self, room_id: str, *, cached: bool = False) -> WindowRecord:
        """The room's record: from the storage, or the one read with this update's state."""
        if cached and room_id in self._records:
            return self._records[room_id]
        record = WindowRecord.load(await self.dispatcher.storage.get_state(window_key(room_id)))
        self._keep(room_id, record)
        return record

    def seen(
        self, update: Update, source: str | None, values: Sequence[Any], *, taps: bool
    ) -> Update:
        """Note the update of a WhatsApp room (with the values of `keys`), and return it, or
        the tap on a template's quick reply it is (``taps``: the room is not handed off).

        A customer's message moves the window (its writes wait in `take` for the message's
        commit); the number's record is written when it changes.
        """
        quick = self._note(update, source, values)
        if source == "wa" and taps:
            return quick_reply_answer(update, quick, self.dispatcher.clock.time())
        return update

    def _note(self, update: Update, source: str | None, values: Sequence[Any]) -> Any:
        if source != "wa":
            return None
        room_id = str(update.room.id)
        window, number, quick = [*values, None, None, None][:3]
        record = WindowRecord.load(window)
        self._keep(room_id, record)
        message = update.message
        if message.type == LIFECYCLE_TYPE and (message.payload or {}).get("kind") == "resolved":
            # An agent had the room: Omnichannel sent qbot none of the customer's messages
            # meanwhile, so the record says nothing now. Unknown until the customer writes.
            if record.last_customer_at is not None:
                cleared = replace(record, last_customer_at=None)
                self._keep(room_id, cleared)
                self._pending[room_id] = [StateWrite(window_key(room_id), cleared.dump())]
            return quick
        if not self._from_customer(update, record):
            return quick
        phone = phone_of(update.sender.email)
        channel = self._channel(update) or record.channel_id
        moved = replace(
            record,
            last_customer_at=self.dispatcher.clock.time(),
            customer=update.sender.email,
            channel_id=channel,
        )
        self._keep(room_id, moved)
        writes = [StateWrite(window_key(room_id), moved.dump())]
        index = {"room_id": room_id, "channel_id": channel}
        if phone is not None and number != index:
            writes.append(StateWrite(phone_key(phone), index))
        self._pending[room_id] = writes
        return quick

    def take(self, room_id: str) -> list[StateWrite]:
        """The writes `seen` left for the message's commit (once)."""
        return self._pending.pop(room_id, [])

    def _from_customer(self, update: Update, record: WindowRecord) -> bool:
        message = update.message
        if update_kind(message.type) == EVENT or message.type not in _CUSTOMER_TYPES:
            return False
        if phone_of(update.sender.email) is None:  # a WhatsApp customer is their number
            return False
        email = update.sender.email.casefold()
        dispatcher = self.dispatcher
        if dispatcher.email and email == dispatcher.email.casefold():
            return False
        settings = dispatcher.settings
        if settings is not None and email in {a.casefold() for a in settings.state.agents}:
            return False
        return record.customer is None or record.customer.casefold() == email

    @staticmethod
    def _channel(update: Update) -> int | str | None:
        return detect_room(update, "always").channel_id

    def left(self, room_id: str) -> timedelta | None:
        """``ctx.window``: how long is left in a WhatsApp room; ``None`` for other rooms, and
        while qbot does not know when the customer last wrote."""
        record = self._records.get(room_id)
        if not self._applies(room_id) or record is None or record.last_customer_at is None:
            return None
        return record.left(self.dispatcher.clock.time(), self.hours)

    def _applies(self, room_id: str) -> bool:
        settings = self.dispatcher.settings
        if settings is not None and settings.omnichannel.mode == "never":
            return False
        info = self.dispatcher.rooms.known(room_id)
        return info is not None and info.source == "wa"

    async def fallback_sent(self, room_id: str, record: WindowRecord) -> None:
        """Note that the fallback template went out for the window ``record`` closed.

        Its own key, not the room's record: a customer's message committed meanwhile (another
        worker, another replica) must not be overwritten by this older view of the room.
        """
        marker = {"window": record.last_customer_at, "sent_at": self.dispatcher.clock.time()}
        await self.dispatcher.storage.set_state(fallback_key(room_id), marker)

    async def fallback_already_sent(self, room_id: str, record: WindowRecord) -> bool:
        """Whether the fallback went out already for the window ``record`` closed."""
        marker = await self.dispatcher.storage.get_state(fallback_key(room_id))
        return isinstance(marker, dict) and marker.get("window") == record.last_customer_at


def _fallback(dispatcher: Dispatcher, room_id: str, message: Message) -> Template | None:
    configured = dispatcher.fallback_template
    if callable(configured) and not isinstance(configured, Template):
        return configured(room_id, message)
    if configured is not None:
        return configured
    settings = dispatcher.settings
    fallback = settings.omnichannel.whatsapp.fallback_template if settings is not None else None
    if fallback is None:
        return None
    return Template(fallback.name, fallback.language, fallback.variables)


@dataclass(frozen=True, slots=True)
class Decision:
    """What `guard` allows in place of a message.

    Attributes:
        message: what to send (the message itself, or the fallback template); ``None``: drop.
        fallback: ``message`` is the fallback template (note it with `WindowTracker.fallback_sent`).
        record: the room's record the decision was made on.
    """

    message: Message | None
    fallback: bool = False
    record: WindowRecord | None = None


async def guard(
    dispatcher: Dispatcher, room_id: int | str, message: Message, *, current: str | None
) -> Decision:
    """What may go to ``room_id`` instead of ``message``: itself, the fallback, or nothing.

    Args:
        current: the room of the update being handled (its record was read with it).

    Raises:
        OutsideWindowError: a free-form message outside the window, and no fallback template.
    """
    room = str(room_id)
    settings = dispatcher.settings
    if isinstance(message, Template) or type(message).__name__ in ("DeskCall", "TemplateSend"):
        return Decision(message)
    if settings is not None and not settings.omnichannel.whatsapp.enforce_window:
        return Decision(message)
    if not await dispatcher.is_omnichannel(room):
        return Decision(message)
    info = await dispatcher.rooms.get(room)
    if info is None or info.source != "wa":
        return Decision(message)
    windows = dispatcher.windows
    record = await windows.get(room, cached=room == current)
    now = dispatcher.clock.time()
    if record.last_customer_at is None:  # never seen write, or an agent had the room since
        return Decision(message)
    if record.left(now, windows.hours) > timedelta(0):
        return Decision(message)
    since = (now - record.last_customer_at) / 3600
    fallback = _fallback(dispatcher, room, message)
    if fallback is None:
        raise OutsideWindowError(room, since, windows.hours)
    if await windows.fallback_already_sent(room, record):
        log.warning("window.dropped", to_room=room, reason="fallback template already sent")
        return Decision(None, record=record)
    log.info("window.fallback", to_room=room, template=fallback.name, hours_since=since)
    return Decision(fallback, fallback=True, record=record)


def _payload_of(message_payload: Any) -> Any:
    """A Cloud API quick-reply payload carried by the message (``button.payload``), if any."""
    if not isinstance(message_payload, dict):
        return None
    button = message_payload.get("button")
    if isinstance(button, dict) and button.get("payload") is not None:
        return button["payload"]
    return None


def quick_reply_answer(update: Update, remembered: Any, now: float) -> Update:
    """A customer's tap on a template's quick reply as a ``button_postback_response``."""
    message = update.message
    if message.type != "text":
        return update
    payload = _payload_of(message.payload)
    if payload is None:
        payload = _matching(message.text, remembered, now)
    if payload is None:
        return update
    packed = loads_or_none(payload) if isinstance(payload, str) else payload
    try:
        if not isinstance(packed, dict) or unpack_postback(packed, None) is None:
            return update
    except QbotError:
        pass  # qbot's but unreadable: dispatched as a postback, rejected there with the reason
    log.info("template.quick_reply", label=message.text)
    echo = {"url": "", "method": "post", "payload": packed}  # as a Qiscus button's tap echoes
    tapped = message.model_copy(update={"type": "button_postback_response", "payload": echo})
    return update.model_copy(
        update={"payload": update.payload.model_copy(update={"message": tapped})}
    )


def _matching(text: str, remembered: Any, now: float) -> Any:
    if not isinstance(remembered, dict):
        return None
    sent_at = remembered.get("sent_at")
    if not isinstance(sent_at, int | float) or now - sent_at > QUICK_REPLY_DAYS * 86400:
        return None
    buttons: Sequence[Any] = remembered.get("buttons") or []
    wanted = text.strip().casefold()
    found = [
        b
        for b in buttons
        if isinstance(b, dict) and str(b.get("label", "")).strip().casefold() == wanted
    ]
    return found[0].get("payload") if len(found) == 1 else None


def loads_or_none(text: str) -> Any:
    try:
        return loads(text)
    except ValueError:
        return None
