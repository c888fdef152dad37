"""The Bot: the root router, its settings and storage, and ``feed_update`` (the core, no HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from qbot.context import Context, state_owner
from qbot.errors import ConfigError, PostbackError, QbotError
from qbot.filters import normalize_text
from qbot.intents import IntentSet, load_intents
from qbot.messages.postback import PostbackSigner, unpack_postback
from qbot.models.webhook import Update
from qbot.routing import EVENT, POSTBACK, _IntentHolder, run_handler, update_kind
from qbot.sending import (
    Delivery,
    DirectDelivery,
    OutboxDelivery,
    Sender,
    send_pending,
    unique_temp_id,
)
from qbot.storage import MemoryStorage, Storage, open_storage, state_key
from qbot.storage.base import InboxItem
from qbot.templates import Templates

if TYPE_CHECKING:
    from qbot.client import QiscusClient
    from qbot.config import Settings

__all__ = ["Bot", "Outcome"]

log = structlog.get_logger("qbot.bot")

_PREFETCH = 3
"""Outbox records of a message's first replies read with its state (a re-run finds them sent)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one update: the handler that took it, or why none did."""

    handler: str | None = None
    ignored: str | None = None
    replies: int = 0


class Bot(_IntentHolder):
    """A Qiscus bot: register handlers on it, then serve it with ``qbot run``.

    Args:
        name: shown in logs.
        email: the bot's Qiscus user; its replies are posted as this user and its own messages
            are ignored. ``bot.email`` in the config sets it too.
        intents: an intents YAML file or an :class:`~qbot.intents.IntentSet`.
        templates: the directory of reply templates.
        postback_secret: signs postback data; forged or unsigned postbacks are then rejected.
        client: a ready Qiscus client (otherwise one is built from the settings).
    """

    def __init__(
        self,
        name: str = "bot",
        *,
        email: str | None = None,
        intents: str | Path | IntentSet | None = None,
        templates: str | Path | None = None,
        postback_secret: str | None = None,
        client: QiscusClient | None = None,
    ) -> None:
        super().__init__(name)
        self.email = email
        self.intents = load_intents(intents) if isinstance(intents, str | Path) else intents
        self.templates = Templates(templates) if templates is not None else None
        self.signer = PostbackSigner(postback_secret) if postback_secret else None
        self._client = client
        self._owns_client = False
        self.delivery: Delivery | None = None
        self.settings: Settings | None = None
        self.storage: Storage = MemoryStorage()
        self.storage_url = "memory://"
        self._storage_open = False
        self._retired: list[Storage] = []
        self._stalled: set[str] = set()  # rooms with replies Qiscus has not accepted yet

    # --- configuration --------------------------------------------------------------------------

    def configure(self, settings: Settings, *, client: QiscusClient | None = None) -> None:
        """Apply settings: identity, intents, templates, postback secret, client and storage.

        The storage is ``storage.url`` (not connected until first use); unset, a fresh
        ``memory://`` (the webhook server then opens ``sqlite:///.qbot/qbot.db`` instead).

        Raises:
            ConfigError: an intents file is invalid, an ``@intent`` handler names no intent, or
                ``storage.url`` is not a storage URL.
        """
        from qbot.client import QiscusClient, RetryPolicy
        from qbot.errors import StorageError

        url = settings.storage.url or "memory://"
        if url == "memory://" or url != self.storage_url:
            try:
                self.use_storage(open_storage(url), url=url)
            except StorageError as e:
                raise ConfigError(f"storage.url: {e}") from e
        self.settings = settings
        self.email = settings.bot.email
        if settings.intents.file:
            self.intents = load_intents(settings.intents.file, settings.intents.threshold)
        if self.templates is None and Path(settings.templates.directory).is_dir():
            self.templates = Templates(settings.templates.directory)
        if settings.postback.secret is not None:
            self.signer = PostbackSigner(
                settings.postback.secret.get_secret_value(),
                max_age=settings.postback.max_age,
                legacy_until=settings.postback.legacy_until,
            )
        if client is not None:
            self._client, self._owns_client = client, False
        elif self._client is None or self._owns_client:
            # A client the bot built for older settings is replaced (the caller closed it with
            # aclose(); its session is only opened on first use).
            q = settings.qiscus
            self._client = QiscusClient(
                q.app_id,
                q.secret_key,
                q.base_url,
                q.api_version,
                timeout=q.timeout,
                retry=RetryPolicy(max_attempts=q.max_attempts, max_total_time=q.max_retry_time),
            )
            self._owns_client = True
        self.delivery = None
        self.check_intents()

    @property
    def client(self) -> QiscusClient:
        """The Qiscus REST client replies go through."""
        if self._client is None:
            raise QbotError(
                f"bot {self.name!r} has no Qiscus client: call bot.configure(settings) "
                "or pass Bot(client=QiscusClient(...))"
            )
        return self._client

    def use_storage(self, storage: Storage, *, url: str | None = None) -> None:
        """Replace the bot's storage (opened on first use; the old one is closed by aclose).

        Args:
            storage: a storage not yet opened, e.g. ``open_storage("sqlite:///qbot.db")``.
            url: the URL it was opened from, shown in logs.
        """
        if self._storage_open:
            self._retired.append(self.storage)
        self.storage = storage
        self.storage_url = url or type(storage).__name__
        self._storage_open = False

    async def open(self) -> Storage:
        """Connect the storage (idempotent) and return it.

        Raises:
            StorageError: the storage cannot be reached or created.
        """
        if not self._storage_open:
            await self.storage.open()
            self._storage_open = True
        return self.storage

    async def aclose(self) -> None:
        """Close the client the bot built for itself and the storage."""
        if self._client is not None and self._owns_client:
            await self._client.close()
        for old in self._retired:
            await old.close()
        self._retired.clear()
        if self._storage_open:
            self._storage_open = False
            await self.storage.close()

    # --- the core -------------------------------------------------------------------------------

    def ignore_reason(self, update: Update) -> str | None:
        """Why ``update`` needs no processing (cheap; checked before it is queued), or ``None``."""
        if self.email and update.sender.email.casefold() == self.email.casefold():
            return "own_message"
        message = update.message
        if update_kind(message.type) == EVENT:
            event_type = (message.payload or {}).get("type")
            if not self.handles_event(event_type if isinstance(event_type, str) else None):
                return "unhandled_system_event"
        return None

    async def feed_update(self, update: Update | Mapping[str, Any]) -> Outcome:
        """Route one update to its handler and send the replies; no HTTP server involved.

        The emulator, ``qbot shell`` and the test kit come through here; the webhook server's
        runtime calls :meth:`process`. Conversation state the handler changed is saved when it
        returns.

        Raises:
            ValueError: ``update`` is a mapping that is not a webhook body.
            StorageError: the storage failed.
        """
        if not isinstance(update, Update):
            try:
                update = Update.model_validate(update)
            except ValidationError as e:
                raise ValueError(f"not a Qiscus webhook body: {e}") from e
        await self.open()
        return await self.process(update)

    async def process(
        self, update: Update, *, ack: InboxItem | None = None, owner: str | None = None
    ) -> Outcome:
        """Handle one update and commit its state changes, acking ``ack`` in the same commit.

        Args:
            update: the parsed webhook.
            ack: the inbox item the update came from (the runtime's), acked with the state.
            owner: the worker holding the room's lease (required with ``ack``).

        Raises:
            LeaseLostError: ``owner`` lost the room meanwhile; nothing was committed.
            StorageError: the storage failed.
        """
        if str(update.room.id) in self._stalled:
            await self.flush(str(update.room.id))
        outcome, ctx = await self._route(update, ack)
        # Whatever the outcome, the message is now processed: its state and its ack go together.
        writes = [] if ctx is None else [ctx.state.pending_write(), ctx.room_state.pending_write()]
        states = [w for w in writes if w is not None]
        if states or ack is not None:
            await self.storage.commit(owner=owner, ack=[ack] if ack else (), states=states)
            if ctx is not None:
                ctx.state.committed()
                ctx.room_state.committed()
        return outcome

    async def _route(self, update: Update, ack: InboxItem | None) -> tuple[Outcome, Context | None]:
        reason = self.ignore_reason(update)
        if reason is not None:
            log.debug("update.ignored", reason=reason)
            return Outcome(ignored=reason), None
        room_id = str(update.room.id)
        # The replies' ids derive from what they answer, so a re-run regenerates them; a message
        # without any identity is told apart by its inbox item (or, fed directly, by chance).
        identity = update.message.identity or (
            f"item:{ack.id}" if ack is not None else f"anon:{uuid.uuid4().hex}"
        )
        origin = f"{room_id}:{identity}"
        # One round trip reads the handoff, both states and the first replies' outbox records.
        keys = [
            state_key(room_id, state_owner(update.sender)),
            state_key(room_id),
        ]
        ids = [unique_temp_id(origin, update.room.id, seq) for seq in range(1, _PREFETCH + 1)]
        handoff, states, replies = await self.storage.load_room(room_id, keys, ids)
        if self._is_agent_command(update):
            ended = handoff is not None and await self.storage.handoff_end(room_id)
            log.info("handoff.ended" if ended else "agent.command", by=update.sender.email)
            return Outcome(ignored="agent_command"), None
        kind = update_kind(update.message.type)
        if handoff is not None and kind != EVENT:
            # System events still run: `@bot.event("left_room")` may call ctx.resume().
            log.info("handoff.skipped", reason=handoff.reason, sender=update.sender.email)
            return Outcome(ignored="handoff"), None
        postback = None
        if kind == POSTBACK:
            try:
                postback = unpack_postback(
                    update.message.payload, self.signer, room_id=room_id, user=update.sender.email
                )
            except PostbackError as e:
                log.warning("postback.rejected", reason=str(e), sender=update.sender.email)
                return Outcome(ignored="rejected_postback"), None
        known = dict(zip(ids, replies, strict=True))
        delivery = OutboxDelivery(self.storage, self.outbound(), self._stalled, known)
        # Buttons are bound to this room, and to the user in a one-to-one room.
        meant_for = update.sender.email if update.room.type == "single" else None
        signer = self.signer.bind(room_id, meant_for) if self.signer is not None else None
        sender = Sender(delivery, origin, signer)
        ctx = Context(self, update, sender, postback=postback)
        loaded = dict(zip(keys, states, strict=True))
        for state in (ctx.state, ctx.room_state):
            if state.key in loaded:
                state.preload(loaded[state.key])
            else:  # the context keys its state differently: read it on its own
                await state.load()
        handler = await self._propagate(ctx, kind)
        if handler is None:
            found = self.find_fallback()
            if found is None:
                log.info("update.unhandled", message_type=update.message.type)
                return Outcome(ignored="unhandled", replies=sender.sent), ctx
            fn, router = found
            ctx.handler_name = "fallback"
            await run_handler(fn, router, ctx)
        log.info("update.handled", handler=ctx.handler_name, replies=sender.sent)
        return Outcome(handler=ctx.handler_name, replies=sender.sent), ctx

    async def flush(self, room_id: str) -> int:
        """Post the room's pending replies in order; return how many are still pending.

        Call it holding the room's lease (the runtime does), or without a runtime.

        Raises:
            ConfigError: the bot has no email to post as.
            StorageError: the storage failed.
        """
        sent, left = await send_pending(self.storage, self.outbound(), room_id)
        if left:
            self._stalled.add(room_id)
        else:
            self._stalled.discard(room_id)
        if sent or left:
            log.info("outbox.flushed", to_room=room_id, sent=sent, still_pending=left)
        return left

    def _is_agent_command(self, update: Update) -> bool:
        """An agent's text that gives the room back to the bot (``state.resume_command``)."""
        if self.settings is None or not self.settings.state.agents:
            return False
        state = self.settings.state
        agents = {a.casefold() for a in state.agents}
        if update.sender.email.casefold() not in agents:
            return False
        return normalize_text(update.message.text) == normalize_text(state.resume_command)

    def outbound(self) -> Delivery:
        """What posts replies: ``bot.delivery`` when set (tests), else the Qiscus client.

        Raises:
            ConfigError: the bot has no email to post as.
        """
        if self.delivery is None:
            if not self.email:
                raise ConfigError(
                    f"bot {self.name!r} has no email to post replies as: set bot.email in the "
                    "config or Bot(email=...)"
                )
            self.delivery = DirectDelivery(self.client, self.email)
        return self.delivery
