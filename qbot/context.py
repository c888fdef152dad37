"""The one object a handler receives."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import structlog

from qbot.errors import MessageBuildError, QbotError
from qbot.filters import normalize_text
from qbot.messages import Message, Reply, Text, as_message
from qbot.models.webhook import IncomingMessage, Room, Update, User

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.client import QiscusClient
    from qbot.intents import IntentMatch
    from qbot.messages.postback import Postback
    from qbot.sending import Sender

__all__ = ["Context"]

_UNSET: Any = object()


class Context:
    """Everything about the update being handled, and the ways to answer it.

    Attributes:
        bot: the bot handling the update.
        update: the whole parsed webhook body.
        sender: who wrote (``email``, ``name``, ``id``, ``avatar_url``).
        room: where (``id``, ``type``, ``name``, ``options`` parsed from JSON).
        message: the comment (``id``, ``type``, ``text``, ``payload``...).
        match: the ``re.Match`` of the ``regex=`` filter that selected the handler.
        postback: for a button tap, the packed ``action`` and ``data``; else ``None``.
        error: in an ``@bot.error`` handler, the exception the handler raised.
        log: a structlog logger bound to the room and message.
    """

    def __init__(
        self,
        bot: Bot,
        update: Update,
        sender: Sender,
        *,
        postback: Postback | None = None,
    ) -> None:
        self.bot = bot
        self.update = update
        self.sender: User = update.payload.sender
        self.room: Room = update.payload.room
        self.message: IncomingMessage = update.payload.message
        self.match: re.Match[str] | None = None
        self.postback = postback
        self.error: BaseException | None = None
        self.log = structlog.get_logger("qbot.handler")
        self.handler_name: str | None = None
        self._outbound = sender
        self._normalized: str | None = None
        self._intent: IntentMatch | None = _UNSET

    # --- what was said -------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The message text as sent (for a postback, the text the client posted)."""
        return self.message.text

    @property
    def normalized_text(self) -> str:
        """The text trimmed, whitespace folded and case-folded: what ``text=`` compares."""
        if self._normalized is None:
            self._normalized = normalize_text(self.message.text)
        return self._normalized

    @property
    def event_type(self) -> str | None:
        """For a ``system_event`` comment, its subtype (``add_member``...); else ``None``."""
        if self.message.type != "system_event":
            return None
        value = (self.message.payload or {}).get("type")
        return value if isinstance(value, str) else None

    @property
    def channel(self) -> str | None:
        """Omnichannel source (``wa``, ``line``...) when the webhook says, else ``None``."""
        if self.update.channel and self.update.channel.source:
            return self.update.channel.source
        source = self.room.options.get("source") or self.room.options.get("channel")
        return source if isinstance(source, str) else None

    @property
    def intent(self) -> IntentMatch | None:
        """The intent the text was classified as (name and score), or ``None``."""
        return self.classify()

    def classify(self) -> IntentMatch | None:
        """Classify the text against the bot's intents once, caching the result."""
        if self._intent is _UNSET:
            intents = self.bot.intents
            is_text = self.message.type in ("text", "reply")
            self._intent = intents.match(self.text) if intents and is_text else None
        return self._intent

    @property
    def client(self) -> QiscusClient:
        """The bot's Qiscus REST client, for calls beyond replying."""
        return self.bot.client

    # --- answering ------------------------------------------------------------------------------

    async def reply(self, message: str | Message, *, quote: bool = False) -> list[Any]:
        """Answer in the room the update came from.

        Args:
            message: a text or a builder (``Buttons``, ``Card``, ...).
            quote: send a ``reply`` comment quoting the incoming message (text only). When the
                platform gave the message no comment id (Omnichannel), a plain text is sent and
                ``reply.quote_unavailable`` is logged.

        Returns:
            What Qiscus answered for each comment posted.
        """
        if quote:
            message = self._quoted(message)
        return await self._outbound.send(self.room.id, as_message(message))

    async def reply_template(
        self, name: str, *, quote: bool = False, **variables: Any
    ) -> list[Any]:
        """Render ``templates/<name>.*`` with ``variables`` and reply with the result."""
        templates = self.bot.templates
        if templates is None:
            raise QbotError(
                f"cannot render template {name!r}: the bot has no templates directory "
                "(Bot(templates='templates') or the templates.directory setting)"
            )
        return await self.reply(templates.render(name, **variables), quote=quote)

    async def send(self, room_id: int | str, message: str | Message) -> list[Any]:
        """Post to any room the bot is in (not only the current one)."""
        return await self._outbound.send(room_id, as_message(message))

    def _quoted(self, message: str | Message) -> Message:
        if isinstance(message, Text):
            text = message.text
        elif isinstance(message, str):
            text = message
        else:
            raise MessageBuildError(
                f"quote=True needs a text reply, got {type(message).__name__}; "
                "send the rich message separately"
            )
        comment_id = self.message.comment_id
        if comment_id is None:
            self.log.warning("reply.quote_unavailable", reason="incoming message has no id")
            return Text(text)
        return Reply(text, replied_comment_id=comment_id)

    def __repr__(self) -> str:
        return (
            f"<Context room={self.room.id!r} message={self.message.identity!r} "
            f"type={self.message.type!r}>"
        )
