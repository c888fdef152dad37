"""``qbot dev``: the emulator and a bot's real webhook server, side by side in one process.

The emulator (page + REST API) listens on ``host:port``; the bot's own ``qbot.server`` app listens
on ``127.0.0.1`` at a free port, with its Qiscus client pointed at the emulator. User messages
thus travel the production path: webhook → server → runtime → handler → REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from qbot.clock import ManualClock
from qbot.emulator.app import create_emulator_app
from qbot.emulator.core import Emulator, EmulatorConfig
from qbot.emulator.omnichannel import OMNICHANNEL_KEY
from qbot.emulator.store import EmulatorStore

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.config import Settings, StorageSettings

__all__ = ["DEV_APP_ID", "DEV_SECRET", "DevServer", "dev_settings"]

DEV_APP_ID = "qbot-dev"
DEV_SECRET = "qbot-dev-secret"
DEFAULT_BOT_EMAIL = "bot@qbot.local"
_MAX_TEXT = 4096


def dev_settings(config_path: str | None, bot_name: str, **overrides: Any) -> Settings:
    """The bot's settings under ``qbot dev``: the config file (if any), emulator credentials.

    ``qiscus.app_id``/``secret_key`` are replaced by the emulator's (``base_url`` is set once the
    emulator listens); ``bot.email``/``bot.name`` default to ``bot@qbot.local`` and the bot's name.

    Args:
        config_path: the bot's config file, or ``None``.
        bot_name: the default ``bot.name``.
        **overrides: more sections merged over the file, e.g. ``storage={"url": "memory://"}``.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    from qbot.config import load_settings, read_yaml

    data = read_yaml(config_path) if config_path is not None else {}
    bot_section = data.get("bot") if isinstance(data.get("bot"), dict) else {}
    return load_settings(
        config_path,
        qiscus={"app_id": DEV_APP_ID, "secret_key": DEV_SECRET, "base_url": "http://127.0.0.1"},
        bot={"email": DEFAULT_BOT_EMAIL, "name": bot_name, **(bot_section or {})},
        **overrides,
    )


