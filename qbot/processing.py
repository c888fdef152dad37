"""One update's path through the dispatcher: checks, the room's one read, the router, the commit.

A mixin of :class:`~qbot.dispatcher.Dispatcher` (the same object, split for size). The runtime's
room workers call :meth:`Processing.process` for each update they hold:

```
process(update, ack=item) ──▶ replies left pending first → ignore / handoff / agent command /
                              postback checks → one load_room (states, handoff, room memory,
                              first replies' records) → Context → bot.propagate → the one
                              commit of state writes and the inbox ack
```
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import structlog

from qbot import metrics
from qbot.context import Context, state_owner
from qbot.errors import PostbackError
from qbot.filters import normalize_text
from qbot.handlers import EVENT, POSTBACK, Outcome, Result, update_kind
from qbot.messages.postback import PostbackSigner, unpack_postback
from qbot.omnichannel.delivery import load_choices, menu_key, room_key
from qbot.omnichannel.lifecycle import LIFECYCLE, run_lifecycle
from qbot.omnichannel.menus import match_choice
from qbot.omnichannel.rooms import detect_room
from qbot.scheduled_run import finish, run_scheduled
from qbot.scheduling import SCHEDULED, cancel_on_reply, reply_marker
from qbot.sending import Sender, unique_temp_id
from qbot.state import State
from qbot.storage import state_key

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.config import Settings
    from qbot.dispatcher import Dispatcher
    from qbot.messages.postback import Postback
    from qbot.models.webhook import Update
    from qbot.office_hours import OfficeHoursSource
    from qbot.omnichannel.delivery import RoomMemory
    from qbot.omnichannel.window import WindowTracker
    from qbot.outbox import Outbox
    from qbot.storage import InboxItem, OutboxItem, Storage

__all__ = ["Processing"]

log = structlog.get_logger("qbot.bot")

_PREFETCH = 3
"""Outbox records of a message's first replies read with its state (a re-run finds them sent)."""


