"""Handler objects, the per-kind handler lists a router holds, and what trying one returns.

Each router holds one :class:`HandlerList` per kind of update (``message``, ``postback``,
``event``): its handlers in registration order, the index from the key a handler requires (the
normalised exact text, the postback action, the event subtype) to its positions, and the memo of
which positions can match a message seen before. Trying a router gives a :class:`Result`:
``HANDLED`` (a handler ran), ``NOT_HANDLED`` (nothing matched: look further) or ``STOPPED`` (a
middleware returned without calling ``call_next``: nothing else runs, the fallback included).
"""

from __future__ import annotations

import enum
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from heapq import merge
from typing import TYPE_CHECKING, Any

import structlog

from qbot import metrics
from qbot.errors import HandlerRegistrationError
from qbot.outages import storage_outage

if TYPE_CHECKING:
    from qbot.context import Context
    from qbot.filters import Filter
    from qbot.routing import Router

__all__ = [
    "EVENT",
    "KINDS",
    "MESSAGE",
    "POSTBACK",
    "Handler",
    "HandlerFn",
    "HandlerList",
    "Middleware",
    "Outcome",
    "Result",
    "check_handler",
    "check_middleware",
    "describe",
    "run_handler",
    "update_kind",
]

log = structlog.get_logger("qbot.routing")

HandlerFn = Callable[["Context"], Awaitable[Any]]
Middleware = Callable[["Context", Callable[[], Awaitable[None]]], Awaitable[Any]]

MESSAGE, POSTBACK, EVENT = "message", "postback", "event"
KINDS = (MESSAGE, POSTBACK, EVENT)
MEMO_SIZE = 4096
MEMO_TEXT = 256
"""Texts longer than this (characters) are not memoised: they hardly repeat, and the bound keeps
a full memo under ~2 MiB (4,096 Qiscus-sized texts of 4,000 characters held 16 MiB)."""


class Result(enum.Enum):
    """What became of an update in a router (or a handler list)."""

    HANDLED = "handled"
    """A handler (or the fallback) ran: routing is over."""
    NOT_HANDLED = "not_handled"
    """Nothing matched here: the next router, then the fallback, are tried."""
    STOPPED = "stopped"
    """A middleware did not call ``call_next``: nothing else runs, not even the fallback."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one update: the handler that took it, or why none did.

    ``ignored`` is one of ``own_message``, ``unhandled_system_event``, ``duplicate``,
    ``agent_command``, ``handoff``, ``rejected_postback``, ``unhandled``, ``stopped`` (a
    middleware did not call ``call_next``) or ``closing``.
    """

    handler: str | None = None
    ignored: str | None = None
    replies: int = 0


def update_kind(message_type: str) -> str:
    """Which handler list a comment type is routed to."""
    if message_type == "button_postback_response":
        return POSTBACK
    if message_type == "system_event":
        return EVENT
    return MESSAGE


def describe(fn: Any) -> str:
    """A callable's name for messages and logs."""
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


def check_handler(fn: Any, what: str = "handler") -> None:
    """Reject at registration what would fail at the first message."""
    if not callable(fn):
        raise HandlerRegistrationError(f"{what} {fn!r} is not callable")
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else getattr(fn, "__call__", fn)  # noqa: B004
    if not inspect.iscoroutinefunction(target):
        short = getattr(fn, "__name__", "handler")
        raise HandlerRegistrationError(
            f"{what} {describe(fn)!r} must be 'async def': write "
            f"'async def {short}(ctx: Context) -> None'"
        )
    try:
        inspect.signature(fn).bind(None)
    except TypeError:
        raise HandlerRegistrationError(
            f"{what} {describe(fn)!r} must take exactly one argument, the context: "
            f"async def {getattr(fn, '__name__', 'handler')}(ctx: Context) -> None"
        ) from None


def check_middleware(fn: Any) -> None:
    """Reject a middleware that is not ``async def mw(ctx, call_next)``."""
    if not inspect.iscoroutinefunction(fn):
        raise HandlerRegistrationError(f"middleware {describe(fn)!r} must be 'async def'")
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise HandlerRegistrationError(
            f"middleware {describe(fn)!r} must take (ctx, call_next)"
        ) from None


@dataclass(slots=True, eq=False)
class Handler:
    """A registered callback and the filters that select it."""

    callback: HandlerFn
    filters: tuple[Filter, ...]
    kind: str
    router: Router
    position: int
    keys: frozenset[str] | None = None
    pure: bool = False
    debounce: float | None = None  # seconds a burst starting here is gathered (qbot.debounce)

    @property
    def name(self) -> str:
        return describe(self.callback)

    async def matches(self, ctx: Context) -> bool:
        for flt in self.filters:
            result = flt(ctx)
            # Most filters are synchronous and return a bool: skip the costlier awaitable check.
            if result.__class__ is not bool and inspect.isawaitable(result):
                result = await result
            if not result:
                return False
        return True


def _message_key(ctx: Context) -> str | None:
    return ctx.normalized_text


