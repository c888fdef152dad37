"""In-process helpers: a bot with no network behind it, and a timing loop."""

from __future__ import annotations

import io
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from qbot import Bot
from qbot.log import configure_logging
from qbot.messages import Outgoing

BOT_EMAIL = "bot@bench.local"


class NullDelivery:
    """Accepts every reply at once: the core's cost without the network."""

    def __init__(self) -> None:
        self.count = 0

    async def deliver(self, room_id: int | str, outgoing: Outgoing, unique_temp_id: str) -> Any:
        self.count += 1
        return None


def quiet_logging() -> None:
    """Log at warning into memory: info lines cost nothing, as in aiogram's default setup."""
    configure_logging("warning", "json", stream=io.StringIO())


def offline(bot: Bot) -> Bot:
    """Give ``bot`` an identity and a delivery that never touches the network."""
    bot.email = BOT_EMAIL
    bot.delivery = NullDelivery()
    return bot


async def time_each(
    items: Sequence[Any], call: Callable[[Any], Awaitable[Any]], rounds: int = 1
) -> list[float]:
    """Seconds taken by ``await call(item)`` for every item, ``rounds`` times over."""
    out: list[float] = []
    clock = time.perf_counter
    for _ in range(rounds):
        for item in items:
            start = clock()
            await call(item)
            out.append(clock() - start)
    return out


async def per_second(items: Sequence[Any], call: Callable[[Any], Awaitable[Any]]) -> float:
    """How many ``await call(item)`` complete per second over ``items``."""
    start = time.perf_counter()
    for item in items:
        await call(item)
    return len(items) / (time.perf_counter() - start)
