"""Reading webhook bodies and the answers every webhook route shares (413, 408, 503).

Used by :mod:`qbot.server` (the bot webhook) and :mod:`qbot.omnichannel.webhooks` (the
lifecycle webhooks), so both read a body the same way: whole, however it was segmented.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

__all__ = ["RETRY_AFTER", "error", "later", "read_body", "too_large", "too_slow"]

RETRY_AFTER = "5"
"""Seconds a sender is asked to wait (``Retry-After``) before delivering a 503'd webhook again."""


def error(status: int, message: str, **extra: Any) -> web.Response:
    """A JSON error answer: ``{"error": message, ...}``."""
    return web.json_response({"error": message, **extra}, status=status)


async def _read_all(request: web.Request, limit: int) -> bytes | None:
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: web.Request, limit: int, within: float) -> bytes | web.Response:
    """The whole body, however it was segmented or chunked; else the answer to send instead.

    ``request.content.read(n)`` returns what is buffered so far, not the body: over the
    Internet a body routinely arrives in several TCP segments, so read until the end. Past
    ``limit`` bytes (announced or chunked): :func:`too_large`, without reading further; slower
    than ``within`` seconds: :func:`too_slow`.
    """
    content = request.content
    if content.is_eof() and (request.content_length or 0) <= limit:
        # The whole body came with the headers (a webhook's usually does): no timer to arm.
        whole = content.read_nowait(-1)
        return too_large(limit) if len(whole) > limit else whole
    try:
        async with asyncio.timeout(within):
            body = await _read_all(request, limit)
    except TimeoutError:
        return too_slow(within)
    return too_large(limit) if body is None else body


def too_large(limit: int) -> web.Response:
    """413: the body is over ``limit`` bytes."""
    response = error(413, f"body is larger than {limit} bytes")
    # The rest of the body is never read into memory: the connection closes after the answer.
    response.force_close()
    return response


def too_slow(timeout: float) -> web.Response:
    """408: the body did not arrive within ``timeout`` seconds."""
    # A slow body holds a connection that the cap cannot shed (it is mid-request).
    response = error(408, f"the body did not arrive within {timeout:g} s")
    response.force_close()
    return response


def later(message: str) -> web.Response:
    """503 with ``Retry-After``: the webhook was not taken, and may be delivered again soon."""
    response = error(503, message)
    response.headers["Retry-After"] = RETRY_AFTER
    return response
