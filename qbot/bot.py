"""The Bot: what a bot author declares (handlers, routers, middlewares, identity).

``bot = Bot()`` is the root router; the work (settings, client, storage, processing updates)
is done by its :class:`~qbot.dispatcher.Dispatcher`, ``bot.dispatcher``. The attributes and
methods below that are not about handlers (``configure``, ``feed_update``, ``client``,
``storage``...) are the dispatcher's, reachable from the bot because that is where bot authors
and the documented API look for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from qbot.clock import Clock
from qbot.cooldown import CooldownError, cooldown, seconds_of
from qbot.debounce import check_window
from qbot.dispatcher import Dispatcher
from qbot.errors import QbotError
from qbot.handlers import HandlerFn, Outcome, check_handler
from qbot.intents import IntentSet, load_intents
from qbot.messages.postback import PostbackSigner
from qbot.routing import RootRouter
from qbot.scheduling import ScheduleError, cancel, run_due, schedule
from qbot.templates import Templates

if TYPE_CHECKING:
    from qbot.client import QiscusClient
    from qbot.config import Settings
    from qbot.models.webhook import Update
    from qbot.omnichannel.templates import QuickReply, Template
    from qbot.omnichannel.window import Fallback
    from qbot.sending import Delivery
    from qbot.storage import Storage
    from qbot.storage.schedule import Job

__all__ = ["Bot", "Outcome"]

T = TypeVar("T")
F = TypeVar("F", bound=HandlerFn)


class _Forwarded(Generic[T]):
    """A bot attribute that is its dispatcher's: ``bot.email`` is ``bot.dispatcher.email``."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, bot: None, owner: type) -> _Forwarded[T]: ...

    @overload
    def __get__(self, bot: Bot, owner: type) -> T: ...

    def __get__(self, bot: Bot | None, owner: type) -> _Forwarded[T] | T:
        if bot is None:
            return self
        value: T = getattr(bot.dispatcher, self.name)
        return value

    def __set__(self, bot: Bot, value: T) -> None:
        setattr(bot.dispatcher, self.name, value)


