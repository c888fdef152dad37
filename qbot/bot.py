"""The Bot: the root router, its settings, and ``feed_update``, the core without HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from qbot.context import Context
from qbot.errors import ConfigError, PostbackError, QbotError
from qbot.intents import IntentSet, load_intents
from qbot.messages.postback import PostbackSigner, unpack_postback
from qbot.models.webhook import Update
from qbot.routing import EVENT, POSTBACK, _IntentHolder, run_handler, update_kind
from qbot.sending import Delivery, DirectDelivery, Sender
from qbot.templates import Templates

if TYPE_CHECKING:
    from qbot.client import QiscusClient
    from qbot.config import Settings

__all__ = ["Bot", "Outcome"]

log = structlog.get_logger("qbot.bot")


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

    # --- configuration --------------------------------------------------------------------------

    def configure(self, settings: Settings, *, client: QiscusClient | None = None) -> None:
        """Apply settings: identity, intents, templates, postback secret and the Qiscus client.

        Raises:
            ConfigError: an intents file is invalid or an ``@intent`` handler names no intent.
        """
        from qbot.client import QiscusClient, RetryPolicy

        self.settings = settings
        self.email = settings.bot.email
        if settings.intents.file:
            self.intents = load_intents(settings.intents.file, settings.intents.threshold)
        if self.templates is None and Path(settings.templates.directory).is_dir():
            self.templates = Templates(settings.templates.directory)
        if settings.postback.secret is not None:
            self.signer = PostbackSigner(settings.postback.secret.get_secret_value())
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

    async def aclose(self) -> None:
        """Close the client the bot built for itself."""
        if self._client is not None and self._owns_client:
            await self._client.close()

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

        The emulator, ``qbot shell``, the test kit and the webhook server all come through here.

        Raises:
            ValueError: ``update`` is a mapping that is not a webhook body.
        """
        if not isinstance(update, Update):
            try:
                update = Update.model_validate(update)
            except ValidationError as e:
                raise ValueError(f"not a Qiscus webhook body: {e}") from e
        reason = self.ignore_reason(update)
        if reason is not None:
            log.debug("update.ignored", reason=reason)
            return Outcome(ignored=reason)
        kind = update_kind(update.message.type)
        postback = None
        if kind == POSTBACK:
            try:
                postback = unpack_postback(update.message.payload, self.signer)
            except PostbackError as e:
                log.warning("postback.rejected", reason=str(e), sender=update.sender.email)
                return Outcome(ignored="rejected_postback")
        origin = f"{update.room.id}:{update.message.identity}"
        sender = Sender(self._delivery(), origin, self.signer)
        ctx = Context(self, update, sender, postback=postback)
        handler = await self._propagate(ctx, kind)
        if handler is None:
            found = self.find_fallback()
            if found is None:
                log.info("update.unhandled", message_type=update.message.type)
                return Outcome(ignored="unhandled", replies=sender.sent)
            fn, router = found
            ctx.handler_name = "fallback"
            await run_handler(fn, router, ctx)
        log.info("update.handled", handler=ctx.handler_name, replies=sender.sent)
        return Outcome(handler=ctx.handler_name, replies=sender.sent)

    def _delivery(self) -> Delivery:
        if self.delivery is None:
            if not self.email:
                raise ConfigError(
                    f"bot {self.name!r} has no email to post replies as: set bot.email in the "
                    "config or Bot(email=...)"
                )
            self.delivery = DirectDelivery(self.client, self.email)
        return self.delivery
