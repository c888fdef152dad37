"""A bot wired to an in-process emulator: the engine of ``qbot.testing`` and ``qbot shell``.

The emulator serves its REST API on ``127.0.0.1`` (port 0) and the bot's Qiscus client points at
it, so replies travel over real HTTP exactly as in production; user messages are built as real
webhook bodies and handed to ``bot.feed_update``, which takes the webhook server's path (inbox
and dedupe, one worker per room, the outbox) and returns once the replies are sent.

```python
async with Harness(bot) as harness:
    chat = await harness.chat("ana@example.com", "Ana")
    replies = await chat.say("hi")
    replies = await chat.tap("Yes")
```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from qbot._json import dumps_text, loads
from qbot.clock import Clock, ManualClock
from qbot.emulator.app import create_emulator_app
from qbot.emulator.core import Emulator, EmulatorConfig
from qbot.emulator.desk import OmnichannelDesk
from qbot.emulator.omnichannel import OMNICHANNEL_KEY
from qbot.emulator.omnichannel_bodies import omnichannel_body
from qbot.emulator.replies import BotReply, Replies, find_postback
from qbot.emulator.store import EmulatorStore
from qbot.emulator.timekeeping import settle
from qbot.emulator.webhook import postback_response
from qbot.scheduling import settle_due

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.config import Settings

__all__ = ["BotReply", "Chat", "Harness", "Replies", "find_postback"]

DEFAULT_BOT_EMAIL = "bot@qbot.local"


class Chat:
    """One user talking to the bot in one room.

    Attributes:
        email: the user's email.
        room: the room (as the emulator stores it).
        last: the replies to the latest message.
    """

    def __init__(
        self, harness: Harness, email: str, room: dict[str, Any], channel: str | None = None
    ) -> None:
        self.harness = harness
        self.email = email
        self.room = room
        self.channel = channel
        """The Omnichannel channel source of the chat (``wa``...), ``None`` for a Qiscus chat."""
        self.last = Replies()

    @property
    def room_id(self) -> int:
        """The room's numeric id."""
        return int(self.room["id"])

    async def say(self, text: str) -> Replies:
        """Send a text message; return the replies once the bot has finished with it."""
        return await self.send("text", text)

    async def tap(self, label: str) -> Replies:
        """Tap the postback button ``label`` of the latest replies, as the Qiscus SDK does.

        Raises:
            AssertionError: there is no postback button with that label.
        """
        button = find_postback(self.last, label)
        if button.get("type") == "quick_reply":  # WhatsApp: a tap is the label, as text
            return await self.say(str(button.get("label", "")))
        text, payload = postback_response(button)
        return await self.send("button_postback_response", text, payload)

    async def advance(
        self, seconds: float = 0.0, *, minutes: float = 0.0, hours: float = 0.0, days: float = 0.0
    ) -> Replies:
        """Move the shared clock forward (`Harness.advance`); return what the bot sent to this
        room meanwhile (a follow-up, a reminder template...)."""
        newest = await self.harness.emulator.store.comments(self.room_id, limit=1)
        after = int(newest[0]["id"]) if newest else 0
        await self.harness.advance(seconds, minutes=minutes, hours=hours, days=days)
        return await self._collect(after)

    async def send(self, comment_type: str, text: str, payload: Any = None) -> Replies:
        """Post any comment type as the user; return the replies it caused."""
        comment = await self.harness.emulator.user_post(
            self.room_id, self.email, comment_type=comment_type, text=text, payload=payload
        )
        return await self._collect(comment["id"])

    async def redeliver(self) -> Replies:
        """Deliver this chat's latest webhook again, as Qiscus does when an answer is late.

        The bot drops it as a duplicate, so this returns no replies unless that is broken.

        Raises:
            AssertionError: nothing was delivered in this room yet.
        """
        raw = self.harness.delivered.get(self.room_id)
        if raw is None:
            raise AssertionError(f"nothing was delivered in room {self.room_id} yet")
        newest = await self.harness.emulator.store.comments(self.room_id, limit=1)
        after = int(newest[0]["id"]) if newest else 0
        await self.harness.deliver(raw)
        return await self._collect(after)

    async def event(self, event_type: str, *, objects: list[str] | None = None) -> Replies:
        """Post a system event (``add_member``, ``join_room``, ...) done by this user."""
        comment = await self.harness.emulator.system_event(
            self.room_id,
            event_type,
            self.email,
            object_emails=objects,
            room_name=self.room["name"],
            deliver_as="post_comment_mobile",
        )
        return await self._collect(comment["id"])

    # --- Omnichannel: the agent desk's side of the chat ---------------------------------------

    def _desk(self) -> OmnichannelDesk:
        if self.channel is None:
            raise AssertionError(
                "not an Omnichannel chat: use harness.chat(..., omnichannel=True, channel='wa')"
            )
        return self.harness.desk

    async def service(self) -> dict[str, Any]:
        """The room's service at the desk: ``is_handled_by_bot``, ``agent_ids``, ``resolved``..."""
        return (await self._desk().service(self.room_id)).record()

    async def agent_says(self, text: str, *, agent: int | str | None = None) -> Replies:
        """An agent writes to the customer (the room's assigned agent, else ``agent``).

        Returns:
            What the bot answered to it (nothing while the room is handed off).

        Raises:
            AssertionError: no agent is assigned and none is named, or no such agent.
        """
        desk = self._desk()
        service = await desk.service(self.room_id)
        if agent is None:
            if not service.agent_ids:
                raise AssertionError("no agent is assigned to the room: pass agent=NAME or ID")
            agent = service.agent_ids[-1]
        found = _find_agent(desk, agent)
        if found["id"] not in service.agent_ids:
            await desk.assign(self.room_id, found["id"])
        comment = await self.harness.emulator.user_post(self.room_id, found["email"], text=text)
        return await self._collect(comment["id"])

    async def resolve(self, *, agent: int | str | None = None, notes: str | None = None) -> Replies:
        """The agent resolves the room: the desk sends the resolved webhook to the bot.

        Returns:
            What the bot sent the customer after it (e.g. a satisfaction survey).
        """
        desk = self._desk()
        newest = await self.harness.emulator.store.comments(self.room_id, limit=1)
        after = int(newest[0]["id"]) if newest else 0
        agent_id = _find_agent(desk, agent)["id"] if agent is not None else None
        await desk.resolve(self.room_id, agent_id=agent_id, notes=notes)
        return await self._collect(after)

    async def assert_handed_off(
        self, *, agent: int | str | None = None, waiting: bool | None = None
    ) -> None:
        """The bot is off for the room at the desk (and ``agent`` is assigned, or it waits).

        Raises:
            AssertionError: it is not, with what the desk says.
        """
        service = await self.service()
        if service["is_handled_by_bot"]:
            raise AssertionError(f"the room is still handled by the bot at the desk: {service}")
        if agent is not None:
            wanted = _find_agent(self._desk(), agent)["id"]
            if wanted not in service["agent_ids"]:
                raise AssertionError(f"agent {agent!r} is not assigned to the room: {service}")
        if waiting is not None and service["is_waiting"] != waiting:
            raise AssertionError(f"expected is_waiting={waiting} at the desk: {service}")

    async def assert_with_bot(self) -> None:
        """The bot handles the room at the desk and in qbot (no handoff).

        Raises:
            AssertionError: it does not.
        """
        if self.channel is not None:
            service = await self.service()
            if not service["is_handled_by_bot"]:
                raise AssertionError(f"the bot is off for the room at the desk: {service}")
        handoff = await self.harness.bot.storage.handoff_get(str(self.room_id))
        if handoff is not None:
            raise AssertionError(f"the room is handed off in qbot: {handoff.reason!r}")

    async def _collect(self, after_id: int) -> Replies:
        await self.harness.emulator.drain()
        self.harness.raise_errors()
        comments = await self.harness.emulator.store.comments(
            self.room_id, limit=1000, after_id=after_id
        )
        self.last = Replies(BotReply(c) for c in reversed(comments) if c["email"] != self.email)
        return self.last


