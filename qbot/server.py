"""The webhook server: a thin aiohttp adapter that parses, checks and hands over to the runtime.

``POST {server.webhook_path}``: 413 over the size limit, 401 on a bad signature, 400 when the body
is not a webhook, 503 when the update cannot be stored (Qiscus delivers again), else 200 once the
update is in the storage's inbox (it is processed in the background). ``GET /healthz``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from qbot._json import loads
from qbot.config import DEFAULT_SERVED_STORAGE
from qbot.errors import StorageError
from qbot.models.webhook import Update
from qbot.runtime import Runtime
from qbot.storage import open_storage

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.config import Settings

__all__ = ["RUNTIME_KEY", "create_app", "verify_signature"]

log = structlog.get_logger("qbot.server")

RUNTIME_KEY = web.AppKey("qbot_runtime", Runtime)
SIGNATURE_HEADER = "QISCUS-SDK-SIGNATURE"
RETRY_AFTER = "5"
"""Seconds a sender is asked to wait (``Retry-After``) before delivering a 503'd webhook again."""


def verify_signature(body: bytes, signature: str | None, token: str) -> bool:
    """Whether ``signature`` is the hex HMAC-SHA256 of ``body`` keyed with ``token``."""
    if not signature:
        return False
    expected = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _later(message: str) -> web.Response:
    """503 with ``Retry-After``: the webhook was not taken, and may be delivered again soon."""
    response = _error(503, message)
    response.headers["Retry-After"] = RETRY_AFTER
    return response


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
        return _error(400, f"body is not JSON: {e}")
    if not isinstance(data, dict):
        return _error(400, f"body must be a JSON object, got {type(data).__name__}")
    try:
        return Update.model_validate(data)
    except ValidationError as e:
        log.warning("webhook.rejected", reason="not_a_webhook", detail=_describe(e))
        return _error(400, f"not a Qiscus webhook: {_describe(e)}")


def create_app(bot: Bot, settings: Settings) -> web.Application:
    """Build the aiohttp application serving ``bot``.

    The app's startup configures the bot, opens its storage (``storage.url``; unset:
    ``sqlite:///.qbot/qbot.db``, folder created) and starts the runtime; its cleanup drains the
    work in hand (up to ``server.shutdown_timeout`` seconds) and closes the client and storage.
    """
    max_body = settings.server.max_body_bytes
    token = settings.webhook.signature_token
    secret = token.get_secret_value() if token is not None else None
    runtime = Runtime(
        bot,
        dedupe_ttl=settings.webhook.dedupe_ttl,
        lease_ttl=settings.storage.lease_ttl,
        linger=settings.storage.linger(),
    )

    async def webhook(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > max_body:
            log.warning("webhook.rejected", reason="too_large", size=request.content_length)
            return _error(413, f"body is larger than {max_body} bytes")
        body = await request.content.read(max_body + 1)
        if len(body) > max_body:
            log.warning("webhook.rejected", reason="too_large")
            return _error(413, f"body is larger than {max_body} bytes")
        if secret is not None and not verify_signature(
            body, request.headers.get(SIGNATURE_HEADER), secret
        ):
            reason = "missing" if SIGNATURE_HEADER not in request.headers else "wrong"
            log.warning("webhook.rejected", reason=f"signature_{reason}")
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
            log.error("webhook.store_failed", error=str(e))
            return _later("the update could not be stored; deliver again later")
        if status == "closing":
            return _later("shutting down; deliver again later")
        return web.json_response({"status": status})

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
        await runtime.start()
        log.info(
            "server.started",
            webhook_path=settings.server.webhook_path,
            bot=bot.name,
            storage=bot.storage_url,
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
    app.cleanup_ctx.append(lifecycle)
    return app
