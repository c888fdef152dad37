"""How the Qiscus client retries: exponential backoff, full jitter, bounded attempts and time."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from qbot.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long the client waits before trying a request again.

    Retried: 5xx answers, 429 (waiting ``Retry-After`` when the server sends it), timeouts and
    connection errors. Never retried: any other 4xx.

    Attributes:
        max_attempts: total tries including the first; ``1`` disables retries.
        base_delay: the wait before the second try, in seconds; it doubles with every try.
        max_delay: the ceiling of one computed backoff wait, in seconds.
        max_total_time: the budget for all tries and waits together, in seconds; a wait that would
            overrun it (including a long ``Retry-After``) ends the retries with the last error.
        jitter: wait a random time between 0 and the backoff ("full jitter") so that many clients
            do not retry in lockstep.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_total_time: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"RetryPolicy.max_attempts={self.max_attempts!r} must be at least 1")
        for name in ("base_delay", "max_delay", "max_total_time"):
            value = getattr(self, name)
            if value < 0:
                raise ConfigError(f"RetryPolicy.{name}={value!r} must not be negative")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling) if self.jitter else ceiling


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns ``None`` when the header is missing or unreadable; never a negative number.
    """
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