def _find_agent(desk: OmnichannelDesk, agent: int | str) -> dict[str, Any]:
    for candidate in desk.agents.values():
        if agent in (candidate["id"], str(candidate["id"])) or (
            isinstance(agent, str) and candidate["name"].casefold() == agent.casefold()
        ):
            return candidate
    names = ", ".join(f"{a['name']} ({a['id']})" for a in desk.agents.values())
    raise AssertionError(f"no agent {agent!r} at the emulated desk: {names}")


class Harness:
    """A bot configured against an in-process emulator; an async context manager.

    Args:
        bot: the bot under test (configured by :meth:`start`).
        settings: the bot's settings (postback secret, intents, ...); its Qiscus ``base_url`` is
            replaced by the emulator's and its storage by a fresh ``memory://``. ``None``:
            minimal settings for the emulator.
        db: the emulator's SQLite file; ``":memory:"`` keeps nothing.
        clock: the one clock the bot and the emulator share (default: the bot's own if it is
            a :class:`~qbot.clock.ManualClock`, else a frozen one at now): :meth:`advance`
            moves it, and the follow-ups then due run before it returns.
    """

    def __init__(
        self,
        bot: Bot,
        settings: Settings | None = None,
        *,
        db: str = ":memory:",
        clock: ManualClock | None = None,
    ) -> None:
        self.bot = bot
        if clock is None:  # a bot built with a ManualClock of its own keeps it
            own = bot.dispatcher.clock
            clock = own if isinstance(own, ManualClock) else ManualClock()
        self.clock = clock
        self._bot_clock: Clock | None = None  # the bot's own, given back by close()
        # Follow-ups due after an advance run before idle() returns (qbot.scheduling).
        self._idle_hooks: list[Callable[[], Awaitable[Any]]] = [
            lambda: settle_due(self.bot.dispatcher)
        ]
        self._settings = settings
        self.settings: Settings | None = None
        self._db = db
        self._runner: web.AppRunner | None = None
        self._client: Any = None
        self._errors: list[BaseException] = []
        self._emulator: Emulator | None = None
        self.delivered: dict[int, bytes] = {}
        """The latest webhook body delivered to the bot, by room id."""
        self._desk: OmnichannelDesk | None = None
        self._omnichannel: Any = None
        self._shapes: dict[int, tuple[str, str]] = {}  # Omnichannel rooms: (source, shape)

    @property
    def desk(self) -> OmnichannelDesk:
        """The emulated Omnichannel agent desk."""
        if self._desk is None:
            raise RuntimeError("the harness is not started: use 'async with Harness(bot)'")
        return self._desk

    @property
    def emulator(self) -> Emulator:
        """The running emulator."""
        if self._emulator is None:
            raise RuntimeError("the harness is not started: use 'async with Harness(bot)'")
        return self._emulator

    async def start(self) -> None:
        """Start the emulator on 127.0.0.1 (port 0) and point the bot at it."""
        from qbot.client import QiscusClient, RetryPolicy
        from qbot.config import Settings

        settings = self._settings or Settings(
            qiscus={"app_id": "qbot-test", "secret_key": "qbot-test-secret"},
            bot={"email": self.bot.email or DEFAULT_BOT_EMAIL, "name": self.bot.name},
        )
        q = settings.qiscus
        config = EmulatorConfig(
            app_id=q.app_id,
            secret_key=q.secret_key.get_secret_value(),
            bot_email=settings.bot.email,
            bot_name=settings.bot.name,
        )
        self._emulator = Emulator(config, EmulatorStore(self._db), deliver=self.deliver)
        self._emulator.clock = self.clock
        self._bot_clock, self.bot.dispatcher.clock = self.bot.dispatcher.clock, self.clock
        await self._emulator.start()
        app = create_emulator_app(self._emulator, manage=False)
        self._desk = app[OMNICHANNEL_KEY]
        self._desk.deliver = self._deliver_resolved
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        base_url = f"http://{host}:{port}"
        # A fresh memory:// storage whatever storage.url says: the emulator's rooms are its own,
        # and the bot's runtime claims every update in its storage's inbox (a shared Redis would
        # hand it another deployment's messages).
        self.settings = settings.model_copy(
            update={
                "qiscus": q.model_copy(update={"base_url": base_url}),
                "omnichannel": settings.omnichannel.model_copy(
                    update={"base_url": base_url, "app_code": q.app_id}
                ),
                "storage": settings.storage.model_copy(update={"url": "memory://"}),
            }
        )
        # A fresh client per harness: a bot object outlives tests, its old client would point at
        # a closed emulator. One attempt: a failing call should fail the test, not retry.
        self._client = QiscusClient.from_settings(self.settings, retry=RetryPolicy(max_attempts=1))
        self.bot.configure(self.settings, client=self._client)
        from qbot.omnichannel import OmnichannelClient

        self._omnichannel = OmnichannelClient(
            q.app_id, q.secret_key, base_url, retry=RetryPolicy(max_attempts=1)
        )
        self.bot.dispatcher.omnichannel = self._omnichannel
        await self.bot.start()

    async def close(self) -> None:
        """Finish the bot's work in hand, stop the emulator server, close the bot's client."""
        if self._emulator is not None:
            await self._emulator.drain()
        await self.bot.aclose()
        self.bot.dispatcher.forget_clients()
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._omnichannel is not None:
            await self._omnichannel.close()
            self._omnichannel = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._emulator is not None:
            await self._emulator.close()
            self._emulator = None
        if self._bot_clock is not None:
            self.bot.dispatcher.clock, self._bot_clock = self._bot_clock, None

    # --- time ------------------------------------------------------------------------------------

    async def advance(
        self, seconds: float = 0.0, *, minutes: float = 0.0, hours: float = 0.0, days: float = 0.0
    ) -> float:
        """Move the clock the bot and the emulator share forward, then wait until the bot is
        idle (:meth:`idle`): what came due meanwhile has run. Returns the new time."""
        now = self.clock.advance(seconds, minutes=minutes, hours=hours, days=days)
        await self.idle()
        return now

    def on_idle(self, hook: Callable[[], Awaitable[Any]]) -> None:
        """Have :meth:`idle` also wait for ``hook`` (e.g. a scheduler running what is due);
        a hook that returns ``True`` did work, and the bot is waited for again."""
        self._idle_hooks.append(hook)

    async def idle(self, rounds: int = 50) -> None:
        """Wait until the bot has nothing left to do: tasks the clock woke have run, every
        :meth:`on_idle` hook has returned, the emulator's deliveries have finished.

        Raises:
            Exception: the first error the bot raised meanwhile.
        """
        await settle(self.emulator, self._idle_hooks, rounds, self.clock)
        self.raise_errors()

    async def __aenter__(self) -> Harness:
        try:
            await self.start()
        except BaseException:
            await self.close()  # a failed startup hook must not leave the emulator serving
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def chat(
        self,
        email: str = "user@example.com",
        name: str = "User",
        *,
        group: str | None = None,
        omnichannel: bool = False,
        channel: str = "wa",
        shape: str = "2025",
    ) -> Chat:
        """A conversation for this user: a single room with the bot, or a new group ``group``.

        Args:
            omnichannel: a customer writing through Omnichannel on ``channel`` (``wa``,
                ``qiscus`` the web widget, ``ig``, ``fb``, ``line``, ``telegram``): the bot's
                replies go through ``/bot`` and the desk (``chat.resolve()``...) is there.
            shape: the bot webhook's documented shape: ``2025`` (top-level ``app_code`` and
                ``channel``, string ids) or ``options`` (the SDK body; ``room.options`` names
                the channel).
        """
        if shape not in ("2025", "options"):
            raise ValueError(f"shape {shape!r} must be '2025' or 'options'")
        if omnichannel:
            room = await self.desk.open_room(email, name, source=channel)
            self._shapes[int(room["id"])] = (channel, shape)
            return Chat(self, email, room, channel=channel)
        await self.emulator.store.upsert_user(email, name)
        if group is None:
            room = await self.emulator.single_room(email)
        else:
            room = await self.emulator.group_room(group, email, [])
            await self.emulator.drain()
            self.raise_errors()
        return Chat(self, email, room)

    def raise_errors(self) -> None:
        """Re-raise the first exception the bot raised while processing (then forget them)."""
        if self._errors:
            first, self._errors = self._errors[0], []
            raise first

    async def _deliver_resolved(
        self, raw: bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[int | None, str]:
        """The desk's resolved webhook, handed to the bot as the server's route would."""
        try:
            outcome = await self.bot.dispatcher.feed_lifecycle("resolved", raw)
        except Exception as e:
            self._errors.append(e)
            return 500, f"{type(e).__name__}: {e}"
        return 200, dumps_text({"handler": outcome.handler, "ignored": outcome.ignored})

    async def deliver(
        self, raw: bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[int | None, str]:
        """Hand a webhook body to the bot (``feed_update``); return the status and outcome JSON.

        An exception the bot raised is kept for :meth:`raise_errors` and answered with 500.
        """
        body = loads(raw)
        room = body.get("payload", {}).get("room", {}).get("id") if isinstance(body, dict) else None
        if isinstance(room, int):
            self.delivered[room] = raw
            if room in self._shapes and self._shapes[room][1] == "2025":
                source = self._shapes[room][0]
                body = omnichannel_body(
                    body,
                    app_code=self.emulator.config.app_id,
                    channel=self.desk.channel(source),
                    source=source,
                )
        try:
            outcome = await self.bot.feed_update(body)
        except Exception as e:
            # Surfaced by Chat.say(): a test must see the bot's crash, not a missing reply.
            self._errors.append(e)
            return 500, f"{type(e).__name__}: {e}"
        return 200, dumps_text(
            {"handler": outcome.handler, "ignored": outcome.ignored, "replies": outcome.replies}
        )
