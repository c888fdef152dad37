"""The emulator's aiohttp application: the Qiscus REST API, the chat page and its JSON API.

Routes:
    ``/api/v2/rest/*``, ``/api/v2.1/rest/*``   what the bot calls (see :mod:`qbot.emulator.rest`)
    ``GET /download/{id}.json``                 finished exports (:mod:`qbot.emulator.backups`)
    ``/{app_code}/bot``, ``/api/v1/admin/*``... Omnichannel (see :mod:`qbot.emulator.omnichannel`)
    ``GET /``                                   the web chat page
    ``/emulator/static/*``                      its JS and CSS (local files, no CDN)
    ``/emulator/api/*``                         what the page calls
    ``GET /emulator/ws``                        live events for the page
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from qbot.emulator.clock_api import clock_routes
from qbot.emulator.core import Emulator, EmulatorConfig
from qbot.emulator.omnichannel import register_omnichannel
from qbot.emulator.rest import EMULATOR_KEY, RestApi
from qbot.emulator.store import EmulatorStore
from qbot.emulator.ws import websocket_handler

STATIC_DIR = Path(__file__).parent / "static"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_PAGE_TYPES = frozenset({"text", "button_postback_response", "custom", "location"})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class PageError(Exception):
    """A page request that cannot be served; becomes ``{"error": ...}`` with a 4xx status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as e:
        raise PageError(400, f"request body is not valid JSON: {e}") from e
    if not isinstance(body, dict):
        raise PageError(400, f"request body must be a JSON object, got {body!r:.80}")
    return body


def _room_id(request: web.Request) -> int:
    raw = request.match_info["room_id"]
    if not raw.isdigit():
        raise PageError(400, f"room id must be a number, got {raw!r}")
    return int(raw)


class PageApi:
    """What the chat page calls: users, rooms, messages and the inspector log."""

    def __init__(self, emulator: Emulator) -> None:
        self.em = emulator

    def routes(self) -> list[web.RouteDef]:
        def wrap(fn: Any) -> Any:
            async def handler(request: web.Request) -> web.StreamResponse:
                try:
                    response: web.StreamResponse = await fn(request)
                except PageError as e:
                    return _error(e.status, str(e))
                return response

            return handler

        return [
            web.get("/emulator/api/state", wrap(self.state)),
            web.post("/emulator/api/users", wrap(self.create_user)),
            web.get("/emulator/api/users/{email}/rooms", wrap(self.user_rooms)),
            web.post("/emulator/api/rooms", wrap(self.create_room)),
            web.get("/emulator/api/rooms/{room_id}/comments", wrap(self.comments)),
            web.post("/emulator/api/rooms/{room_id}/messages", wrap(self.post_message)),
            web.post("/emulator/api/rooms/{room_id}/members", wrap(self.add_member)),
            web.get("/emulator/api/exchanges", wrap(self.exchanges)),
        ]

    async def state(self, request: web.Request) -> web.Response:
        cfg = self.em.config
        users = [
            u
            for u in await self.em.store.list_users()
            if u["email"] not in (cfg.bot_email, cfg.system_email)
        ]
        return web.json_response(
            {
                "app_id": cfg.app_id,
                "bot": {"email": cfg.bot_email, "name": cfg.bot_name},
                "webhook_url": cfg.webhook_url,
                "signed": bool(cfg.signature_token),
                "users": users,
            }
        )

    async def create_user(self, request: web.Request) -> web.Response:
        body = await _body(request)
        email = str(body.get("email") or "").strip()
        if not _EMAIL.match(email):
            raise PageError(400, f"email {email!r} is not an email address, e.g. ana@example.com")
        name = str(body.get("username") or "").strip() or email.split("@")[0]
        return web.json_response(await self.em.store.upsert_user(email, name))

    async def user_rooms(self, request: web.Request) -> web.Response:
        email = request.match_info["email"]
        if await self.em.store.get_user(email) is None:
            raise PageError(404, f"user {email!r} not found: create it first")
        return web.json_response(await self.em.store.user_rooms(email))

    async def create_room(self, request: web.Request) -> web.Response:
        body = await _body(request)
        email = str(body.get("user_email") or "")
        if await self.em.store.get_user(email) is None:
            raise PageError(404, f"user {email!r} not found: create it first")
        kind = body.get("type", "single")
        if kind == "single":
            return web.json_response(await self.em.single_room(email))
        if kind != "group":
            raise PageError(400, f"room type {kind!r} is not 'single' or 'group'")
        name = str(body.get("name") or "").strip()
        if not name:
            raise PageError(400, "a group needs a name")
        members = [str(m) for m in body.get("members") or []]
        for member in members:
            if await self.em.store.get_user(member) is None:
                raise PageError(404, f"member {member!r} not found: create the user first")
        return web.json_response(await self.em.group_room(name, email, members))

    async def comments(self, request: web.Request) -> web.Response:
        room_id = _room_id(request)
        if await self.em.store.get_room(room_id) is None:
            raise PageError(404, f"room {room_id} not found")
        comments = await self.em.store.comments(room_id, limit=200)
        return web.json_response(list(reversed(comments)))

    async def post_message(self, request: web.Request) -> web.Response:
        room_id = _room_id(request)
        body = await _body(request)
        room = await self.em.store.get_room(room_id)
        if room is None:
            raise PageError(404, f"room {room_id} not found")
        sender = str(body.get("sender_email") or "")
        if sender not in {p["email"] for p in room["participants"]}:
            raise PageError(403, f"{sender!r} is not a participant of room {room_id}")
        kind = str(body.get("type") or "text")
        if kind not in _PAGE_TYPES:
            raise PageError(400, f"the page cannot post type {kind!r}")
        text = str(body.get("text") or "")
        if not text.strip() and kind == "text":
            raise PageError(400, "the message is empty")
        if len(text) > 4000:
            raise PageError(400, f"the message is {len(text)} characters; the limit is 4000")
        comment = await self.em.user_post(
            room_id, sender, comment_type=kind, text=text, payload=body.get("payload")
        )
        return web.json_response(comment)

    async def add_member(self, request: web.Request) -> web.Response:
        room_id = _room_id(request)
        body = await _body(request)
        room = await self.em.store.get_room(room_id)
        if room is None:
            raise PageError(404, f"room {room_id} not found")
        if room["type"] != "group":
            raise PageError(400, f"room {room_id} is a single room: only groups take members")
        by = str(body.get("user_email") or "")
        if by not in {p["email"] for p in room["participants"]}:
            raise PageError(403, f"{by!r} is not a participant of room {room_id}")
        member = str(body.get("member_email") or "").strip()
        if await self.em.store.get_user(member) is None:
            raise PageError(404, f"user {member!r} not found: add the user first")
        return web.json_response(await self.em.add_member(room_id, by, member))

    async def exchanges(self, request: web.Request) -> web.Response:
        raw = request.query.get("room_id")
        if raw is not None and not raw.isdigit():
            raise PageError(400, f"room_id must be a number, got {raw!r}")
        return web.json_response(
            await self.em.store.exchanges(int(raw) if raw is not None else None)
        )


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