def _postback_key(ctx: Context) -> str | None:
    return ctx.postback.action if ctx.postback is not None else None


def _event_key(ctx: Context) -> str | None:
    return ctx.event_type


_KEY_OF: dict[str, Callable[[Context], str | None]] = {
    MESSAGE: _message_key,
    POSTBACK: _postback_key,
    EVENT: _event_key,
}


class HandlerList:
    """The handlers of one kind of update in one router, with their index and memo.

    Args:
        kind: ``message``, ``postback`` or ``event``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.handlers: list[Handler] = []
        self._key_of = _KEY_OF[kind]
        # From the key a handler requires to its positions, plus the positions of the handlers
        # without such a key (always candidates). Both stay sorted (positions only grow).
        self._by_key: dict[str, list[int]] = {}
        self._unindexed: list[int] = []
        # Which positions can match a given (type, text, action, event, intents): every impure
        # handler up to the first pure one that matched. See Filter.pure.
        self._memo: dict[tuple[Any, ...], tuple[int, ...]] = {}

    def __iter__(self) -> Iterator[Handler]:
        return iter(self.handlers)

    def __len__(self) -> int:
        return len(self.handlers)

    def register(
        self,
        callback: HandlerFn,
        filters: tuple[Filter, ...],
        router: Router,
        keys: frozenset[str] | None = None,
    ) -> Handler:
        """Append a handler (already checked) and index it."""
        handler = Handler(callback, filters, self.kind, router, len(self.handlers), keys)
        handler.pure = all(f.pure for f in filters)
        self.handlers.append(handler)
        self._memo.clear()
        if keys is None:
            self._unindexed.append(handler.position)
        else:
            for key in keys:
                self._by_key.setdefault(key, []).append(handler.position)
        return handler

    def _candidates(self, ctx: Context) -> Iterable[Handler]:
        handlers = self.handlers
        if not self._by_key:
            return handlers
        hits = self._by_key.get(self._key_of(ctx))  # type: ignore[arg-type]
        # Lazily: dispatch stops at the first match, so most candidates are never looked at.
        if not hits:
            return map(handlers.__getitem__, self._unindexed)
        return map(handlers.__getitem__, merge(hits, self._unindexed))

    async def match(self, ctx: Context) -> Handler | None:
        """The first handler (registration order) whose filters pass, or None.

        Pure handlers depend only on the memo key, so once a key has been seen only the impure
        handlers before the first pure match (and that match, to set ``ctx.match``) are tried.
        """
        handlers = self.handlers
        if not handlers:
            return None
        message = ctx.message
        postback = ctx.postback
        key = (
            message.type,
            message.text,
            postback.action if postback is not None else None,
            ctx.event_type if self.kind == EVENT else None,
            ctx.dispatcher.intents,
        )
        positions = self._memo.get(key)
        if positions is not None:
            for position in positions:
                handler = handlers[position]
                if await handler.matches(ctx):
                    return handler
            return None
        tried: list[int] = []
        for handler in self._candidates(ctx):
            tried.append(handler.position)
            if await handler.matches(ctx):
                if handler.pure:
                    self._remember(key, tried)
                # After an impure match, which pure handler would match next is unknown.
                return handler
            if handler.pure:
                tried.pop()
        self._remember(key, tried)
        return None

    def _remember(self, key: tuple[Any, ...], positions: list[int]) -> None:
        text = key[1]
        if isinstance(text, str) and len(text) > MEMO_TEXT:
            return
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()  # bounded; a cleared memo only costs the next lookups a scan
        self._memo[key] = tuple(positions)


async def run_handler(fn: HandlerFn, router: Router, ctx: Context) -> None:
    """Run one handler; if it raises, drop its state writes, log, run the ``@error`` handler.

    A storage outage (:func:`qbot.outages.storage_outage`) is raised on instead: the update is
    processed again once the storage is back.

    Its run time and failure are recorded for ``GET /metrics`` (``qbot.metrics``).
    """
    started = time.perf_counter()
    try:
        await fn(ctx)
    except Exception as exc:
        if storage_outage(exc):
            # The storage is down, the handler is not wrong: the runtime says so once
            # (qbot.outages), backs off and processes the update again; no error handler.
            ctx.rollback_state()
            raise
        metrics.handler_done(describe(fn), time.perf_counter() - started, failed=True)
        # The failed handler's state writes are dropped; the error handler starts clean.
        ctx.rollback_state()
        ctx.error = exc
        error_fn = router.error_handler_for(exc)
        log.error(
            "handler.failed",
            handler=describe(fn),
            error=f"{type(exc).__name__}: {exc}",
            error_handler=describe(error_fn) if error_fn else None,
            exc_info=exc,
        )
        if error_fn is None:
            return
        try:
            await error_fn(ctx)
        except Exception as again:
            log.error("error_handler.failed", handler=describe(error_fn), exc_info=again)
    else:
        metrics.handler_done(describe(fn), time.perf_counter() - started, failed=False)
