"""Sending WhatsApp templates: from a handler, or proactively, through the outbox.

```
ctx.send_template(...)        ─┐  the room's customer and channel (its WhatsApp record)
bot.send_template(phone|room) ─┤  a number: its room if qbot knows one, else the number alone
                               ▼
  TemplateSend ─▶ Sender (a unique_temp_id) ─▶ OutboxDelivery (durable, retried, once)
               ─▶ RoomDelivery ─▶ POST /whatsapp/v1/{app_code}/{channel_id}/messages
                               └▶ the quick replies remembered for the number (a tap routes)
```
A template is checked against WhatsApp's limits when built, then against the approved template
when Omnichannel lists it (`TemplateCatalog`, cached), its namespace filled in, before anything
is queued: an error reaches the caller instead of failing in the outbox.

A tap on a quick reply reaches the bot as the customer's message. Omnichannel documents no
shape for it: qbot reads a Cloud API ``button`` payload (``{"button": {"payload"}}``) when the
message carries one, and otherwise matches the text against the labels of the latest template
sent to the number (exactly, case and surrounding spaces ignored), and hands the button's
postback to ``@bot.postback`` as a tap (`qbot.omnichannel.window.quick_reply_answer`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from qbot.errors import ConfigError, MessageBuildError, QbotError, QiscusError
from qbot.messages.base import Message, OutgoingComment
from qbot.omnichannel.client import phone_digits
from qbot.omnichannel.templates import TEMPLATE_TYPE, ApprovedTemplate, QuickReply, Template
from qbot.omnichannel.window import (
    WindowRecord,
    phone_key,
    phone_of,
    quick_replies_key,
)
from qbot.sending import Sender

if TYPE_CHECKING:
    from qbot.clock import Clock
    from qbot.dispatcher import Dispatcher
    from qbot.messages import Outgoing
    from qbot.messages.postback import PostbackSigner
    from qbot.omnichannel.client import OmnichannelClient
    from qbot.storage import Storage

__all__ = [
    "Target",
    "TemplateCatalog",
    "TemplateSend",
    "build_template",
    "remember_quick_replies",
    "send_proactive",
    "target_of_room",
]

log = structlog.get_logger("qbot.whatsapp")

CATALOG_TTL = 300.0
"""Seconds the approved templates are trusted before they are listed again."""


def build_template(
    template: str | Template,
    language: str = "id",
    variables: Iterable[Any] = (),
    buttons: Iterable[QuickReply] = (),
    header: str | None = None,
) -> Template:
    """A `Template` from a name and its values (or the template given, as it is)."""
    if isinstance(template, Template):
        return template
    return Template(template, language, variables, buttons, header)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a template goes: the outbox's room (ordering), the number and the channel.

    Attributes:
        room_id: the customer's room, or ``whatsapp:NUMBER`` for a number qbot knows no room of.
        to: the customer's number, digits only.
        channel_id: the WhatsApp channel it is sent from.
        known_room: ``room_id`` is a real room (its quick-reply postbacks are bound to it).
    """

    room_id: str
    to: str
    channel_id: int | str
    known_room: bool


class TemplateSend(Message):
    """A template on its way to one number: an outbox record of type `TEMPLATE_TYPE`."""

    def __init__(self, template: Template, to: str, channel_id: int | str) -> None:
        self.template = template
        self.to = to
        self.channel_id = channel_id

    def to_outgoing(self, *, signer: PostbackSigner | None = None) -> list[Outgoing]:
        [record] = self.template.to_outgoing(signer=signer)
        assert isinstance(record, OutgoingComment)
        payload = {**(record.payload or {}), "to": self.to, "channel_id": self.channel_id}
        return [OutgoingComment(type=TEMPLATE_TYPE, message=record.message, payload=payload)]


