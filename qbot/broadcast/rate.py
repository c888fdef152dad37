"""A token bucket on the bot's clock: at most ``rate`` sends a second, ``burst`` at once."""

from __future__ import annotations

import asyncio
import re

from qbot.clock import Clock
from qbot.errors import ConfigError

__all__ = ["TokenBucket", "parse_rate"]

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*$")
_PER = {None: 1.0, "s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PER.update({"h": 3600.0, "hour": 3600.0})


def parse_rate(text: str | float) -> float:
    """``"20/s"``, ``"600/min"``, ``"5"`` as sends per second.

    Raises:
        ConfigError: not a positive rate.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        rate = float(text)
    else:
        found = _RATE.match(str(text))
        if found is None:
            raise ConfigError(f"rate {text!r} must look like 20/s, 600/min or 5")
        rate = float(found.group(1)) / _PER[found.group(2)]
    if not rate > 0:
        raise ConfigError(f"rate {text!r} must be more than 0")
    return rate


class TokenBucket:
    """Hands out ``rate`` tokens a second; up to ``burst`` saved while idle.

    Args:
        rate: tokens a second.
        clock: whose time it follows (a ManualClock in tests).
        burst: the most tokens saved up (default: one: sends evenly spaced).
    """

    def __init__(self, rate: float, clock: Clock, *, burst: float = 1.0) -> None:
        if not rate > 0:
            raise ConfigError(f"rate {rate!r} must be more than 0")
        self.rate = rate
        self.clock = clock
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._at = clock.time()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        """Wait for a token (callers are served in turn)."""
        async with self._lock:
            now = self.clock.time()
            self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            # Sleep until the next token is whole, then spend it: recomputing it from the
            # clock's floats could leave it a rounding error short, for ever.
            wait = (1.0 - self._tokens) / self.rate
            await self.clock.sleep(wait)
            self._tokens = 0.0
            self._at = now + wait