class Bot(RootRouter):
    """A Qiscus bot: register handlers on it, then serve it with ``qbot run``.

    Args:
        name: shown in logs.
        email: the bot's Qiscus user; its replies are posted as this user and its own messages
            are ignored. ``bot.email`` in the config sets it too.
        intents: an intents YAML file or an :class:`~qbot.intents.IntentSet`.
        templates: the directory of reply templates.
        postback_secret: signs postback data; forged or unsigned postbacks are then rejected.
        client: a ready Qiscus client (otherwise one is built from the settings).
        clock: the time the bot sees (default the wall clock; the emulator and the test kit
            give it a :class:`~qbot.clock.ManualClock` they can move forward).
        debounce: seconds to gather a customer's burst of text messages into one update
            (``ctx.text`` joins them with newlines; :mod:`qbot.debounce`); None: answer each.
        fallback_template: what a free-form reply to a WhatsApp room becomes once its 24-hour
            window is closed: a ``Template``, or a function of (room id, the message) returning
            one or ``None``; unset, ``omnichannel.whatsapp.fallback_template``, else such a
            reply raises ``OutsideWindowError`` (see docs/whatsapp.md).
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
        clock: Clock | None = None,
        debounce: float | None = None,
        fallback_template: Fallback | None = None,
    ) -> None:
        super().__init__(name)
        self.dispatcher = Dispatcher(
            self,
            email=email,
            intents=load_intents(intents) if isinstance(intents, str | Path) else intents,
            templates=Templates(templates) if templates is not None else None,
            signer=PostbackSigner(postback_secret) if postback_secret else None,
            client=client,
            clock=clock,
            fallback_template=fallback_template,
        )
        self.dispatcher.debounce = check_window(debounce, "Bot(debounce=...)")
        self._lifecycle: dict[str, list[HandlerFn]] = {
            "resolved": [],
            "new-session": [],
            "agent-allocation": [],
        }

    # --- Omnichannel's lifecycle webhooks (qbot.omnichannel.lifecycle) --------------------------

    def on_resolved(self, fn: F) -> F:
        """Run ``fn`` when an agent resolves a room (after the bot is back on, state cleared).

        ``ctx.room.id`` is the room, ``ctx.sender`` the customer; ``ctx.reply`` reaches the
        customer (e.g. a satisfaction survey).
        """
        return self._on("resolved", fn)

    def on_new_session(self, fn: F) -> F:
        """Run ``fn`` when a customer starts a new Omnichannel session."""
        return self._on("new-session", fn)

    def on_agent_allocation(self, fn: F) -> F:
        """Run ``fn`` when Omnichannel asks who should take a room (``ctx.assign_agent(id)``).

        With no such handler, Omnichannel's candidate agent is assigned.
        """
        return self._on("agent-allocation", fn)

    def _on(self, kind: str, fn: F) -> F:
        check_handler(fn, f"on_{kind.replace('-', '_')}")
        self._lifecycle[kind].append(fn)
        return fn

    # --- follow-ups (qbot.scheduling) -----------------------------------------------------------

    async def schedule(
        self,
        room_id: int | str,
        name: str,
        *,
        after: timedelta | float | None = None,
        at: datetime | None = None,
        data: Any = None,
        cancel_on_reply: bool = False,
        while_handed_off: bool = False,
    ) -> Job:
        """Schedule the room's job ``name`` from outside a handler (as ``ctx.schedule``; the
        handler's ``ctx.sender`` is then empty)."""
        await self.dispatcher.open()
        return await schedule(
            self.dispatcher,
            _room_id(room_id),
            name,
            after=after,
            at=at,
            data=data,
            cancel_on_reply=cancel_on_reply,
            while_handed_off=while_handed_off,
        )

    async def cancel_scheduled(self, room_id: int | str, name: str | None = None) -> list[str]:
        """Cancel the room's job ``name`` (every job of the room with None); the names."""
        await self.dispatcher.open()
        return await cancel(self.dispatcher, _room_id(room_id), name)

    async def cooldown(
        self,
        room_id: int | str,
        name: str,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
    ) -> bool:
        """``ctx.cooldown`` from outside a handler: whether ``name`` may go to the room now."""
        duration = seconds_of(seconds, minutes, hours, days)
        await self.dispatcher.open()
        return await cooldown(self.dispatcher, _room_id(room_id, CooldownError), name, duration)

    async def run_due(self) -> list[Outcome]:
        """Fire the jobs due now on ``bot.clock`` and wait for their handlers (tests, emulator)."""
        return await run_due(self.dispatcher)

    async def send_template(
        self,
        to: str | int,
        template: str | Template,
        language: str = "id",
        variables: Iterable[Any] = (),
        buttons: Iterable[QuickReply] = (),
        header: str | None = None,
        *,
        key: str | None = None,
    ) -> Any:
        """Send an approved WhatsApp template outside any handler (a reminder, a code...).

        Through the outbox like every reply: durable, retried when Omnichannel is down, in
        order with the room's replies.

        Args:
            to: the customer's phone number (``"+62 812-..."``: a leading ``+`` is always a
                number) or a room id qbot knows as a WhatsApp room (an ``int`` is always a
                room). A number qbot saw write is sent to in its room.
            template: the approved template's name, or a ready ``Template``.
            language, variables, buttons, header: as for ``ctx.send_template``.
            key: makes the send idempotent: a second call with the same key sends nothing
                (e.g. ``f"reminder:{order_id}"``). Without one, each call sends once.

        Returns:
            Omnichannel's answer (``TemplateSent``), or ``None`` when it was queued (sent
            later) or already sent under ``key``.

        Raises:
            TemplateLimitError: over one of WhatsApp's limits, or the variables do not match.
            MessageBuildError: not an approved template, or ``to`` is neither a known WhatsApp
                room nor a phone number.
            ConfigError: no WhatsApp channel to send from (``omnichannel.whatsapp.channel_id``).
        """
        from qbot.omnichannel.proactive import build_template, send_proactive

        built = build_template(template, language, variables, buttons, header)
        return await send_proactive(self.dispatcher, to, built, key=key)

    def lifecycle_handlers(self, kind: str) -> list[HandlerFn]:
        """The handlers of a lifecycle webhook (``resolved``, ``new-session``...), in order."""
        return list(self._lifecycle[kind])

    # --- what settings decide: the dispatcher's, read and set through the bot ------------------

    email: _Forwarded[str | None] = _Forwarded("the bot's Qiscus user (``bot.email``)")
    intents: _Forwarded[IntentSet | None] = _Forwarded("what ``@intent`` handlers wait for")
    templates: _Forwarded[Templates | None] = _Forwarded(
        "the reply templates (``ctx.reply_template``)"
    )
    signer: _Forwarded[PostbackSigner | None] = _Forwarded("signs and checks postback data")
    clock: _Forwarded[Clock] = _Forwarded("the time the bot sees (:mod:`qbot.clock`)")
    settings: _Forwarded[Settings | None] = _Forwarded("the settings :meth:`configure` applied")
    delivery: _Forwarded[Delivery | None] = _Forwarded(
        "what posts replies when set (tests), else the client"
    )

    @property
    def client(self) -> QiscusClient:
        """The Qiscus REST client replies go through."""
        return self.dispatcher.client

    @property
    def storage(self) -> Storage:
        """State, dedupe, leases, inbox and outbox (``memory://`` unless configured)."""
        return self.dispatcher.storage

    @property
    def storage_url(self) -> str:
        """Where :attr:`storage` was opened from, as shown in logs."""
        return self.dispatcher.storage_url

    def configure(self, settings: Settings, *, client: QiscusClient | None = None) -> None:
        """Apply settings: see :meth:`qbot.dispatcher.Dispatcher.configure`."""
        self.dispatcher.configure(settings, client=client)

    def use_storage(self, storage: Storage, *, url: str | None = None) -> None:
        """Replace the storage: see :meth:`qbot.dispatcher.Dispatcher.use_storage`."""
        self.dispatcher.use_storage(storage, url=url)

    async def open(self) -> Storage:
        """Connect the storage (idempotent) and return it."""
        return await self.dispatcher.open()

    async def start(self) -> None:
        """Check typed names, run the startup hooks (once): see :meth:`Dispatcher.start`."""
        await self.dispatcher.start()

    async def aclose(self) -> None:
        """Finish fed updates in hand, run the shutdown hooks, close the client and storage."""
        await self.dispatcher.aclose()

    async def feed_update(self, update: Update | Mapping[str, Any]) -> Outcome:
        """Process one update as the webhook server would, and return once it is done.

        Raises:
            ValueError: ``update`` is a mapping that is not a webhook body.
            StorageError: the storage failed.
        """
        return await self.dispatcher.feed_update(update)


def _room_id(room_id: object, error: type[QbotError] = ScheduleError) -> str:
    """A room id as storage keys it: an int or a text, never ``None`` read as "None"."""
    if isinstance(room_id, bool) or not isinstance(room_id, int | str):
        raise error(f"room_id must be a room id (int or str), got {room_id!r}")
    return str(room_id)
