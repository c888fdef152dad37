"""Live updates for the web page: every emulator event is pushed over a WebSocket as JSON."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import WSMsgType, web

from qbot._json import dumps_text
from qbot.emulator.core import Emulator

# A page that stops reading must not make the emulator hold events forever.
_QUEUE_LIMIT = 1000


async def websocket_handler(
    request: web.Request, emulator: Emulator, sockets: set[web.WebSocketResponse]
) -> web.WebSocketResponse:
    """Stream ``{"event": "comment" | "room" | "exchange" | "traffic", ...}`` to one page.

    ``sockets`` tracks open sockets so the server can close them on shutdown.
    """
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    sockets.add(ws)
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(_QUEUE_LIMIT)

    def listener(event: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(event)

    async def pump() -> None:
        while (event := await queue.get()) is not None:
            await ws.send_str(dumps_text(event))

    unsubscribe = emulator.subscribe(listener)
    sender = asyncio.create_task(pump())
    try:
        await ws.send_str(dumps_text({"event": "hello"}))
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str(dumps_text({"event": "pong"}))
    finally:
        sockets.discard(ws)
        unsubscribe()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await sender
    return ws
