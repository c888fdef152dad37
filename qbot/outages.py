"""Outages of the runtime's background tasks: back off, log once, say what fails."""

from __future__ import annotations

import structlog

from qbot import metrics
from qbot.errors import StorageError

__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "Outages"]

log = structlog.get_logger("qbot.runtime")

BACKOFF_FIRST = 0.1
"""Seconds a background task waits after the first failure of an outage; doubled per failure."""
BACKOFF_MAX = 5.0
"""The longest wait between two tries of a background task during an outage."""


class Outages:
    """The failures the runtime's background tasks are living through, one outage per task.

    A task that fails calls :meth:`failed` and waits what it returns (an exponential backoff);
    the first failure of an outage is logged (``runtime.degraded``), the next ones are not, and
    the task's next success ends the outage (``runtime.recovered``, with how many tries failed).
    """

    def __init__(self) -> None:
        self._reasons: dict[str, str] = {}
        self._failures: dict[str, int] = {}

    @property
    def reason(self) -> str | None:
        """What is failing now (``task: error``, one per failing task), or None when all is well."""
        if not self._reasons:
            return None
        return "; ".join(f"{task}: {error}" for task, error in sorted(self._reasons.items()))

    def failed(self, task: str, error: BaseException) -> float:
        """Note a failure of ``task``; return the seconds it should wait before trying again."""
        count = self._failures.get(task, 0) + 1
        self._failures[task] = count
        metrics.storage_failed(task, error)
        text = f"{type(error).__name__}: {error}"
        if task not in self._reasons:
            # A bug (not a StorageError) gets its traceback; an outage is one line.
            trace = None if isinstance(error, StorageError) else error
            log.error("runtime.degraded", task=task, error=text, exc_info=trace)
        self._reasons[task] = text
        return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** (count - 1)))

    def recovered(self, task: str) -> None:
        """Note a success of ``task``: the end of its outage, if it was living through one."""
        if self._reasons.pop(task, None) is not None:
            log.warning("runtime.recovered", task=task, failed_tries=self._failures.get(task, 0))
        self._failures.pop(task, None)
