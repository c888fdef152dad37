"""The webhook server: a thin aiohttp adapter that parses, checks and hands over to the runtime.

``POST {server.webhook_path}``: 413 over the size limit, 408 when the body is slower than
``server.header_timeout``, 401 on a bad signature, 400 when the body
is not a webhook, 503 when the update cannot be stored (Qiscus delivers again), else 200 once the
update is in the storage's inbox (it is processed in the background). ``GET /healthz``, and
``GET /metrics`` when ``metrics.enabled`` (see ``qbot.metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import structlog
from aiohttp import web
from pydantic import ValidationError

from qbot import metrics
from qbot._bodies import error as _error
from qbot._bodies import later, read_body
from qbot._connections import HygieneRunner, connection_cap, quiet_accept_errors
from qbot._json import dumps, loads
from qbot.config import DEFAULT_SERVED_STORAGE
from qbot.errors import StorageError
from qbot.log import mask_url, redact
from qbot.models.webhook import Update
from qbot.omnichannel.webhooks import add_lifecycle_routes
from qbot.runtime import Runtime
from qbot.storage import open_storage

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.config import Settings

__all__ = ["RUNTIME_KEY", "create_app", "run_server", "start_server", "verify_signature"]

log = structlog.get_logger("qbot.server")

RUNTIME_KEY = web.AppKey("qbot_runtime", Runtime)
SIGNATURE_HEADER = "QISCUS-SDK-SIGNATURE"


def verify_signature(body: bytes, signature: str | None, token: str) -> bool:
    """Whether ``signature`` is the hex HMAC-SHA256 of ``body`` keyed with ``token``."""
    if not signature or not signature.isascii():
        # A hex digest is ASCII; compare_digest refuses non-ASCII str (it would answer 500).
        return False
    expected = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def _secrets_of(settings: Settings) -> list[str | None]:
    """Every secret value in ``settings``: no log line may show one."""
    values: list[str | None] = [settings.qiscus.secret_key.get_secret_value()]
    for optional in (settings.webhook.signature_token, settings.postback.secret):
        values.append(optional.get_secret_value() if optional is not None else None)
    url = settings.storage.url
    if url:
        with contextlib.suppress(ValueError):
            values.append(unquote(urlsplit(url).password or "") or None)
            values.append(urlsplit(url).password)
    return values


def _too_deep() -> web.Response:
    log.warning("webhook.rejected", reason="too_deep")
    metrics.webhook("rejected", "too_deep")
    return _error(400, "body is nested too deeply to be a Qiscus webhook")


_ANSWERS = {s: dumps({"status": s}) for s in ("accepted", "duplicate", "ignored")}
"""The webhook's 200 bodies, encoded once (``web.json_response`` encodes per answer)."""


def _answer(status: str) -> web.Response:
    body = _ANSWERS.get(status)
    if body is None:
        return web.json_response({"status": status})
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def _degraded(reason: str) -> web.Response:
    return web.json_response({"status": "degraded", "reason": reason}, status=503)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _refusal(body: bytes) -> web.Response | Update:
    """The 400 that says why ``body`` is not a webhook (or the update, for a body pydantic's
    JSON reader refused and ``json`` reads: not UTF-8)."""
    try:
        data = loads(body)
    except ValueError as e:
        log.warning("webhook.rejected", reason="not_json")
        metrics.webhook("rejected", "not_json")
        return _error(400, f"body is not JSON: {e}")
    except RecursionError:
        return _too_deep()
    if not isinstance(data, dict):
        metrics.webhook("rejected", "not_an_object")
        return _error(400, f"body must be a JSON object, got {type(data).__name__}")
    try:
        return Update.model_validate(data)
    except RecursionError:
        return _too_deep()
    except ValidationError as e:
        log.warning("webhook.rejected", reason="not_a_webhook", detail=_describe(e))
        metrics.webhook("rejected", "not_a_webhook")
        return _error(400, f"not a Qiscus webhook: {_describe(e)}")