@dataclass
class DevServer:
    """The emulator plus, when given, a bot served by ``qbot.server``.

    Attributes:
        settings: the bot's settings (see :func:`dev_settings`).
        bot: the bot, or ``None`` to run the emulator alone (``webhook_url`` then says where
            user messages go, e.g. a ``qbot run`` in another terminal).
        host: where the emulator listens.
        port: the emulator's port (0: any free port).
        db: the emulator's SQLite file.
        reset: clear the stored conversations first.
        webhook_url: the webhook target when ``bot`` is ``None``.
        omnichannel: emulate Omnichannel's side too: the desk's rooms are delivered in
            Omnichannel's body (not while an agent has them), ``text_menus`` defaults to
            ``[wa]`` and the page opens with its Omnichannel pane. The desk's endpoints and its
            resolved webhook to the bot are there either way.
    """

    settings: Settings
    bot: Bot | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    db: str = ".qbot/emulator.sqlite3"
    reset: bool = False
    webhook_url: str | None = None
    omnichannel: bool = False
    url: str = ""
    emulator: Emulator | None = None
    clock: ManualClock = dataclasses.field(default_factory=lambda: ManualClock(running=True))
    """The time the bot and the emulator share: real time, which the page can skip ahead."""
    _runners: list[web.AppRunner] = dataclasses.field(default_factory=list)

    async def start(self) -> str:
        """Start both servers; return the page's URL.

        Raises:
            OSError: a port is taken.
        """
        from qbot.server import create_app

        q = self.settings.qiscus
        token = self.settings.webhook.signature_token
        self.emulator = Emulator(
            EmulatorConfig(
                app_id=q.app_id,
                secret_key=q.secret_key.get_secret_value(),
                bot_email=self.settings.bot.email,
                bot_name=self.settings.bot.name,
                webhook_url=self.webhook_url,
                signature_token=token.get_secret_value() if token is not None else None,
                call_history=1000,
            ),
            EmulatorStore(self.db),
        )
        self.emulator.clock = self.clock
        await self.emulator.start(reset=self.reset)
        app = create_emulator_app(self.emulator, manage=False)
        app.router.add_get("/emulator/api/intents", self._intents)
        desk = app[OMNICHANNEL_KEY]
        if self.omnichannel:
            desk.deliver_as_omnichannel()
        emulator_port = await self._serve(app, self.host, self.port)
        local = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        self.url = f"http://{local}:{emulator_port}/"
        self.emulator.base_url = self.url
        if self.bot is not None:
            omni = self.settings.omnichannel
            menus = omni.text_menus or (["wa"] if self.omnichannel else [])
            self.settings = self.settings.model_copy(
                update={
                    "qiscus": q.model_copy(update={"base_url": self.url.rstrip("/")}),
                    "storage": self._bot_storage(),
                    "omnichannel": omni.model_copy(
                        update={
                            "base_url": self.url.rstrip("/"),
                            "app_code": q.app_id,
                            "text_menus": menus,
                        }
                    ),
                }
            )
            self.bot.configure(self.settings)
            self.bot.dispatcher.clock = self.clock
            bot_port = await self._serve(create_app(self.bot, self.settings), "127.0.0.1", 0)
            path = self.settings.server.webhook_path
            # Known only now that the bot listens; nothing was delivered before this point.
            self.emulator.config = dataclasses.replace(
                self.emulator.config, webhook_url=f"http://127.0.0.1:{bot_port}{path}"
            )
            token = self.settings.omnichannel.webhook_token
            query = f"?{urlencode({'token': token.get_secret_value()})}" if token else ""
            desk.resolved_webhook_url = f"http://127.0.0.1:{bot_port}{path}/resolved{query}"
        return self.url

    async def _intents(self, request: web.Request) -> web.Response:
        """The inspector's view of a text: the bot's top intents with scores, and its entities."""
        text = request.query.get("text", "")
        if len(text) > _MAX_TEXT:
            return web.json_response({"error": f"text longer than {_MAX_TEXT}"}, status=400)
        intents = self.bot.intents if self.bot is not None else None
        if intents is None:
            return web.json_response({"intents": [], "entities": []})
        top = intents.rank(text, 3)
        found = intents.entities(text)
        return web.json_response(
            {
                "threshold": intents.threshold,
                "intents": [{"name": m.name, "score": m.score, "source": m.source} for m in top],
                "entities": [
                    {"type": e.type, "text": e.text, "value": str(e.value)} for e in found
                ],
            }
        )

    def _bot_storage(self) -> StorageSettings:
        """The bot's storage lives beside the emulator's, and ``--reset`` clears both.

        Otherwise a reset emulator, whose room and message ids start again, would meet the
        bot's old conversation state and dedupe records. A configured ``storage.url`` is kept.
        """
        storage = self.settings.storage
        if storage.url is not None:
            return storage
        if self.db == ":memory:":
            return storage.model_copy(update={"url": "memory://"})
        emulator_db = Path(self.db)
        bot_db = emulator_db.with_name(f"{emulator_db.stem}-bot.sqlite3")
        if self.reset:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{bot_db}{suffix}").unlink(missing_ok=True)
        bot_db.parent.mkdir(parents=True, exist_ok=True)
        return storage.model_copy(update={"url": f"sqlite:///{bot_db}"})

    async def _serve(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound: Any = runner.addresses[0]
        return int(bound[1])

    async def stop(self) -> None:
        """Stop the bot (draining its queue), then the emulator."""
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.emulator is not None:
            await self.emulator.close()
            self.emulator = None

    async def run_forever(self, announce: Callable[[str], None]) -> None:
        """Start, call ``announce(url)``, serve until SIGINT/SIGTERM, then stop cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # not on Windows
                loop.add_signal_handler(sig, stop.set)
        try:
            announce(await self.start())
            await stop.wait()
        finally:
            await self.stop()
