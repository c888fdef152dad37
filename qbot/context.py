"""The one object a handler receives."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from qbot.cooldown import cooldown, cooldown_left, seconds_of
from qbot.errors import MessageBuildError, QbotError
from qbot.filters import normalize_text
from qbot.messages import Message, Reply, Text, as_message
from qbot.models.webhook import IncomingMessage, Room, Update, User
from qbot.scheduling import cancel, schedule
from qbot.state import State
from qbot.storage.base import Handoff, state_key

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.client import QiscusClient
    from qbot.dispatcher import Dispatcher
    from qbot.intents import IntentMatch
    from qbot.messages.postback import Postback
    from qbot.nlu.entities import Entity
    from qbot.office_hours import OfficeHoursNow
    from qbot.omnichannel.client import OmnichannelClient
    from qbot.omnichannel.customer import Customer
    from qbot.omnichannel.templates import QuickReply
    from qbot.omnichannel.templates import Template as WhatsAppTemplate
    from qbot.sending import Sender
    from qbot.storage import Storage
    from qbot.storage.schedule import Job

__all__ = ["Context"]

_UNSET: Any = object()


class Context:
    """Everything about the update being handled, and the ways to answer it.

    Attributes:
        bot: the bot handling the update (its handlers and routers).
        dispatcher: what runs the bot (settings, client, storage), ``bot.dispatcher``.
        update: the whole parsed webhook body.
        sender: who wrote (``email``, ``name``, ``id``, ``avatar_url``).
        room: where (``id``, ``type``, ``name``, ``options`` parsed from JSON).
        message: the comment (``id``, ``type``, ``text``, ``payload``...).
        match: the ``re.Match`` of the ``regex=`` filter that selected the handler.
        postback: for a button tap, the packed ``action`` and ``data``; else ``None``.
        error: in an ``@bot.error`` handler, the exception the handler raised.
        log: a structlog logger bound to ``room_id`` and ``message_id``.
        state: the conversation state of this sender in this room (``get``, ``set``,
            ``update``, ``clear``, ``goto``, ``step``); see ``qbot.state``.
        room_state: the state shared by everyone in the room.
        scheduled: in an ``@bot.scheduled`` handler, the job being run (``name``, ``data``,
            ``due_at``...); else ``None``.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        update: Update,
        sender: Sender,
        *,
        postback: Postback | None = None,
        state: State | None = None,
        room_state: State | None = None,
    ) -> None:
        self.bot: Bot = dispatcher.bot
        self.dispatcher = dispatcher
        self.update = update
        self.sender: User = update.payload.sender
        self.room: Room = update.payload.room
        self.message: IncomingMessage = update.payload.message
        self.match: re.Match[str] | None = None
        self.postback = postback
        self.error: BaseException | None = None
        self._log: Any = None
        self.handler_name: str | None = None
        self._outbound = sender
        self._normalized: str | None = None
        self._intent: IntentMatch | None = _UNSET
        self._entities: list[Entity] | None = None
        self._desk: Sender | None = None
        self.scheduled: Job | None = None
        self._scheduled_calls = 0
        room_id = str(self.room.id)
        settings = dispatcher.settings
        ttl = settings.state.ttl if settings is not None else None
        storage = dispatcher.storage
        self.state = state or State(storage, state_key(room_id, state_owner(self.sender)), ttl=ttl)
        self.room_state = room_state or State(storage, state_key(room_id), ttl=ttl)

    @property
    def log(self) -> Any:
        """A structlog logger bound to ``room_id`` and ``message_id`` (built on first use)."""
        if self._log is None:
            self._log = structlog.get_logger("qbot.handler").bind(
                room_id=str(self.room.id), message_id=self.message.identity
            )
        return self._log

    # --- what was said -------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The message text as sent (for a postback, the text the client posted)."""
        return self.message.text

    @property
    def burst(self) -> list[str]:
        """The texts of a debounced burst (``Bot(debounce=...)``), in order; else ``[text]``."""
        texts = (self.message.extras or {}).get("qbot_burst")
        if (
            isinstance(texts, list)
            and all(isinstance(t, str) for t in texts)
            and "\n".join(texts) == self.message.text
        ):
            return list(texts)
        return [self.message.text]

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
            intents = self.dispatcher.intents
            is_text = self.message.type in ("text", "reply")
            self._intent = intents.match(self.text) if intents and is_text else None
        return self._intent

    @property
    def entities(self) -> list[Entity]:
        """Numbers, money, phones, emails, dates, times and the intents file's entity lists
        found in the text, in reading order (see ``qbot.nlu.entities``)."""
        if self._entities is None:
            from qbot.nlu.entities import extract

            intents = self.bot.intents
            self._entities = intents.entities(self.text) if intents else extract(self.text)
        return self._entities

    @property
    def client(self) -> QiscusClient:
        """The bot's Qiscus REST client, for calls beyond replying."""
        return self.dispatcher.client

    @property
    def storage(self) -> Storage:
        """The bot's storage (state, handoffs, ...), for what ``ctx.state`` does not cover."""
        return self.dispatcher.storage

    @property
    def office_hours(self) -> OfficeHoursNow:
        """The bot's office hours now (by the bot's clock): ``is_open``, ``opens_at``,
        ``closes_at``; always open when the bot has none (``office_hours:`` in the config)."""
        from qbot.office_hours import OfficeHoursNow

        source = self.dispatcher.office_hours
        return OfficeHoursNow(source.hours if source else None, self.dispatcher.clock)

    # --- state and handoff ----------------------------------------------------------------------

    def rollback_state(self) -> None:
        """Drop the state writes not yet saved (done for you when a handler raises)."""
        self.state.rollback()
        self.room_state.rollback()

    async def handoff(
        self,
        reason: str,
        division: str | int | None = None,
        agent_id: int | str | None = None,
        *,
        ttl: float | None = None,
    ) -> Handoff:
        """Hand the room to a human agent: the bot stops answering in it.

        Messages and button taps keep arriving and are stored and acked, but no handler runs for
        them (each is logged as ``handoff.skipped``) until :meth:`resume` (e.g. from an
        ``@bot.event("left_room")`` handler: system events still run), an agent's resume command
        (``state.resume_command`` from one of ``state.agents``), ``qbot handoffs end ROOM``,
        Omnichannel's resolved webhook, or the timeout ends it.

        In an Omnichannel room the desk is told too, through the outbox (durable, retried, in
        order with the replies): the bot is turned off for the room, then ``agent_id`` is
        assigned, else the available agent of ``division`` with the fewest customers, else
        Omnichannel allocates the room itself. A desk failure never raises here: it is logged
        (``handoff.desk_failed``) and the room stays handed off in qbot.

        Outside the bot's office hours (``office_hours:`` in the config) the customer is told
        when agents are back (``office_hours.closed_message``), and the desk calls are queued
        until the opening (durably: they survive a restart).

        Args:
            reason: why (shown by ``qbot handoffs list``).
            division: an Omnichannel division name or id to pick the agent from.
            agent_id: the Omnichannel agent to assign.
            ttl: seconds until the bot answers again by itself; ``None``: ``state.handoff_ttl``.

        Raises:
            StorageError: ``reason`` is not a string or ``ttl`` is not a positive number.
        """
        settings = self.dispatcher.settings
        if ttl is None and settings is not None:
            ttl = settings.state.handoff_ttl
        # Outside office hours the customer is told when agents are back, and the desk calls
        # wait for the opening (qbot.office_hours_handoff).
        from qbot.office_hours_handoff import after_hours

        opens = await after_hours(self, division=division, agent_id=agent_id)
        if opens is not None and ttl is not None:  # the handoff's time counts from the opening
            ttl += max(0.0, opens.timestamp() - self.dispatcher.clock.time())
        # The desk first: a crash after the handoff is stored would skip the re-run's handler.
        if opens is None and await self.dispatcher.is_omnichannel(str(self.room.id)):
            try:
                await self.desk_call("activate", active=False)
                if agent_id is not None or division is not None:
                    await self.desk_call("assign", agent_id=agent_id, division=division)
            except Exception as e:  # refused for good: logged, the handoff stands in qbot
                self.log.error("handoff.desk_failed", error=f"{type(e).__name__}: {e}")
        started = await self.dispatcher.storage.handoff_start(str(self.room.id), reason, ttl=ttl)
        self.log.info("handoff.started", reason=reason, ttl=ttl, division=division, agent=agent_id)
        return started

    async def resume(self) -> bool:
        """Give the room back to the bot (at the desk too); False when it was not handed off."""
        ended = await self.dispatcher.storage.handoff_end(str(self.room.id))
        if ended:
            self.log.info("handoff.ended", by="handler")
        if await self.dispatcher.is_omnichannel(str(self.room.id)):
            try:
                await self.desk_call("activate", active=True)
            except Exception as e:
                self.log.error("resume.desk_failed", error=f"{type(e).__name__}: {e}")
        return ended

    # --- follow-ups (qbot.scheduling) -----------------------------------------------------------

    @property
    def data(self) -> Any:
        """In an ``@bot.scheduled`` handler, the job's ``data``; else ``None``."""
        return None if self.scheduled is None else self.scheduled.data

    async def schedule(
        self,
        name: str,
        *,
        after: timedelta | float | None = None,
        at: datetime | None = None,
        data: Any = None,
        cancel_on_reply: bool = False,
        while_handed_off: bool = False,
    ) -> Job:
        """Run the ``@bot.scheduled(name)`` handler in this room later, durably, exactly once.

        The job is stored at once (not rolled back if the handler then raises). Scheduling a
        name the room already has replaces that job. It runs in the room's order with its
        messages, as if this sender wrote then: ``ctx.sender`` and ``ctx.room`` are this
        update's, ``ctx.reply`` reaches the room.

        Args:
            name: the job's name, unique in the room (letters, digits, ``_ . -``).
            after: a :class:`~datetime.timedelta` (or seconds) from now on ``bot.clock``.
            at: an aware :class:`~datetime.datetime` instead.
            data: a JSON value the handler reads as ``ctx.data``.
            cancel_on_reply: the customer's next message in the room cancels it.
            while_handed_off: run it even while a human agent has the room (dropped then
                otherwise).

        Raises:
            ScheduleError: neither or both of ``after``/``at``, a negative delay, a naive
                datetime, a bad name, or ``data`` that is not JSON.
            ConfigError: no ``@bot.scheduled(name)`` handler is registered.
        """
        origin = {
            "from": self.sender.model_dump(mode="json", exclude_none=True),
            "room": self.room.model_dump(mode="json", exclude_none=True, exclude={"participants"}),
            "app_code": self.update.app_code,
            # A job scheduled by a job's handler: that run, if re-run after a crash, still runs.
            "parent": self.scheduled.id if self.scheduled is not None else None,
            "channel": self.update.channel.model_dump(mode="json", by_alias=True)
            if self.update.channel is not None
            else None,
        }
        # The same id when this handler runs again (after a crash): the first job stands.
        self._scheduled_calls += 1
        seed = f"{self._outbound.origin}#schedule:{name}:{self._scheduled_calls}"
        job_id = hashlib.blake2b(seed.encode(), digest_size=16).hexdigest()
        return await schedule(
            self.dispatcher,
            str(self.room.id),
            name,
            job_id=job_id,
            after=after,
            at=at,
            data=data,
            cancel_on_reply=cancel_on_reply,
            while_handed_off=while_handed_off,
            origin=origin,
        )

    async def cancel_scheduled(self, name: str) -> bool:
        """Cancel this room's job ``name``; whether there was one (fired and not yet run
        counts: it is dropped when its turn comes)."""
        return bool(await cancel(self.dispatcher, str(self.room.id), name))

    async def cooldown(
        self,
        name: str,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
        per_user: bool = False,
    ) -> bool:
        """Whether a notification ``name`` may go to this room now; if so, the room cools down
        for the given time (``qbot.cooldown``): ``if await ctx.cooldown("promo", hours=24):``.

        Args:
            per_user: one cooldown per sender in the room instead of one for the room.

        Raises:
            CooldownError: a bad name, or a duration that is not more than 0.
        """
        duration = seconds_of(seconds, minutes, hours, days)
        user = state_owner(self.sender) if per_user else None
        return await cooldown(self.dispatcher, str(self.room.id), name, duration, user=user)

    async def cooldown_left(self, name: str, *, per_user: bool = False) -> float:
        """Seconds until this room's cooldown ``name`` ends (0: none), without starting one."""
        user = state_owner(self.sender) if per_user else None
        return await cooldown_left(self.dispatcher, str(self.room.id), name, user)

    # --- Omnichannel ----------------------------------------------------------------------------

    @property
    def omnichannel(self) -> OmnichannelClient:
        """The bot's Omnichannel client, for desk calls beyond the ones here.

        Raises:
            QbotError: the bot has no settings to build one from.
        """
        return self.dispatcher.omnichannel

    @property
    def customer(self) -> Customer:
        """The room's customer at the desk: ``properties()``, ``update(**kv)``, ``tag(...)``."""
        from qbot.omnichannel.customer import Customer

        return Customer(self.dispatcher.omnichannel, str(self.room.id))

    async def assign_agent(self, agent_id: int | str) -> None:
        """Assign an Omnichannel agent to the room, through the outbox (durable, retried)."""
        await self.desk_call("assign", agent_id=agent_id)

    async def desk_call(self, call: str, **args: Any) -> None:
        """Queue a desk call (``activate``, ``assign``) behind the room's replies.

        Raises:
            QiscusAPIError: the desk refused it for good (a retryable failure is queued).
        """
        from qbot.omnichannel.delivery import DeskCall
        from qbot.sending import Sender

        if self._desk is None:
            outbound = self._outbound
            self._desk = Sender(outbound.delivery, f"{outbound.origin}#desk", None)
        await self._desk.send(self.room.id, DeskCall(call, **args))

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
        return await self._send(self.room.id, as_message(message))

    async def reply_template(
        self, name: str, /, *, quote: bool = False, **variables: Any
    ) -> list[Any]:
        """Render ``templates/<name>.*`` with ``variables`` and reply with the result."""
        templates = self.dispatcher.templates
        if templates is None:
            raise QbotError(
                f"cannot render template {name!r}: the bot has no templates directory "
                "(Bot(templates='templates') or the templates.directory setting)"
            )
        return await self.reply(templates.render(name, **variables), quote=quote)

    async def send(self, room_id: int | str, message: str | Message) -> list[Any]:
        """Post to any room the bot is in (not only the current one).

        Raises:
            OutsideWindowError: ``room_id`` is a WhatsApp room whose 24-hour window is closed
                and the bot has no fallback template (see :attr:`window`).
        """
        return await self._send(room_id, as_message(message))

    async def _send(self, room_id: int | str, message: Message) -> list[Any]:
        """Send ``message``, or what WhatsApp's window allows instead (``omnichannel.window``)."""
        from qbot.omnichannel.window import guard

        decision = await guard(self.dispatcher, room_id, message, current=str(self.room.id))
        if decision.message is None:
            return []
        if not decision.fallback:
            return await self._outbound.send(room_id, decision.message)
        from qbot.omnichannel.templates import Template

        assert isinstance(decision.message, Template)
        sent = await self._send_template(room_id, decision.message)
        if decision.record is not None:
            await self.dispatcher.windows.fallback_sent(str(room_id), decision.record)
        return sent

    @property
    def window(self) -> timedelta | None:
        """How long WhatsApp's 24-hour window stays open in this room (zero once closed).

        ``None`` where no window applies: other Omnichannel channels, Chat SDK rooms. Outside
        the window a free-form reply raises ``OutsideWindowError`` (or sends the bot's fallback
        template); :meth:`send_template` always works.
        """
        return self.dispatcher.windows.left(str(self.room.id))

    async def send_template(
        self,
        template: str | WhatsAppTemplate,
        language: str = "id",
        variables: Iterable[Any] = (),
        buttons: Iterable[QuickReply] = (),
        header: str | None = None,
    ) -> list[Any]:
        """Send an approved WhatsApp template to this room's customer (inside or outside the
        window), through the outbox: durable, retried, never sent twice.

        Args:
            template: the approved template's name, or a ready ``Template``.
            language: the approved language's code.
            variables: the body's ``{{1}}``, ``{{2}}``... values.
            buttons: ``QuickReply(label, action=, data=)``: a tap routes to ``@bot.postback``.
            header: the header's ``{{1}}`` value, when it has one.

        Raises:
            TemplateLimitError: over one of WhatsApp's limits, or not as many variables as the
                approved template's placeholders.
            MessageBuildError: not a WhatsApp room, or not an approved template of the app.
        """
        from qbot.omnichannel.proactive import build_template

        built = build_template(template, language, variables, buttons, header)
        return await self._send_template(self.room.id, built)

    async def _send_template(self, room_id: int | str, template: WhatsAppTemplate) -> list[Any]:
        from qbot.omnichannel.proactive import TemplateSend, target_of_room

        room = str(room_id)
        info = await self.dispatcher.rooms.get(room)
        if info is None or info.source != "wa":
            where = "a Chat SDK room" if info is None else f"on channel {info.source!r}"
            raise MessageBuildError(
                f"room {room} is {where}: templates are WhatsApp's (send a message instead)"
            )
        record = await self.dispatcher.windows.get(room, cached=room == str(self.room.id))
        target = await target_of_room(self.dispatcher, room, record)
        prepared = await self.dispatcher.template_catalog.prepare(template, target.channel_id)
        return await self._outbound.send(
            room_id, TemplateSend(prepared, target.to, target.channel_id)
        )

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


def state_owner(user: User) -> str:
    """Who the per-user state belongs to: the email, else the id."""
    return user.email or str(user.id)