def create_app(bot: Bot, settings: Settings) -> web.Application:
    """Build the aiohttp application serving ``bot``.

    The app's startup configures the bot, opens its storage (``storage.url``; unset:
    ``sqlite:///.qbot/qbot.db``, folder created) and starts the runtime; its cleanup drains the
    work in hand (up to ``server.shutdown_timeout`` seconds) and closes the client and storage.
    """
    max_body = settings.server.max_body_bytes
    body_timeout = settings.server.header_timeout
    token = settings.webhook.signature_token
    secret = token.get_secret_value() if token is not None else None
    redact(_secrets_of(settings))
    runtime = Runtime(
        bot,
        dedupe_ttl=settings.webhook.dedupe_ttl,
        lease_ttl=settings.storage.lease_ttl,
        linger=settings.storage.linger(),
    )

    async def webhook(request: web.Request) -> web.Response:
        body = await read_body(request, max_body, body_timeout)
        if isinstance(body, web.Response):
            reason = "too_large" if body.status == 413 else "body_timeout"
            log.warning("webhook.rejected", reason=reason, size=request.content_length)
            metrics.webhook("rejected", reason)
            return body
        if secret is not None and not verify_signature(
            body, request.headers.get(SIGNATURE_HEADER), secret
        ):
            reason = "missing" if SIGNATURE_HEADER not in request.headers else "wrong"
            log.warning("webhook.rejected", reason=f"signature_{reason}")
            metrics.webhook("rejected", f"signature_{reason}")
            return _error(401, f"{reason} {SIGNATURE_HEADER} header")
        try:
            # pydantic reads the JSON itself (one pass, no dict in between); what it refuses
            # goes through json and the model again, to answer which of the two it is.
            update = Update.model_validate_json(body)
        except ValidationError:
            refusal = _refusal(body)
            if isinstance(refusal, web.Response):
                return refusal
            update = refusal
        try:
            status = await runtime.submit(update, raw=body)
        except StorageError as e:
            runtime.outages.webhook_failed(e)
            metrics.webhook("unavailable", "store_failed")
            return later("the update could not be stored; deliver again later")
        runtime.outages.webhook_stored()
        if status == "closing":
            metrics.webhook("unavailable", "closing")
            return later("shutting down; deliver again later")
        metrics.webhook(status)  # accepted, duplicate or ignored
        return _answer(status)

    async def healthz(request: web.Request) -> web.Response:
        # 503 "degraded" while the storage fails the webhooks or the background tasks.
        try:
            inbox = await runtime.inbox_size()
        except StorageError as e:
            return _degraded(f"storage unavailable: {e}")
        if runtime.degraded is not None:
            return _degraded(runtime.degraded)
        return web.json_response(
            {
                "status": "ok",
                "pending": runtime.pending,
                "inbox": inbox,
                "processed": runtime.processed,
            }
        )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        if bot.settings is not settings:
            bot.configure(settings)
        url = settings.storage.served_url()
        if bot.storage_url != url:
            bot.use_storage(open_storage(url), url=url)
        if settings.storage.url is None:
            # The default file lives in .qbot/, which a fresh project does not have yet.
            folder = Path(DEFAULT_SERVED_STORAGE.removeprefix("sqlite:///")).parent
            try:
                folder.mkdir(exist_ok=True)
            except OSError as e:
                raise StorageError(
                    f"cannot create the storage folder {str(folder.absolute())!r}: {e.strerror};"
                    " make it writable or set storage.url (QBOT_STORAGE__URL), e.g."
                    " sqlite:////data/qbot.db"
                ) from e
        await bot.start()  # startup hooks before the first update runs
        try:
            await runtime.start()
        except BaseException:
            await bot.aclose()  # the startup hooks ran: so do the shutdown hooks
            raise
        log.info(
            "server.started",
            webhook_path=settings.server.webhook_path,
            bot=bot.name,
            storage=mask_url(bot.storage_url),
        )
        yield
        left = await runtime.drain(settings.server.shutdown_timeout)
        await bot.aclose()
        log.info("server.stopped", unprocessed=left, processed=runtime.processed)

    # The size check above answers 413 itself; aiohttp's own limit is a safety net behind it.
    app = web.Application(client_max_size=max_body + 1)
    app[RUNTIME_KEY] = runtime
    app.router.add_post(settings.server.webhook_path, webhook)
    app.router.add_get("/healthz", healthz)
    if settings.metrics.enabled:
        metrics.enable()
        app.router.add_get(
            settings.metrics.path, metrics.metrics_view(runtime, settings.metrics.token)
        )
    # Omnichannel's lifecycle webhooks: their own module, so this file's body reading stays apart.
    add_lifecycle_routes(app, runtime, settings)
    app.cleanup_ctx.append(lifecycle)
    return app


