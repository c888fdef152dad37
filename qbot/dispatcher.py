"""The dispatcher: does the work for a :class:`~qbot.bot.Bot`, which only declares handlers.

The bot is the root router (what the author writes); its dispatcher owns what settings decide
(identity, intents, templates, postback secret, the Qiscus client, the storage and its
lifecycle) and processes updates:

```
feed_update(update) ──▶ Runtime.run: accept (ignore / dedupe in the inbox) → room worker
                         (one room at a time, in order) → process(update, ack=item)
process(update)     ──▶ handoff / agent command / postback checks → Context → router tree
                         (bot.propagate) → replies through the outbox → state + ack committed
```
``process`` and its checks are the :class:`~qbot.processing.Processing` mixin.
``feed_update`` (the test kit, ``qbot shell``, the emulator) goes through the same runtime as
the webhook server, on the bot's storage (``memory://`` unless configured).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from qbot import office_hours_handoff
from qbot._aio import Shared
from qbot.clock import Clock, SystemClock
from qbot.errors import ConfigError, QbotError, StorageError
from qbot.handlers import Outcome
from qbot.hooks import run_shutdown, run_startup
from qbot.intents import IntentSet, load_intents
from qbot.messages.postback import PostbackSigner
from qbot.models.webhook import Update
from qbot.omnichannel.delivery import RoomDelivery, RoomMemory
from qbot.omnichannel.lifecycle import lifecycle_update
from qbot.omnichannel.proactive import TemplateCatalog
from qbot.omnichannel.window import Fallback, WindowTracker
from qbot.outbox import Outbox
from qbot.processing import Processing
from qbot.runtime import Runtime
from qbot.sending import Delivery, DirectDelivery
from qbot.storage import MemoryStorage, Storage, open_storage
from qbot.templates import Templates

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.client import QiscusClient
    from qbot.config import Settings
    from qbot.office_hours import OfficeHoursSource
    from qbot.omnichannel.client import OmnichannelClient

__all__ = ["Dispatcher", "Outcome"]

log = structlog.get_logger("qbot.bot")


class Dispatcher(Processing):
    """Runs a bot: settings, client, storage, and the path of every update through them.

    Built by the :class:`~qbot.bot.Bot` (``bot.dispatcher``); the bot's ``configure``,
    ``feed_update``, ``client``, ``storage``... are this object's.

    Args:
        bot: the root router whose handlers run.
        email: the bot's Qiscus user (its replies are posted as it, its messages ignored).
        intents: what ``@intent`` handlers wait for.
        templates: reply templates.
        signer: signs and checks postback data.
        client: a ready Qiscus client (otherwise one is built from the settings).
        clock: the time the bot sees (default the wall clock; a
            :class:`~qbot.clock.ManualClock` in the emulator and tests).
        fallback_template: sent instead of a free-form message once a WhatsApp room's 24-hour
            window is closed (see ``qbot.omnichannel.window``).
    """

    def __init__(
        self,
        bot: Bot,
        *,
        email: str | None = None,
        intents: IntentSet | None = None,
        templates: Templates | None = None,
        signer: PostbackSigner | None = None,
        client: QiscusClient | None = None,
        clock: Clock | None = None,
        fallback_template: Fallback | None = None,
    ) -> None:
        self.bot = bot
        self.fallback_template = fallback_template
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.debounce: float | None = None  # seconds a customer's burst is gathered (debounce)
        self.email = email
        self.intents = intents
        self.templates = templates
        self.signer = signer
        self.settings: Settings | None = None
        self.delivery: Delivery | None = None
        self.storage: Storage = MemoryStorage()
        self.storage_url = "memory://"
        self._client = client
        self._owns_client = False
        self._storage_open = False
        self._retired: list[Storage] = []
        self._retired_clients: list[OmnichannelClient] = []
        self._runtime: Runtime | None = None
        self._runtime_for: tuple[asyncio.AbstractEventLoop, Storage] | None = None
        self.outbox = Outbox(self.storage, self.outbound)  # replies, records, waiting rooms
        self._started = False  # the startup hooks ran (start()); aclose() runs the shutdown ones
        self._starting: Shared[None] = Shared()  # concurrent first updates share one start
        self._omnichannel: OmnichannelClient | None = None
        self._owns_omnichannel = False
        self._rooms: RoomMemory | None = None
        self.office_hours: OfficeHoursSource | None = None  # office_hours: in the config
        self.windows = WindowTracker(self)  # when each WhatsApp room's customer last wrote
        self.template_catalog = TemplateCatalog(self)  # the approved WhatsApp templates

    # --- configuration --------------------------------------------------------------------------

    def configure(self, settings: Settings, *, client: QiscusClient | None = None) -> None:
        """Apply settings: identity, intents, templates, postback secret, client and storage.

        The storage is ``storage.url`` (not connected until first use); unset, a fresh
        ``memory://`` (the webhook server then opens ``sqlite:///.qbot/qbot.db`` instead).

        Raises:
            ConfigError: an intents file is invalid, an ``@intent`` handler names no intent, or
                ``storage.url`` is not a storage URL.
        """
        from qbot.client import QiscusClient

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
            # A client built for older settings is replaced (the caller closed it with
            # aclose(); its session is only opened on first use).
            self._client = QiscusClient.from_settings(settings)
            self._owns_client = True
        self.delivery = None
        self.template_catalog = TemplateCatalog(self)  # another app's, maybe: listed again
        if self._owns_omnichannel and self._omnichannel is not None:
            self._retired_clients.append(self._omnichannel)
        self._omnichannel, self._owns_omnichannel = None, False
        self.office_hours = office_hours_handoff.configure(self, settings)
        self.bot.check_intents()
        self.bot.check_names()

    @property
    def client(self) -> QiscusClient:
        """The Qiscus REST client replies go through."""
        if self._client is None:
            raise QbotError(
                f"bot {self.bot.name!r} has no Qiscus client: call bot.configure(settings) "
                "or pass Bot(client=QiscusClient(...))"
            )
        return self._client

    @property
    def omnichannel(self) -> OmnichannelClient:
        """The Omnichannel client (``omnichannel:`` settings, ``qiscus.secret_key``).

        Raises:
            QbotError: the bot has no settings to build it from.
            ConfigError: the settings have no app code or secret key.
        """
        if self._omnichannel is None:
            from qbot.omnichannel.client import OmnichannelClient

            if self.settings is None:
                raise QbotError(
                    f"bot {self.bot.name!r} has no Omnichannel client: call "
                    "bot.configure(settings) first"
                )
            self._omnichannel = OmnichannelClient.from_settings(self.settings)
            self._owns_omnichannel = True
        return self._omnichannel

    @omnichannel.setter
    def omnichannel(self, client: OmnichannelClient) -> None:
        """Use a ready client (the test kit's); the caller closes it."""
        if self._owns_omnichannel and self._omnichannel is not None:
            self._retired_clients.append(self._omnichannel)
        self._omnichannel, self._owns_omnichannel = client, False
        self.delivery = None

    @property
    def rooms(self) -> RoomMemory:
        """Which rooms are Omnichannel rooms (kept in the storage)."""
        if self._rooms is None:
            self._rooms = RoomMemory(self.storage)
        return self._rooms

    async def is_omnichannel(self, room_id: str) -> bool:
        """Whether replies to ``room_id`` go through Omnichannel's ``/bot``."""
        if self.settings is not None and self.settings.omnichannel.mode == "never":
            return False
        return await self.rooms.get(room_id) is not None

    def use_storage(self, storage: Storage, *, url: str | None = None) -> None:
        """Replace the storage (opened on first use; the old one is closed by :meth:`aclose`).

        Args:
            storage: a storage not yet opened, e.g. ``open_storage("sqlite:///qbot.db")``.
            url: the URL it was opened from, shown in logs.
        """
        if self._storage_open:
            self._retired.append(self.storage)
        self.storage = storage
        self.outbox = Outbox(storage, self.outbound)
        self.storage_url = url or type(storage).__name__
        self._storage_open = False
        self._rooms = None
        self.windows = WindowTracker(self)
        if isinstance(self.delivery, RoomDelivery):  # it remembers rooms in the old storage
            self.delivery = None

    async def open(self) -> Storage:
        """Connect the storage (idempotent) and return it.

        Raises:
            StorageError: the storage cannot be reached or created.
        """
        if not self._storage_open:
            await self.storage.open()
            self._storage_open = True
        return self.storage

    async def start(self) -> None:
        """Check the typed names and run the startup hooks, once (see ``qbot.hooks``).

        Serving calls it (the webhook server, the test kit, ``qbot shell``), and so does the
        first :meth:`feed_update`; :meth:`aclose` runs the shutdown hooks and allows a new start.

        Raises:
            ConfigError: a typed action or step has no handler (``qbot.names``).
            StartupError: a startup hook raised; the bot is not started.
        """
        if not self._started:
            await self._starting.run(self._start)

    async def _start(self) -> None:
        self.bot.check_names()
        ran = await run_startup(self.bot.iter_hooks("startup"), self.bot)
        self._started = True
        if ran:
            log.info("bot.started", startup_hooks=ran)

    async def aclose(self) -> None:
        """Finish the updates fed in hand, run the shutdown hooks (if the bot started), then
        close the client built here and the storage."""
        runtime, self._runtime, self._runtime_for = self._runtime, None, None
        if runtime is not None:
            await runtime.drain()
        if self._started:
            self._started = False
            await run_shutdown(self.bot.iter_hooks("shutdown"), self.bot)
        if self._client is not None and self._owns_client:
            await self._client.close()
        if self._omnichannel is not None and self._owns_omnichannel:
            self._retired_clients.append(self._omnichannel)
            self._omnichannel, self._owns_omnichannel = None, False
        for omni in self._retired_clients:
            await omni.close()
        self._retired_clients.clear()
        for old in self._retired:
            await old.close()
        self._retired.clear()
        if self._storage_open:
            self._storage_open = False
            await self.storage.close()

    def forget_clients(self) -> None:
        """Drop the clients handed in (``configure(client=...)``, :attr:`omnichannel`) once
        their owner closed them: the next :meth:`configure` builds fresh ones from the settings
        instead of keeping a closed client (the test kit hands a bot to many harnesses)."""
        if not self._owns_client:
            self._client = None
        if not self._owns_omnichannel:
            self._omnichannel = None
        self.delivery = None

    # --- the way in -----------------------------------------------------------------------------

    async def feed_update(self, update: Update | Mapping[str, Any]) -> Outcome:
        """Process one update as the webhook server would, and return once it is done.

        The update takes the server's path (the runtime's inbox with its dedupe, the room's
        worker, the handler, the outbox) on the bot's storage, with no HTTP involved: a
        redelivered message is dropped as a ``duplicate``, a room's updates run one at a time
        in order, different rooms concurrently.

        Raises:
            ValueError: ``update`` is a mapping that is not a webhook body.
            StorageError: the storage failed.
            Exception: whatever the processing raised outside the handlers (their errors go to
                ``@error`` handlers), e.g. ``ConfigError`` when the bot has no email.
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
        await self.start()
        return await self._local_runtime().run(update)

    async def feed_lifecycle(self, kind: str, raw: bytes) -> Outcome:
        """Process an Omnichannel lifecycle webhook body as the server's route does.

        Args:
            kind: ``resolved``, ``new-session`` or ``agent-allocation``.
            raw: the body as received.

        Raises:
            ValueError: ``raw`` is not that webhook's body.
        """
        return await self._local_runtime().run(lifecycle_update(kind, raw))

    def _local_runtime(self) -> Runtime:
        """The runtime of ``feed_update``: one per event loop and storage, rooms not kept."""

        key = (asyncio.get_running_loop(), self.storage)
        if self._runtime is None or self._runtime_for != key:
            self._runtime = Runtime(self.bot, linger=0.0, in_process=True)
            self._runtime_for = key
        return self._runtime

    # --- delivery ------------------------------------------------------------------------------

    async def flush(self, room_id: str) -> int:
        """Post the room's pending replies in order; return how many are still pending."""
        return await self.outbox.flush(room_id)

    def outbound(self) -> Delivery:
        """What posts replies: ``delivery`` when set (tests), else the Qiscus client.

        Raises:
            ConfigError: the bot has no email to post as.
        """
        if self.delivery is None:
            if not self.email:
                raise ConfigError(
                    f"bot {self.bot.name!r} has no email to post replies as: set bot.email in "
                    "the config or Bot(email=...)"
                )
            chat = DirectDelivery(self.client, self.email)
            if self.settings is None or self.settings.omnichannel.mode == "never":
                self.delivery = chat
            else:
                omni = self.settings.omnichannel
                try:
                    client: OmnichannelClient | None = self.omnichannel
                except ConfigError as e:  # Omnichannel rooms then get post_comment: say so
                    log.warning("omnichannel.unavailable", error=str(e))
                    client = None
                self.delivery = RoomDelivery(chat, client, self.rooms, omni.text_menus, self.clock)
        return self.delivery
