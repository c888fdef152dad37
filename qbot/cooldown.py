"""Per-room cooldowns for notifications: ``await ctx.cooldown("promo", hours=24)`` -> bool.

True means "go ahead": the room was not cooling down for that name, and now is, for the given
time. False means a notification of that name went out less than that long ago: skip it. The
end of each cooldown is kept in the storage (durable, shared by replicas) and compared with
``bot.clock``, so a :class:`~qbot.clock.ManualClock` moved forward ends it.

```python
@bot.scheduled("promo")
async def promo(ctx: Context) -> None:
    if await ctx.cooldown("promo", hours=24):
        await ctx.reply("Diskon 20% hari ini!")
```
The check and the new cooldown are one step per room (a room's updates run one at a time); it
takes effect at once, even if the handler raises afterwards. ``ctx.cooldown_left(name)`` says
how long is left without starting one; ``reset=True`` clears it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from qbot.errors import QbotError
from qbot.storage import state_key
from qbot.storage.schedule import JOB_NAME

if TYPE_CHECKING:
    from qbot.dispatcher import Dispatcher

__all__ = ["CooldownError", "cooldown", "cooldown_key", "cooldown_left", "seconds_of"]

_MARGIN = 3600.0  # the stored record outlives the cooldown a little (storage and bot clocks)


class CooldownError(QbotError, ValueError):
    """A cooldown call with a bad name or duration (the message says which)."""


def cooldown_key(room_id: str, name: str, user: str | None = None) -> str:
    """The state key holding when the room's (or the room user's) cooldown ``name`` ends."""
    owner = f"qbot:cooldown:{name}" if user is None else f"qbot:cooldown:{name}:{user}"
    return state_key(room_id, owner)


def seconds_of(seconds: float, minutes: float, hours: float, days: float) -> float:
    """The duration the keywords add up to; CooldownError when it is not positive and finite."""
    parts = (seconds, minutes, hours, days)
    if any(isinstance(p, bool) or not isinstance(p, int | float) for p in parts):
        raise CooldownError(f"cooldown durations must be numbers, got {parts!r}")
    total = float(seconds) + minutes * 60 + hours * 3600 + days * 86400
    if not math.isfinite(total) or total <= 0:
        raise CooldownError(f"a cooldown must last more than 0 seconds, got {total!r}")
    return total


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not JOB_NAME.fullmatch(name):
        raise CooldownError(f"cooldown name {name!r} must be 1 to 100 letters, digits, '_ . -'")
    return name


async def cooldown_left(
    dispatcher: Dispatcher, room_id: str, name: str, user: str | None = None
) -> float:
    """Seconds until the cooldown ``name`` of the room ends on ``bot.clock``; 0 when it is over."""
    until = await dispatcher.storage.get_state(cooldown_key(room_id, _check_name(name), user))
    if not isinstance(until, int | float):
        return 0.0
    return max(0.0, float(until) - dispatcher.clock.time())


async def cooldown(
    dispatcher: Dispatcher,
    room_id: str,
    name: str,
    duration: float,
    *,
    user: str | None = None,
    reset: bool = False,
) -> bool:
    """True (and the cooldown starts) when the room is not cooling down for ``name``."""
    key = cooldown_key(room_id, _check_name(name), user)
    storage = dispatcher.storage
    if reset:
        await storage.delete_state(key)
        return True
    if await cooldown_left(dispatcher, room_id, name, user) > 0:
        return False
    until = dispatcher.clock.time() + duration
    await storage.set_state(key, until, ttl=duration + _MARGIN)
    return True
