"""Debounce: a customer's burst of short messages ("halo" / "mau tanya" / "pesanan saya belum
sampai") gathered into one update, answered once.

```
Bot(debounce=3.0)                        every customer text message is gathered
@bot.message(..., debounce=5.0)          the window when the burst's first message would go to
                                         this handler (debounce=0: never gathered)
```

The room worker (:mod:`qbot.runtime`) calls :func:`gather` before processing a text message:
it waits on ``bot.clock`` until the window has passed since the sender's latest message, taking
in each text message of the same sender that arrives meanwhile (the window starts again with
each). A message of anyone else, or anything but text, ends the burst (it is processed next, in
order). The burst is processed as one update, the first message's, whose ``ctx.text`` is the
texts joined by newlines (``ctx.burst`` lists them); every message of it is acked in the one
commit of that update. Nothing is acked before: after a crash mid-window the messages are
handed out again and gathered again, and the answer, whose reply ids derive from the first
message, is posted once.

In process (``feed_update``, the test kit), a gathered message's ``feed_update`` returns at once
with ``Outcome(ignored="debounced")``; the answer comes when the window has passed on the
clock (``clock.advance(seconds=3)`` then ``await bot.run_due()``).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import TYPE_CHECKING

import structlog

from qbot._aio import first_done
from qbot.context import Context
from qbot.errors import ConfigError
from qbot.handlers import MESSAGE, Outcome, update_kind
from qbot.models.webhook import Update
from qbot.sending import Sender

if TYPE_CHECKING:
    from qbot.dispatcher import Dispatcher
    from qbot.runtime import Runtime
    from qbot.storage import InboxItem

__all__ = ["JOINER", "MAX_BURST", "check_window", "gather"]

log = structlog.get_logger("qbot.debounce")

JOINER = "\n"
"""What joins the texts of a burst in ``ctx.text``."""
MAX_BURST = 50
"""Messages one burst takes at most; the next ones start another."""


def check_window(value: float | None, what: str) -> float | None:
    """A debounce window in seconds (None: not set), or ConfigError naming ``what``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a number of seconds, got {value!r}")
    if value < 0 or value > 3600:
        raise ConfigError(f"{what} must be between 0 and 3600 seconds, got {value!r}")
    return float(value)


def _candidate(dispatcher: Dispatcher, update: Update) -> bool:
    """A customer's text message: what a burst is made of."""
    message = update.message
    if message.type != "text" or update_kind(message.type) != MESSAGE:
        return False
    return dispatcher.ignore_reason(update) is None and not dispatcher._is_agent(update)


async def _window(dispatcher: Dispatcher, update: Update) -> float:
    """The window of a burst starting with ``update``: its handler's, else the bot's."""
    default = dispatcher.debounce or 0.0
    bot = dispatcher.bot
    if not bot.debounced_handlers():
        return default
    # The handler the message would go to now, with the sender's state as it is.
    ctx = Context(dispatcher, update, Sender(dispatcher.outbox.delivery({}), "probe", None))
    await ctx.state.load()
    await ctx.room_state.load()
    handler = await bot.find_handler(ctx, MESSAGE)
    if handler is None or handler.debounce is None:
        return default
    return handler.debounce


def _parsed(runtime: Runtime, item: InboxItem) -> Update | None:
    found = runtime.parsed.peek(item.room_id, item.id)
    if found is not None:
        return found
    try:
        return Update.model_validate(item.payload)
    except ValueError:
        return None


def _merged(first: Update, texts: list[str]) -> Update:
    message = first.message.model_copy(update={"text": JOINER.join(texts)})
    extras = dict(message.extras or {})
    extras["qbot_burst"] = texts
    message = message.model_copy(update={"extras": extras})
    return first.model_copy(
        update={"payload": first.payload.model_copy(update={"message": message})}
    )


def debouncing(dispatcher: Dispatcher) -> bool:
    """Whether the bot gathers bursts at all (``Bot(debounce=...)`` or a handler's own)."""
    return dispatcher.debounce is not None or dispatcher.bot.debounced_handlers()


async def gather(
    runtime: Runtime, room: str, queue: deque[InboxItem], wake: asyncio.Event
) -> tuple[list[InboxItem], Update | None]:
    """The items to process as one, from the head of ``queue``, and their merged update.

    ``([head], None)`` when the head is not debounced; the caller pops the items it processed.
    """
    dispatcher = runtime.dispatcher
    head = queue[0]
    if not debouncing(dispatcher):
        return [head], None
    first = _parsed(runtime, head)
    if first is None or not _candidate(dispatcher, first):
        return [head], None
    try:
        window = await _window(dispatcher, first)
    except Exception as e:  # a filter failed while probing: no debounce for this one
        log.warning("debounce.probe_failed", error=f"{type(e).__name__}: {e}")
        window = 0.0
    if window <= 0:
        return [head], None
    clock = dispatcher.clock
    batch, texts = [head], [first.message.text]
    runtime.waiters.resolve(head.id, Outcome(ignored="debounced"))
    deadline = clock.time() + window
    runtime.gathering[room] = deadline  # its items are not work in hand before then (run_due)
    try:
        while True:
            ended = False
            while len(batch) < len(queue) and len(batch) < MAX_BURST:
                item = queue[len(batch)]
                update = _parsed(runtime, item)
                if (
                    update is None
                    or not _candidate(dispatcher, update)
                    or update.sender.email != first.sender.email
                ):
                    ended = True
                    break
                batch.append(item)
                texts.append(update.message.text)
                runtime.waiters.resolve(item.id, Outcome(ignored="debounced"))
                deadline = runtime.gathering[room] = clock.time() + window
            if ended or len(batch) >= MAX_BURST or runtime.closing or runtime.lost(room):
                break
            left = deadline - clock.time()
            if left <= 0:
                break
            wake.clear()
            if len(batch) < len(queue):
                continue
            await first_done(wake.wait(), clock.sleep(left))
    finally:
        runtime.gathering.pop(room, None)
    log.info("debounce.gathered", messages=len(batch), window=window)
    return batch, (_merged(first, texts) if len(batch) > 1 else first)
