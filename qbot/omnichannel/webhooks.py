"""The server's routes for Omnichannel's lifecycle webhooks.

``POST {server.webhook_path}/resolved``, ``/new-session`` and ``/agent-allocation``: 401 when
``omnichannel.webhook_token`` is set and ``?token=`` is missing or wrong, 413 over the size
limit (chunked included), 408 when the body is slower than ``server.header_timeout``, 400 when
the body is not that webhook, 503 with ``Retry-After`` when it cannot be stored or the server is
shutting down, else 200 once it is
in the storage's inbox (deduplicated like a message; processed in the background by the room's
worker, see :mod:`qbot.omnichannel.lifecycle`).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from qbot._bodies import error as _error
from qbot._bodies import later, read_body
from qbot.errors import StorageError
from qbot.omnichannel.lifecycle import LIFECYCLE_KINDS, lifecycle_update

if TYPE_CHECKING:
    from qbot.config import Settings
    from qbot.runtime import Runtime

__all__ = ["add_lifecycle_routes"]

log = structlog.get_logger("qbot.server")


def add_lifecycle_routes(app: web.Application, runtime: Runtime, settings: Settings) -> None:
    """Serve the lifecycle webhooks under ``server.webhook_path`` on ``app``."""
    token = settings.omnichannel.webhook_token
    secret = token.get_secret_value() if token is not None else None
    max_body = settings.server.max_body_bytes
    body_timeout = settings.server.header_timeout
    base = settings.server.webhook_path.rstrip("/")

    def route(kind: str) -> web.RouteDef:
        async def handle(request: web.Request) -> web.Response:
            if secret is not None:
                given = request.query.get("token")
                if given is None or not hmac.compare_digest(given.encode(), secret.encode()):
                    reason = "missing" if given is None else "wrong"
                    log.warning("omnichannel.webhook_rejected", kind=kind, reason=f"token_{reason}")
                    return _error(401, f"{reason} ?token= (omnichannel.webhook_token)")
            body = await read_body(request, max_body, body_timeout)
            if isinstance(body, web.Response):
                reason = "too_large" if body.status == 413 else "body_timeout"
                log.warning("omnichannel.webhook_rejected", kind=kind, reason=reason)
                return body
            try:
                update = lifecycle_update(kind, body)
            except ValueError as e:
                log.warning("omnichannel.webhook_rejected", kind=kind, reason="invalid")
                return _error(400, f"not an Omnichannel {kind} webhook: {e}")
            try:
                status = await runtime.submit(update)
            except StorageError as e:
                runtime.outages.webhook_failed(e)
                return later("the webhook could not be stored; deliver again later")
            runtime.outages.webhook_stored()
            if status == "closing":
                return later("shutting down; deliver again later")
            return web.json_response({"status": status})

        return web.post(f"{base}/{kind}", handle)

    app.add_routes([route(kind) for kind in LIFECYCLE_KINDS])
