"""What a production bot's Prometheus scrapes: ``GET /metrics`` (``metrics.enabled``).

The server, the dispatcher, the runtime and the outbox each record with one call
(``metrics.webhook("accepted")``, ``metrics.reply("sent")``...); ``qbot.handlers`` times every
handler. Nothing is recorded (the calls return at once) until a server with
``metrics.enabled`` is built in the process (:func:`enable`). Counters live in this process
(prometheus-client's default registry, which also holds the ``process_*`` and ``python_*``
metrics and any metric of your own): every replica and worker is scraped on its own address and
queries add them up (``sum by (outcome) (rate(qbot_webhooks_total[5m]))``). The inbox depth and
the pending outbox are read from the storage at scrape time; with a shared storage every replica
reports the same value, so take their ``max``.

- ``qbot_webhooks_total{outcome, reason}``: ``accepted``, ``duplicate``, ``ignored``,
  ``rejected`` (``reason``: ``too_large``, ``signature_missing``, ``signature_wrong``,
  ``not_json``, ``not_an_object``, ``not_a_webhook``), ``unavailable`` (``store_failed``,
  ``closing``).
- ``qbot_updates_total{outcome}``: processed updates, ``handled`` or why not (``unhandled``...).
- ``qbot_handler_seconds{handler}``: histogram of a handler's run time, its replies included.
- ``qbot_handler_errors_total{handler}``: handlers that raised.
- ``qbot_replies_total{outcome}``: ``sent``, ``queued`` (kept to retry), ``resent`` (a queued
  reply posted later), ``failed`` (refused for good).
- ``qbot_storage_errors_total{operation}``: ``inbox_put``, ``commit``, ``claim``, ``renew``,
  ``release``, ``flush``, ``ack``, ``scrape``.
- ``qbot_inbox_depth``, ``qbot_outbox_pending`` (up to 1000): storage-wide, read at scrape time.
- ``qbot_updates_in_hand``: updates this process claimed and has not finished.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram
from prometheus_client import generate_latest as _generate_latest

from qbot.errors import StorageError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from qbot.handlers import Outcome
    from qbot.runtime import Runtime

__all__ = [
    "OUTBOX_LIMIT",
    "enable",
    "handler_done",
    "metrics_view",
    "processed",
    "reply",
    "storage_failed",
    "webhook",
]

OUTBOX_LIMIT = 1000
"""Pending replies counted at most per scrape (the storage has no cheaper count)."""

_WEBHOOKS = Counter(
    "qbot_webhooks", "Webhooks received, by outcome and rejection reason", ["outcome", "reason"]
)
_UPDATES = Counter("qbot_updates", "Updates processed, by outcome", ["outcome"])
_HANDLER_SECONDS = Histogram(
    "qbot_handler_seconds",
    "Time a handler took, its replies included",
    ["handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
_HANDLER_ERRORS = Counter("qbot_handler_errors", "Handlers that raised", ["handler"])
_REPLIES = Counter("qbot_replies", "Replies, by outcome", ["outcome"])
_STORAGE_ERRORS = Counter("qbot_storage_errors", "Storage failures, by operation", ["operation"])
_INBOX = Gauge("qbot_inbox_depth", "Accepted updates not processed yet (storage-wide)")
_OUTBOX = Gauge("qbot_outbox_pending", "Replies waiting for Qiscus (storage-wide, capped)")
_IN_HAND = Gauge("qbot_updates_in_hand", "Updates this process claimed and has not finished")

# The labelled children, found with one dict lookup: labels() takes a lock and checks its
# arguments every time (measured: 4.1 us a call against 1.2 us for the child's inc()). The label
# values are few (fixed names, the bot's handlers), so the cache stays small.
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


_recording = [False]
"""Whether anything records: nothing can scrape this process until a server serves /metrics,
and recording costs ~10 us a message (measured: a dispatched message's p50 57 -> 68 us)."""


def enable() -> None:
    """Start recording (``create_app`` calls it when ``metrics.enabled``); for the process."""
    _recording[0] = True


def webhook(outcome: str, reason: str = "") -> None:
    """Count a webhook: ``accepted``, ``duplicate``, ``ignored``, ``rejected`` + reason..."""
    if _recording[0]:
        _child(_WEBHOOKS, outcome, reason).inc()


def processed(outcome: Outcome) -> None:
    """Count a processed update by its outcome (``handled`` or the reason it was ignored)."""
    if _recording[0]:
        _child(_UPDATES, "handled" if outcome.handler else outcome.ignored or "unknown").inc()


def handler_done(handler: str, seconds: float, *, failed: bool) -> None:
    """Record one handler run (``qbot.handlers.run_handler``)."""
    if not _recording[0]:
        return
    _child(_HANDLER_SECONDS, handler).observe(seconds)
    if failed:
        _child(_HANDLER_ERRORS, handler).inc()


def reply(outcome: str) -> None:
    """Count a reply: ``sent``, ``queued``, ``resent`` or ``failed``."""
    if _recording[0]:
        _child(_REPLIES, outcome).inc()


def storage_failed(operation: str, error: BaseException | None = None) -> None:
    """Count a storage failure where it was caught (``error``: only if a ``StorageError``)."""
    if _recording[0] and (error is None or isinstance(error, StorageError)):
        _child(_STORAGE_ERRORS, operation).inc()


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def metrics_view(
    runtime: Runtime, token: SecretStr | None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``GET /metrics`` handler of the app serving ``runtime``'s bot.

    With ``token``, a request needs ``Authorization: Bearer <token>`` (else 401 JSON).
    """
    secret = token.get_secret_value() if token is not None else None

    async def view(request: web.Request) -> web.Response:
        if secret is not None and not _authorized(request, secret):
            return web.json_response(
                {"error": "missing or wrong bearer token (metrics.token)"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="qbot metrics"'},
            )
        _IN_HAND.set(runtime.pending)
        try:
            _INBOX.set(await runtime.inbox_size())
            _OUTBOX.set(len(await runtime.storage.outbox_pending(limit=OUTBOX_LIMIT)))
        except StorageError:  # the storage is down: say so in the numbers, still answer
            storage_failed("scrape")
            _INBOX.set(math.nan)
            _OUTBOX.set(math.nan)
        # The content type carries "; charset=utf-8", which aiohttp wants in its own argument.
        content_type, _, charset = CONTENT_TYPE_LATEST.partition("; charset=")
        return web.Response(
            body=_generate_latest(REGISTRY), content_type=content_type, charset=charset or None
        )

    return view
