"""Serving the webhook app until SIGTERM or SIGINT, draining with the socket still open.

``aiohttp.web.run_app`` closes the listening socket before the app's cleanup, so webhooks that
arrive while the runtime drains are refused. Here the order is the documented one:

1. SIGTERM (or SIGINT): the runtime stops accepting; new webhooks are answered 503 with
   ``Retry-After`` (the socket stays open) while the work in hand is finished, up to
   ``server.shutdown_timeout`` seconds;
2. then the socket closes, connections are closed, and the app's cleanup closes the client and
   the storage.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import structlog
from aiohttp import web

from qbot.server import RUNTIME_KEY

__all__ = ["serve"]

log = structlog.get_logger("qbot.server")


def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    shutdown_timeout: float,
    listening: Callable[[], None],
) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM or SIGINT, then drain and stop.

    ``listening`` is called once the socket is bound.

    Raises:
        QbotError: the app could not start (its storage cannot be opened, ...).
        OSError: the socket cannot be bound.
    """
    asyncio.run(_serve(app, host, port, shutdown_timeout, listening))


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    shutdown_timeout: float,
    listening: Callable[[], None],
) -> None:
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        listening()
        await stop.wait()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("server.draining", timeout=shutdown_timeout)
        # The socket is still open: what arrives now is answered 503 with Retry-After.
        await app[RUNTIME_KEY].drain(shutdown_timeout)
    finally:
        await runner.cleanup()
