"""Startup and shutdown hooks: the bot's own resources (a database pool, an HTTP session).

```python
@bot.on_startup
async def connect() -> None:             # or (bot: Bot)
    shop.db = await open_pool()

@bot.on_shutdown
async def disconnect() -> None:
    await shop.db.close()
```

The hooks of the bot run first, in registration order, then those of its included routers
(in inclusion order, depth first), when the bot starts serving: ``qbot run``, ``qbot dev``,
``qbot shell``, the test kit, or the first ``bot.feed_update``. Shutdown hooks run in the
reverse order when it stops (``bot.aclose()``), after the last update, before the storage and
the client close. A startup hook that raises stops the start (:class:`StartupError` names it;
the shutdown hooks do not run, as in aiogram and Starlette); once they all ran, the shutdown
hooks always run, also when the server then fails to start. A shutdown hook that raises is
logged (``bot.shutdown_hook_failed``) and the others still run.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from qbot.errors import HandlerRegistrationError, StartupError
from qbot.handlers import describe

if TYPE_CHECKING:
    from qbot.bot import Bot

__all__ = ["Hook", "LifecycleHook", "check_hook", "run_shutdown", "run_startup"]

log = structlog.get_logger("qbot.bot")

Hook = Callable[..., Awaitable[Any]]
"""``async def hook() -> None`` or ``async def hook(bot: Bot) -> None``."""


@dataclass(frozen=True, slots=True)
class LifecycleHook:
    """A registered hook and whether it takes the bot."""

    fn: Hook
    takes_bot: bool

    @property
    def name(self) -> str:
        return describe(self.fn)

    async def __call__(self, bot: Bot) -> None:
        await (self.fn(bot) if self.takes_bot else self.fn())


def check_hook(fn: Any, what: str) -> LifecycleHook:
    """Reject at registration a hook that would fail when the bot starts.

    Raises:
        HandlerRegistrationError: ``fn`` is not ``async def`` or takes other than no argument
            or one (the bot).
    """
    short = getattr(fn, "__name__", "hook")
    if not inspect.iscoroutinefunction(fn):
        raise HandlerRegistrationError(
            f"{what} hook {describe(fn)!r} must be 'async def': write 'async def {short}() -> None'"
        )
    signature = inspect.signature(fn)
    for args in ((), (None,)):
        try:
            signature.bind(*args)
        except TypeError:
            continue
        return LifecycleHook(fn, takes_bot=bool(args))
    raise HandlerRegistrationError(
        f"{what} hook {describe(fn)!r} must take no argument or the bot: "
        f"async def {short}() -> None, or async def {short}(bot: Bot) -> None"
    )


async def run_startup(hooks: Iterable[LifecycleHook], bot: Bot) -> int:
    """Run ``hooks`` in order; return how many ran.

    Raises:
        StartupError: a hook raised; the ones after it did not run.
    """
    ran = 0
    for hook in hooks:
        try:
            await hook(bot)
        except Exception as e:
            raise StartupError(f"startup hook {hook.name!r} failed: {type(e).__name__}: {e}") from e
        ran += 1
    return ran


async def run_shutdown(hooks: Iterable[LifecycleHook], bot: Bot) -> int:
    """Run ``hooks`` in reverse order, each whatever the others did; return how many failed."""
    failed = 0
    for hook in reversed(list(hooks)):
        try:
            await hook(bot)
        except Exception as e:
            failed += 1
            log.error(
                "bot.shutdown_hook_failed",
                hook=hook.name,
                error=f"{type(e).__name__}: {e}",
                exc_info=e,
            )
    return failed
