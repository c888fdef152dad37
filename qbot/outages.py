"""Outages of the runtime's background tasks and of storing webhooks: back off, log once, say
what fails."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable

import structlog
from redis.exceptions import RedisError

from qbot import metrics
from qbot.errors import LeaseLostError, StorageError

__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "WEBHOOK", "WEBHOOK_SHOWN", "Outages", "storage_outage"]

log = structlog.get_logger("qbot.runtime")

BACKOFF_FIRST = 0.1
"""Seconds a background task waits after the first failure of an outage; doubled per failure."""
BACKOFF_MAX = 5.0
"""The longest wait between two tries of a background task during an outage."""
WEBHOOK = "inbox_put"
"""The task storing webhooks in the inbox (the server's; a webhook is answered 503 while it
fails), named after the storage call in ``/healthz`` and ``qbot_storage_errors_total``."""
WEBHOOK_SHOWN = 15.0
"""Seconds after the last failed webhook that :attr:`Outages.reason` still names it. A background
task ends its outage by trying again; storing webhooks is tried again only when a webhook comes,
and a load balancer that stops sending them on a 503 ``/healthz`` would keep it degraded."""


def storage_outage(error: BaseException) -> bool:
    """Whether ``error`` says the storage is down (Redis unreachable, SQLite locked or its disk
    full): a :class:`StorageError` raised from the backend's own failure. One that refuses a
    value (a state key that is not a string, a value that is not JSON) is a bug, not an outage.
    """
    if not isinstance(error, StorageError) or isinstance(error, LeaseLostError):
        return False
    return isinstance(error.__cause__, RedisError | sqlite3.OperationalError | OSError)


class Outages:
    """The failures the runtime's background tasks are living through, one outage per task.

    A task that fails calls :meth:`failed` and waits what it returns (an exponential backoff);
    the first failure of an outage is logged (``runtime.degraded``, or the ``event`` given), the
    next ones are not, and the task's next success ends the outage (``runtime.recovered``, with
    how many tries failed).

    Args:
        clock: seconds (the bot's clock), for failures shown only for a while (``shown_for``).
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        self._reasons: dict[str, str] = {}
        self._failures: dict[str, int] = {}
        self._shown_until: dict[str, float] = {}

    @property
    def reason(self) -> str | None:
        """What is failing now (``task: error``, one per failing task), or None when all is well."""
        if not self._reasons:
            return None
        now = self._clock() if self._shown_until and self._clock is not None else 0.0
        failing = [
            f"{task}: {error}"
            for task, error in sorted(self._reasons.items())
            if self._shown_until.get(task, now) >= now
        ]
        return "; ".join(failing) or None

    def failed(
        self,
        task: str,
        error: BaseException,
        *,
        event: str = "runtime.degraded",
        shown_for: float | None = None,
    ) -> float:
        """Note a failure of ``task``; return the seconds it should wait before trying again.

        Args:
            event: the line logged when this failure begins an outage.
            shown_for: :attr:`reason` names the outage only this many seconds after its last
                failure (default: until :meth:`recovered`); it is still one outage, logged once.
        """
        count = self._failures.get(task, 0) + 1
        self._failures[task] = count
        metrics.storage_failed(task, error)
        text = f"{type(error).__name__}: {error}"
        if task not in self._reasons:
            # A bug (not a StorageError) gets its traceback; an outage is one line.
            trace = None if isinstance(error, StorageError) else error
            log.error(event, task=task, error=text, exc_info=trace)
        self._reasons[task] = text
        if shown_for is not None and self._clock is not None:
            self._shown_until[task] = self._clock() + shown_for
        return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** (count - 1)))

    def recovered(self, task: str, *, event: str = "runtime.recovered") -> None:
        """Note a success of ``task``: the end of its outage, if it was living through one."""
        if not self._failures:  # all is well: the common case, once per webhook
            return
        if self._reasons.pop(task, None) is not None:
            log.warning(event, task=task, failed_tries=self._failures.get(task, 0))
            self._shown_until.pop(task, None)
        self._failures.pop(task, None)

    async def every(
        self,
        task: str,
        step: Callable[[], Awaitable[None]],
        interval: float,
        *,
        cap: float | None = None,
    ) -> None:
        """Run ``step`` every ``interval`` seconds for ever, through any failure: a failure
        waits the backoff (at most ``cap`` seconds, when given) before the next try."""
        wait = interval
        while True:
            await asyncio.sleep(wait)
            try:
                await step()
            except Exception as e:  # a storage outage or a bug: the task goes on
                backoff = self.failed(task, e)
                wait = backoff if cap is None else min(cap, backoff)
                continue
            wait = interval
            self.recovered(task)

    def webhook_failed(self, error: StorageError) -> None:
        """Note a webhook the storage refused (answered 503): ``webhook.store_failed`` is logged
        once per outage, and :attr:`reason` names it until a webhook is stored again (at most
        :data:`WEBHOOK_SHOWN` seconds after the last refusal)."""
        self.failed(WEBHOOK, error, event="webhook.store_failed", shown_for=WEBHOOK_SHOWN)

    def webhook_stored(self) -> None:
        """Note a webhook stored: the end of an outage of storing them, if there was one
        (``webhook.store_recovered``)."""
        self.recovered(WEBHOOK, event="webhook.store_recovered")