_LINGER = 1.0
"""Seconds the rest of a refused body (413) is read and dropped before the connection closes, so
the client sees the answer rather than a reset."""


async def start_server(
    app: web.Application,
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    sock: socket.socket | None = None,
) -> HygieneRunner:
    """Start serving ``app`` with the connection hygiene of ``server.*`` settings.

    Args:
        app: from :func:`create_app`.
        settings: ``server.header_timeout``, ``keepalive_timeout``, ``max_connections``.
        host, port: override ``server.host`` / ``server.port`` (port 0: any free port).
        sock: a listening socket to accept on instead (``qbot run --workers``: the supervisor's,
            shared by every worker); ``host`` and ``port`` are then unused.

    Returns:
        The runner: ``runner.addresses`` says where it listens; ``await runner.cleanup()``
        stops it (then the app drains, see :func:`create_app`).

    Raises:
        OSError: the address cannot be listened on.
    """
    server = settings.server
    runner = HygieneRunner(
        app,
        max_connections=connection_cap(server.max_connections),
        header_timeout=server.header_timeout,
        keepalive_timeout=server.keepalive_timeout,
        access_log=None,
        lingering_time=_LINGER,
        shutdown_timeout=server.shutdown_timeout,
    )
    await runner.setup()
    site: web.BaseSite
    if sock is not None:
        site = web.SockSite(runner, sock)
    else:
        site = web.TCPSite(
            runner, server.host if host is None else host, server.port if port is None else port
        )
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return runner


def run_server(
    app: web.Application,
    settings: Settings,
    *,
    ready: Callable[[], None] | None = None,
    sock: socket.socket | None = None,
    supervised: Callable[[Callable[[], None]], None] | None = None,
) -> None:
    """Serve ``app`` on ``server.host:server.port`` until SIGINT or SIGTERM (``qbot run``).

    ``aiohttp.web.run_app`` closes the listening socket before the app's cleanup, so webhooks
    that arrive while the runtime drains would be refused. Here the order is the documented one:
    on SIGTERM the runtime stops accepting and new webhooks get 503 with ``Retry-After`` (the
    socket stays open) while the work in hand finishes, up to ``server.shutdown_timeout``
    seconds; then the socket and connections close and the app's cleanup closes the client and
    the storage.

    Args:
        app: from :func:`create_app`.
        settings: the ``server.*`` settings.
        ready: called once the socket is bound (``qbot run`` says where it listens).
        sock: listen on this socket rather than ``server.host:server.port`` (a worker's).
        supervised: a worker of ``qbot run --workers`` (``qbot.workers``): called once serving,
            in the loop, with the function that starts the drain. The supervisor decides when to
            stop: SIGINT is ignored (a terminal's Ctrl+C reaches the whole process group) and a
            repeated SIGTERM changes nothing.

    Raises:
        QbotError: the app could not start (its storage cannot be opened, a startup hook, ...).
        OSError: the address cannot be listened on.
    """
    import signal

    async def main() -> None:
        loop = asyncio.get_running_loop()
        undo = quiet_accept_errors(loop)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if supervised is not None:
            loop.add_signal_handler(signal.SIGINT, lambda: None)
        try:
            runner = await start_server(app, settings, sock=sock)
            try:
                if ready is not None:
                    ready()
                if supervised is not None:
                    supervised(stop.set)
                await stop.wait()
                if supervised is None:  # a second Ctrl+C stops at once
                    for sig in (signal.SIGINT, signal.SIGTERM):
                        loop.remove_signal_handler(sig)
                timeout = settings.server.shutdown_timeout
                log.info("server.draining", timeout=timeout)
                # The socket is still open: what arrives now is answered 503 with Retry-After.
                await app[RUNTIME_KEY].drain(timeout)
            finally:
                await runner.cleanup()
        finally:
            undo()

    asyncio.run(main())