def create_emulator_app(
    emulator: Emulator, *, manage: bool = True, reset: bool = False
) -> web.Application:
    """The emulator's web application.

    Args:
        emulator: the state and behaviour behind the routes.
        manage: start the emulator with the app and close it on cleanup (``False`` when the
            caller manages its lifetime, as ``qbot.testing`` does).
        reset: when managed, clear the stored state at start.
    """
    # Import files reach 4 MB each (plus multipart framing); page bodies stay small anyway.
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[EMULATOR_KEY] = emulator
    sockets: set[web.WebSocketResponse] = set()
    app.add_routes(RestApi(emulator).routes())
    app.add_routes(PageApi(emulator).routes())
    register_omnichannel(app, emulator)
    app.add_routes(clock_routes(emulator))
    app.router.add_get("/", _index)
    app.router.add_static("/emulator/static", STATIC_DIR)

    async def ws(request: web.Request) -> web.WebSocketResponse:
        return await websocket_handler(request, emulator, sockets)

    app.router.add_get("/emulator/ws", ws)

    async def close_sockets(app: web.Application) -> None:
        # Held calls (Emulator.hang) answer now, or the server would wait for them to stop.
        emulator.call_log.clear_faults()
        for sock in list(sockets):
            await sock.close()

    app.on_shutdown.append(close_sockets)
    if manage:

        async def lifespan(app: web.Application) -> Any:
            await emulator.start(reset=reset)
            yield
            await emulator.close()

        app.cleanup_ctx.append(lifespan)
    return app


@asynccontextmanager
async def serve_emulator(
    config: EmulatorConfig | None = None,
    store: EmulatorStore | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[Emulator]:
    """Start an emulator and serve it on ``host:port``; stop both on exit.

    The emulator yielded knows its :attr:`~Emulator.base_url`: point a ``QiscusClient`` (or a
    bot's ``qiscus.base_url``) at it, then inspect :attr:`~Emulator.calls` or inject faults.

    ```python
    config = EmulatorConfig(app_id="my-app", secret_key="s", lenient=True)
    async with serve_emulator(config) as emulator:
        client = QiscusClient("my-app", "s", base_url=emulator.base_url)
    ```

    Args:
        config: what the emulator pretends to be (default: :class:`EmulatorConfig`).
        store: its state (default: a throw-away ``EmulatorStore(":memory:")``).
        host: where to listen.
        port: the port, ``0`` for any free one.

    Raises:
        OSError: the port is taken.
    """
    emulator = Emulator(config or EmulatorConfig(), store or EmulatorStore(":memory:"))
    await emulator.start()
    runner = web.AppRunner(create_emulator_app(emulator, manage=False), access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound: Any = runner.addresses[0]
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        emulator.base_url = f"http://{local}:{int(bound[1])}"
        yield emulator
    finally:
        await runner.cleanup()
        await emulator.close()
