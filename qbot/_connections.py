"""Connection hygiene for the webhook server: timeouts, a cap, quiet accept errors.

aiohttp alone waits forever for a client's headers and accepts connections until the process
runs out of file descriptors; a thousand slow clients then starve every webhook. Here:

- a connection must complete its request headers within ``server.header_timeout`` seconds of
  opening (or of its first byte after a kept-alive response), else it is closed;
- an idle kept-alive connection is closed after ``server.keepalive_timeout`` seconds;
- at most ``server.max_connections`` are open: a new one beyond the cap closes the oldest
  connection that is not in the middle of a request (a slow or idle one), or, when every one is
  busy, is closed itself;
- accept errors (``EMFILE``...) are logged once per burst, with a count, not once per try (asyncio
  already waits a second before accepting again);
- a malformed HTTP request gets a JSON 4xx, logged at info, not a traceback.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

__all__ = ["HygieneRunner", "connection_cap", "quiet_accept_errors"]

log = structlog.get_logger("qbot.server")

_ACCEPT_BURST_GAP = 10.0
"""Seconds without an accept error that end a burst (the next error is logged again)."""


def connection_cap(configured: int | None) -> int:
    """``configured``, else three quarters of the open-file limit (storage and the Qiscus client
    need descriptors too)."""
    if configured is not None:
        return configured
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(16, soft * 3 // 4)


class _Protocol(RequestHandler):
    """One connection: the header timer, and whether a request is being handled."""

    def __init__(self, manager: _Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._edge = manager
        self.opened = time.monotonic()
        self.busy = False
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.busy and self._header_timer is None:
            self._arm()  # the first byte of a new request on a kept-alive connection
        super().data_received(data)

    def request_started(self) -> None:
        self.busy = True
        self._disarm()

    def request_done(self) -> None:
        self.busy = False

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._header_timer = loop.call_later(self._edge.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.busy:
            log.debug("connection.closed", reason="header_timeout")
            self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        # A malformed request (bad header, bad method, garbage): the client's problem, not ours.
        reason = getattr(exc, "message", None) or str(exc or message or "bad request")
        reason = reason.splitlines()[0][:200] if reason else "bad request"
        log.info("http.bad_request", status=status, reason=reason)
        response = web.json_response({"error": f"bad HTTP request: {reason}"}, status=status)
        response.force_close()
        return response


class _Server(web.Server):
    """aiohttp's server with a connection cap and :class:`_Protocol` connections."""

    def __init__(
        self,
        handler: Callable[[BaseRequest], Awaitable[web.StreamResponse]],
        *,
        max_connections: int,
        header_timeout: float,
        loop: asyncio.AbstractEventLoop,
        **kwargs: Any,
    ) -> None:
        async def handle(request: BaseRequest) -> web.StreamResponse:
            protocol = request.protocol
            if isinstance(protocol, _Protocol):
                protocol.request_started()
            try:
                return await handler(request)
            finally:
                if isinstance(protocol, _Protocol):
                    protocol.request_done()

        super().__init__(handle, loop=loop, **kwargs)
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._protocol_kwargs = {
            k: v for k, v in kwargs.items() if k not in ("request_factory", "handler_cancellation")
        }
        self._event_loop = loop
        self._open: dict[_Protocol, None] = {}  # insertion order: oldest first
        self._shed = 0

    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._event_loop, **self._protocol_kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if not isinstance(handler, _Protocol):
            return
        if len(self._open) >= self.max_connections:
            victim = next((p for p in self._open if not p.busy), None)
            self._shed += 1
            if self._shed == 1 or self._shed % 1000 == 0:
                log.warning(
                    "connection.shed",
                    open=len(self._open),
                    max_connections=self.max_connections,
                    shed=self._shed,
                    closed="oldest_idle" if victim is not None else "new",
                )
            if victim is None:
                handler.force_close()
                return
            self._open.pop(victim, None)
            victim.force_close()
        self._open[handler] = None

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        if isinstance(handler, _Protocol):
            self._open.pop(handler, None)
        super().connection_lost(handler, exc)


class HygieneRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose server applies the hygiene rules above."""

    def __init__(
        self,
        app: web.Application,
        *,
        max_connections: int,
        header_timeout: float,
        keepalive_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, keepalive_timeout=keepalive_timeout, **kwargs)
        self._limits = (max_connections, header_timeout)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        max_connections, header_timeout = self._limits
        return _Server(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            max_connections=max_connections,
            header_timeout=header_timeout,
            loop=asyncio.get_running_loop(),
            **self._kwargs,
        )


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Log accept failures (out of file descriptors...) once per burst; return the undo."""
    previous = loop.get_exception_handler()
    burst = {"count": 0, "last": 0.0}

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "socket.accept() out of system resource" not in str(context.get("message", "")):
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - burst["last"] > _ACCEPT_BURST_GAP:
            if burst["count"] > 1:
                log.warning("server.accept_failed_burst_ended", failures=burst["count"])
            burst["count"] = 0
            log.error(
                "server.accept_failed",
                error=str(context.get("exception")),
                hint="out of file descriptors: lower server.max_connections or raise ulimit -n",
            )
        burst["count"] += 1
        burst["last"] = now

    loop.set_exception_handler(handler)
    return lambda: loop.set_exception_handler(previous)