class TemplateCatalog:
    """The app's approved templates, listed once per `CATALOG_TTL` (and on a name not seen)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._templates: dict[str, list[ApprovedTemplate]] | None = None
        self._listed_at = 0.0

    async def _list(self, omni: OmnichannelClient) -> dict[str, list[ApprovedTemplate]]:
        found: dict[str, list[ApprovedTemplate]] = {}
        for page in range(1, 51):
            batch = await omni.templates(page=page)
            for template in batch:
                found.setdefault(template.name, []).append(template)
            if len(batch) < 100:
                break
        self._templates = found
        self._listed_at = self.dispatcher.clock.time()
        return found

    async def approved(
        self, name: str, channel_id: int | str | None = None
    ) -> ApprovedTemplate | None:
        """The approved template ``name`` (the one of ``channel_id`` when several channels
        have one of that name); ``None`` when Omnichannel could not be asked.

        Raises:
            MessageBuildError: Omnichannel lists approved templates and none is ``name``.
        """
        omni = self.dispatcher.omnichannel
        templates = self._templates
        stale = self.dispatcher.clock.time() - self._listed_at > CATALOG_TTL
        try:
            if templates is None or stale or name not in templates:
                templates = await self._list(omni)
        except QiscusError as e:  # sent unchecked: Omnichannel refuses it if it must
            log.warning("templates.unlisted", template=name, error=str(e))
            return None
        if name not in templates:
            known = ", ".join(sorted(templates)) or "none"
            raise MessageBuildError(
                f"template {name!r} is not an approved template of this app (approved: {known})"
            )
        candidates = templates[name]
        for candidate in candidates:
            if channel_id is not None and str(candidate.channel_id) == str(channel_id):
                return candidate
        return candidates[0]

    async def prepare(self, template: Template, channel_id: int | str | None = None) -> Template:
        """Check ``template`` against the approved one (of the channel it is sent from, when
        known) and fill its namespace."""
        approved = await self.approved(template.name, channel_id)
        if approved is not None:
            template.check(approved)
        if not template.namespace:
            settings = self.dispatcher.settings
            fallback = settings.omnichannel.whatsapp.namespace if settings is not None else None
            template.namespace = (approved.namespace if approved else None) or fallback
        return template


async def _channel(dispatcher: Dispatcher) -> int | str:
    """The channel a template to a new number goes from: configured, else the only one."""
    settings = dispatcher.settings
    configured = settings.omnichannel.whatsapp.channel_id if settings is not None else None
    if configured is not None:
        return configured
    channels = (await dispatcher.omnichannel.channels()).by_source().get("wa", [])
    active = [c for c in channels if c.is_active is not False]
    if len(active) != 1:
        names = ", ".join(f"{c.id} ({c.name})" for c in active) or "none"
        raise ConfigError(
            f"which WhatsApp channel should the template go from? the app has {names}: "
            "set omnichannel.whatsapp.channel_id"
        )
    return active[0].id


async def target_of_room(dispatcher: Dispatcher, room_id: str, record: WindowRecord) -> Target:
    """The target of a known WhatsApp room (its customer, its channel).

    Raises:
        MessageBuildError: qbot has no number for the room's customer.
    """
    phone = phone_of(record.customer or "")
    if phone is None:
        raise MessageBuildError(
            f"room {room_id}: qbot knows no WhatsApp number for its customer yet "
            "(one is recorded when the customer writes); use bot.send_template(NUMBER, ...)"
        )
    channel = record.channel_id if record.channel_id is not None else await _channel(dispatcher)
    return Target(room_id, phone, channel, known_room=True)


async def _target(dispatcher: Dispatcher, to: str | int) -> Target:
    """Where ``bot.send_template(to, ...)`` goes.

    An int is a room id; a text starting with ``+`` is a phone number; other text is a room
    id when qbot knows it as a WhatsApp room, else a phone number (its room when known).

    Raises:
        MessageBuildError: a room that is not a WhatsApp room qbot knows, or not a number.
    """
    text = str(to).strip()
    if not text.startswith("+"):
        info = await dispatcher.rooms.get(text)
        if info is not None and info.source == "wa":
            record = await dispatcher.windows.get(text)
            return await target_of_room(dispatcher, text, record)
        if info is not None or isinstance(to, int):
            where = f"on channel {info.source!r}" if info is not None else "not a WhatsApp room"
            raise MessageBuildError(
                f"room {text} is {where} qbot knows: templates go to WhatsApp customers "
                "(give their number, e.g. '+6281234567890')"
            )
    phone = phone_digits(text)
    index = await dispatcher.storage.get_state(phone_key(phone))
    if isinstance(index, dict) and isinstance(index.get("room_id"), str):
        channel = index.get("channel_id")
        if not isinstance(channel, int | str):
            channel = await _channel(dispatcher)
        return Target(index["room_id"], phone, channel, known_room=True)
    log.info("template.new_number", to=phone)
    return Target(f"whatsapp:{phone}", phone, await _channel(dispatcher), known_room=False)


async def send_proactive(
    dispatcher: Dispatcher, to: str | int, template: Template, *, key: str | None = None
) -> Any:
    """``bot.send_template``: a template to a number or a room, outside any handler.

    Returns:
        What Omnichannel answered (`~qbot.omnichannel.models.TemplateSent`), or ``None`` when
        it is queued (Omnichannel unreachable: sent later) or was sent already under ``key``.
    """
    if dispatcher.settings is None:
        raise QbotError("bot.send_template needs settings: call bot.configure(settings) first")
    await dispatcher.open()
    target = await _target(dispatcher, to)
    template = await dispatcher.template_catalog.prepare(template, target.channel_id)
    signer = dispatcher.signer
    if signer is not None:
        signer = signer.bind(target.room_id, target.to)
        if not target.known_room:  # tapped in a room qbot does not know yet: bound to the number
            signer.room_id = None
    origin = f"proactive:{key}" if key is not None else f"proactive:{uuid.uuid4().hex}"
    sender = Sender(dispatcher.outbox.delivery(), origin, signer)
    [result] = await sender.send(
        target.room_id, TemplateSend(template, target.to, target.channel_id)
    )
    log.info("template.sent", to_room=target.room_id, template=template.name, key=key)
    return result


async def remember_quick_replies(
    storage: Storage, clock: Clock, room_id: str, payload: dict[str, Any]
) -> None:
    """Keep the quick replies of a template just sent, so the customer's tap can be read."""
    to = payload.get("to")
    buttons = payload.get("buttons")
    if not isinstance(to, str):
        return
    key = quick_replies_key(to)
    if not buttons:
        await storage.delete_state(key)
        return
    value = {"room_id": room_id, "buttons": buttons, "sent_at": clock.time()}
    await storage.set_state(key, value)
