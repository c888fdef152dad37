"""Inbox → dispatcher: dedupe, then one update at a time per room, rooms concurrently.

The webhook server calls :meth:`Runtime.submit` and answers at once; a worker task per busy room
feeds that room's updates to :meth:`Bot.feed_update` in arrival order. Every task is held in
``_workers`` and awaited on :meth:`Runtime.drain`, so shutdown never orphans a message.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.models.webhook import Update

__all__ = ["Deduper", "Runtime"]

log = structlog.get_logger("qbot.runtime")


class Deduper:
    """Remembers message identities for ``ttl`` seconds (in this process).

    Args:
        ttl: how long a seen key is remembered.
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(self, ttl: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def claim(self, key: str) -> bool:
        """Record ``key``; ``True`` when it was not seen within the TTL."""
        now = self.clock()
        # Keys are inserted in time order, so expired ones sit at the front.
        while self._seen:
            oldest, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            del self._seen[oldest]
        if key in self._seen:
            return False
        self._seen[key] = now + self.ttl
        return True

    def __len__(self) -> int:
        return len(self._seen)


class Runtime:
    """Queues accepted updates per room and processes them in the background.

    Args:
        bot: the configured bot.
        dedupe_ttl: how long a message identity is remembered (at least 10 minutes by default).
    """

    def __init__(self, bot: Bot, *, dedupe_ttl: float = 600.0) -> None:
        self.bot = bot
        self.deduper = Deduper(dedupe_ttl)
        self._queues: dict[str, deque[Update]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._closing = False
        self.processed = 0

    @property
    def pending(self) -> int:
        """Updates accepted and not yet processed."""
        return sum(len(q) for q in self._queues.values()) + len(self._workers)

    def submit(self, update: Update) -> str:
        """Accept ``update`` for processing.

        Returns:
            ``accepted``, ``duplicate``, ``ignored`` (the bot's own message or an unhandled system
            event) or ``closing`` (shutting down: the sender should retry later).
        """
        if self._closing:
            return "closing"
        reason = self.bot.ignore_reason(update)
        if reason is not None:
            log.debug("webhook.ignored", reason=reason, room_id=str(update.room.id))
            return "ignored"
        key = update.dedupe_key
        if key is not None and not self.deduper.claim(key):
            log.info("webhook.duplicate", room_id=str(update.room.id), message=key)
            return "duplicate"
        room = str(update.room.id)
        queue = self._queues.get(room)
        if queue is None:
            queue = self._queues[room] = deque()
        queue.append(update)
        if room not in self._workers:
            self._workers[room] = asyncio.create_task(self._work(room), name=f"qbot-room-{room}")
        return "accepted"

    async def _work(self, room: str) -> None:
        queue = self._queues[room]
        try:
            while queue:
                update = queue.popleft()
                await self.process(update)
        finally:
            del self._queues[room]
            del self._workers[room]

    async def process(self, update: Update) -> None:
        """Process one update now, with the room and message bound to every log line."""
        with structlog.contextvars.bound_contextvars(
            room_id=str(update.room.id), message_id=update.message.identity
        ):
            try:
                await self.bot.feed_update(update)
            except Exception as exc:
                # feed_update already contains handler errors; this is a bug or misconfiguration
                # outside any handler. Log it and keep serving the other messages.
                log.error("update.failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            finally:
                self.processed += 1

    async def drain(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109 - a grace period: on expiry the workers are cancelled, not the caller
        """Stop accepting, wait for queued updates to finish; return how many were left undone."""
        self._closing = True
        workers = list(self._workers.values())
        if not workers:
            return 0
        log.info("runtime.draining", rooms=len(workers), pending=self.pending)
        _, not_done = await asyncio.wait(workers, timeout=timeout)
        left = self.pending
        for task in not_done:
            task.cancel()
        if not_done:
            await asyncio.wait(not_done)
            log.error("runtime.drain_timeout", unprocessed=left, timeout=timeout)
        return left if not_done else 0