class Processing(ABC):
    """How the dispatcher processes one update (see :class:`~qbot.dispatcher.Dispatcher`)."""

    bot: Bot
    email: str | None
    settings: Settings | None
    signer: PostbackSigner | None
    storage: Storage
    outbox: Outbox
    windows: WindowTracker
    office_hours: OfficeHoursSource | None

    @property
    def _dispatcher(self) -> Dispatcher:
        """This object as what it is (the mixin is only ever a Dispatcher)."""
        return cast("Dispatcher", self)

    @property
    @abstractmethod
    def rooms(self) -> RoomMemory:
        """Which rooms are Omnichannel rooms (the dispatcher's)."""

    def ignore_reason(self, update: Update) -> str | None:
        """Why ``update`` needs no processing (cheap; checked before it is queued), or ``None``."""
        if self.email and update.sender.email.casefold() == self.email.casefold():
            return "own_message"
        message = update.message
        if update_kind(message.type) == EVENT:
            event_type = (message.payload or {}).get("type")
            if not self.bot.handles_event(event_type if isinstance(event_type, str) else None):
                return "unhandled_system_event"
        return None

    async def process(
        self,
        update: Update,
        *,
        ack: InboxItem | None = None,
        owner: str | None = None,
        also: Sequence[InboxItem] = (),
    ) -> Outcome:
        """Handle one update and commit its state changes, acking ``ack`` in the same commit.

        The runtime's room workers call this; everything else goes through :meth:`feed_update`.

        Args:
            update: the parsed webhook.
            ack: the inbox item the update came from, acked with the state.
            owner: the worker holding the room's lease (required with ``ack``).
            also: more items acked in the same commit (a debounced burst's, qbot.debounce).

        Raises:
            LeaseLostError: ``owner`` lost the room meanwhile; nothing was committed.
            StorageError: the storage failed.
        """
        room_id = str(update.room.id)
        if self.outbox.waiting(room_id):
            await self.outbox.flush(room_id)
        if self.office_hours is not None:  # Omnichannel's hours: re-read once their cache expires
            await self.office_hours.get()
        outcome, ctx = await self._route(update, ack)
        metrics.processed(outcome)
        # Whatever the outcome, the message is now processed: its state and its ack go together.
        writes = [] if ctx is None else [ctx.state.pending_write(), ctx.room_state.pending_write()]
        states = [w for w in writes if w is not None] + self.windows.take(room_id)
        if states or ack is not None:
            acks = [ack, *also] if ack else ()
            await self.outbox.commit(owner=owner, ack=acks, states=states)
            if ctx is not None:
                ctx.state.committed()
                ctx.room_state.committed()
        if ctx is not None and ctx.scheduled is not None:
            await finish(ctx)
        return outcome

    async def _route(self, update: Update, ack: InboxItem | None) -> tuple[Outcome, Context | None]:
        reason = self.ignore_reason(update)
        if reason is not None:
            log.debug("update.ignored", reason=reason)
            return Outcome(ignored=reason), None
        room, message, user = update.room, update.message, update.sender
        room_id = str(room.id)
        # The replies' ids derive from what they answer, so a re-run regenerates them; a message
        # without any identity is told apart by its inbox item (or, fed directly, by chance).
        identity = message.identity or (
            f"item:{ack.id}" if ack is not None else f"anon:{uuid.uuid4().hex}"
        )
        origin = f"{room_id}:{identity}"
        # One round trip reads the handoff, both states and the first replies' outbox records.
        keys = [state_key(room_id, state_owner(user)), state_key(room_id)]
        read = [*keys, room_key(room_id), menu_key(room_id), reply_marker(room_id)]
        read += self.windows.keys(room_id, user.email)
        ids = [unique_temp_id(origin, room.id, seq) for seq in range(1, _PREFETCH + 1)]
        handoff, values, replies = await self.storage.load_room(room_id, read, ids)
        states, (room_memory, menu, replied, *whatsapp) = values[:2], values[2:]
        self.rooms.preload(room_id, room_memory)
        source = await self._remember_room(update)
        update = self.windows.seen(update, source, whatsapp, taps=handoff is None)
        message = update.message
        if message.type == LIFECYCLE:
            return await self._lifecycle(update, origin, ids, replies, keys, states)
        if message.type == SCHEDULED:
            known = dict(zip(ids, replies, strict=True))
            loaded = dict(zip(keys, states, strict=True))
            return await run_scheduled(self._dispatcher, update, origin, known, loaded, handoff)
        kind = update_kind(message.type)
        if replied and kind != EVENT and not self._is_agent(update):
            # The customer wrote: the room's cancel_on_reply jobs go, before any handler runs.
            await cancel_on_reply(self.storage, room_id)
        if self._is_agent_command(update):
            ended = handoff is not None and await self.storage.handoff_end(room_id)
            log.info("handoff.ended" if ended else "agent.command", by=user.email)
            return Outcome(ignored="agent_command"), None
        if kind != EVENT and handoff is None and message.type == "text" and menu:
            update = self._menu_answer(update, source, load_choices(menu))
            message = update.message
            kind = update_kind(message.type)
        if handoff is not None and kind != EVENT:
            # System events still run: `@bot.event("left_room")` may call ctx.resume().
            log.info("handoff.skipped", reason=handoff.reason, sender=user.email)
            return Outcome(ignored="handoff"), None
        postback = None
        if kind == POSTBACK:
            try:
                postback = unpack_postback(
                    message.payload, self.signer, room_id=room_id, user=user.email
                )
            except PostbackError as e:
                log.warning("postback.rejected", reason=str(e), sender=user.email)
                return Outcome(ignored="rejected_postback"), None
        # Buttons are bound to this room, and to the user in a one-to-one room.
        meant_for = user.email if room.type == "single" else None
        signer = self.signer.bind(room_id, meant_for) if self.signer is not None else None
        known = dict(zip(ids, replies, strict=True))
        sender = Sender(self.outbox.delivery(known), origin, signer, ids=ids, room=room.id)
        ctx = self._context(update, sender, keys, states, postback)
        result = await self.bot.propagate(ctx, kind)
        if result is Result.STOPPED:
            log.info("update.stopped", by="middleware", replies=sender.sent)
            return Outcome(ignored="stopped", replies=sender.sent), ctx
        if result is Result.NOT_HANDLED:
            log.info("update.unhandled", message_type=message.type)
            return Outcome(ignored="unhandled", replies=sender.sent), ctx
        log.info("update.handled", handler=ctx.handler_name, replies=sender.sent)
        return Outcome(handler=ctx.handler_name, replies=sender.sent), ctx

    def _context(
        self,
        update: Update,
        sender: Sender,
        keys: Sequence[str],
        stored: Sequence[Any],
        postback: Postback | None = None,
    ) -> Context:
        """The update's context, its two states (under ``keys``) taken from what was read."""
        settings = self.settings
        ttl = settings.state.ttl if settings is not None else None
        state, room_state = (
            State(self.storage, keys[0], ttl=ttl),
            State(self.storage, keys[1], ttl=ttl),
        )
        state.preload(stored[0])
        room_state.preload(stored[1])
        return Context(
            self._dispatcher, update, sender, postback=postback, state=state, room_state=room_state
        )

    async def _remember_room(self, update: Update) -> str | None:
        """Keep that the update's room is an Omnichannel room; its channel source, if it is."""
        mode = self.settings.omnichannel.mode if self.settings is not None else "auto"
        room_id = str(update.room.id)
        known = self.rooms.known(room_id)
        if mode == "never":
            return None
        if known is not None and known.source is not None:
            return known.source  # remembered already (preloaded with the room's state)
        options = update.room.options
        lifecycle = update.message.type == LIFECYCLE
        marked = update.app_code or update.channel is not None or "source" in options
        if mode == "auto" and not (marked or "channel" in options or lifecycle):
            return known.source if known is not None else None  # a Chat SDK room: no parsing
        found = detect_room(update, mode)
        if found.omnichannel or lifecycle:
            return (await self.rooms.remember(room_id, found)).source
        return known.source if known is not None else None

    def _menu_answer(self, update: Update, source: str | None, choices: list[Any]) -> Update:
        """The customer's answer to a text menu as the tap on its button, else ``update``."""
        menus = self.settings.omnichannel.text_menus if self.settings is not None else []
        if source not in menus:
            return update
        choice = match_choice(update.message.text, choices)
        if choice is None:
            return update
        text, payload = choice.postback_response()
        log.info("text_menu.chosen", choice=choice.number, label=choice.label)
        message = update.message.model_copy(
            update={"type": "button_postback_response", "text": text, "payload": payload}
        )
        return update.model_copy(
            update={"payload": update.payload.model_copy(update={"message": message})}
        )

    async def _lifecycle(
        self,
        update: Update,
        origin: str,
        ids: list[str],
        replies: list[OutboxItem | None],
        keys: Sequence[str],
        states: Sequence[Any],
    ) -> tuple[Outcome, Context]:
        """An Omnichannel lifecycle webhook: its effects, then its handlers (see lifecycle)."""
        room = update.room
        signer = self.signer.bind(str(room.id), None) if self.signer is not None else None
        known = dict(zip(ids, replies, strict=True))
        sender = Sender(self.outbox.delivery(known), origin, signer, ids=ids, room=room.id)
        ctx = self._context(update, sender, keys, states)
        name = await run_lifecycle(ctx)
        ctx.handler_name = name
        log.info("update.handled", handler=name, replies=sender.sent)
        return Outcome(handler=name, replies=sender.sent), ctx

    def _is_agent(self, update: Update) -> bool:
        """Whether the sender is one of ``state.agents`` (not the customer)."""
        if self.settings is None or not self.settings.state.agents:
            return False
        return update.sender.email.casefold() in {a.casefold() for a in self.settings.state.agents}

    def _is_agent_command(self, update: Update) -> bool:
        """An agent's text that gives the room back to the bot (``state.resume_command``)."""
        if not self._is_agent(update):
            return False
        state = self.settings.state  # type: ignore[union-attr]  # _is_agent: settings is set
        return normalize_text(update.message.text) == normalize_text(state.resume_command)
