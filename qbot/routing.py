"""Routers, handlers and the order in which they are tried.

For every update a router tries, in this order (documented in ``docs/routing.md``):

1. its middlewares, outermost first, each wrapping everything below;
2. its own handlers of the update's kind, in registration order (the first whose filters all pass
   wins); exact-text handlers are found through an index, so 10,000 of them cost a dict lookup;
3. its included routers, in inclusion order, each applying steps 1-3 itself;
4. at the top (the ``Bot``) only: the fallback, when nothing matched.

One exception comes first: when the sender's conversation is at a step (``ctx.state.step``), the
handlers registered with a ``state=`` that matches it are tried before everything else, anywhere
in the tree (in the order above, wrapped in their routers' middlewares). So a form or a question
waiting for an answer gets it even if an earlier handler would have matched the text.

The kind of an update decides which handlers are candidates: a ``button_postback_response`` goes to
``@postback`` handlers, a ``system_event`` to ``@event`` handlers, everything else to ``@message``
and ``@intent`` handlers (which share one registration order).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from heapq import merge
from typing import TYPE_CHECKING, Any, TypeVar, overload

import structlog

from qbot.errors import ConfigError, HandlerRegistrationError
from qbot.filters import (
    EventType,
    Filter,
    Intent,
    MessageType,
    PostbackAction,
    Regex,
    State,
    Text,
    as_filter,
    state_filter,
)

if TYPE_CHECKING:
    import re

    from qbot.context import Context
    from qbot.intents import IntentSet

__all__ = ["Handler", "Middleware", "Router"]

log = structlog.get_logger("qbot.routing")

HandlerFn = Callable[["Context"], Awaitable[Any]]
Middleware = Callable[["Context", Callable[[], Awaitable[None]]], Awaitable[Any]]
F = TypeVar("F", bound=HandlerFn)

MESSAGE, POSTBACK, EVENT = "message", "postback", "event"
_version = [0]  # bumped by every registration and inclusion: invalidates cached handler lists
ANY_STATE: Any = object()
"""The default of ``state=``: the handler matches whatever step the conversation is at."""
Steps = str | Iterable[str | None] | None
TEXT_TYPES = ("text", "reply")
MEMO_SIZE = 4096


def _index_key(kind: str, ctx: Context) -> str | None:
    """The value a handler's index key must equal for it to be a candidate."""
    if kind == MESSAGE:
        return ctx.normalized_text
    if kind == POSTBACK:
        return ctx.postback.action if ctx.postback is not None else None
    return ctx.event_type


def update_kind(message_type: str) -> str:
    """Which handler list a comment type is routed to."""
    if message_type == "button_postback_response":
        return POSTBACK
    if message_type == "system_event":
        return EVENT
    return MESSAGE


def _name(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


def check_handler(fn: Any, what: str = "handler") -> None:
    """Reject at registration what would fail at the first message."""
    if not callable(fn):
        raise HandlerRegistrationError(f"{what} {fn!r} is not callable")
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else getattr(fn, "__call__", fn)  # noqa: B004
    if not inspect.iscoroutinefunction(target):
        short = getattr(fn, "__name__", "handler")
        raise HandlerRegistrationError(
            f"{what} {_name(fn)!r} must be 'async def': write "
            f"'async def {short}(ctx: Context) -> None'"
        )
    try:
        inspect.signature(fn).bind(None)
    except TypeError:
        raise HandlerRegistrationError(
            f"{what} {_name(fn)!r} must take exactly one argument, the context: "
            f"async def {getattr(fn, '__name__', 'handler')}(ctx: Context) -> None"
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

    @property
    def name(self) -> str:
        return _name(self.callback)

    async def matches(self, ctx: Context) -> bool:
        for flt in self.filters:
            result = flt(ctx)
            # Most filters are synchronous and return a bool: skip the costlier awaitable check.
            if result.__class__ is not bool and inspect.isawaitable(result):
                result = await result
            if not result:
                return False
        return True


class Router:
    """A group of handlers; include routers in one another to organise a large bot.

    Args:
        name: shown in logs.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"router-{id(self):x}"
        self.parent: Router | None = None
        self._handlers: dict[str, list[Handler]] = {MESSAGE: [], POSTBACK: [], EVENT: []}
        # Per kind, an index from the key a handler requires (the normalised exact text of a
        # message, the action of a postback, the subtype of an event) to its positions, plus the
        # positions of the handlers without such a key (always candidates). Lists stay sorted.
        self._by_key: dict[str, dict[str, list[int]]] = {MESSAGE: {}, POSTBACK: {}, EVENT: {}}
        self._unindexed: dict[str, list[int]] = {MESSAGE: [], POSTBACK: [], EVENT: []}
        # Which positions can match a given (kind, type, text, action, event, intents): every
        # impure handler up to the first pure one that matched. See Filter.pure.
        self._memo: dict[tuple[Any, ...], tuple[int, ...]] = {}
        self._routers: list[Router] = []
        self._middlewares: list[Middleware] = []
        self._fallback: HandlerFn | None = None
        self._errors: list[tuple[tuple[type[BaseException], ...], HandlerFn]] = []

    # --- registration ---------------------------------------------------------------------------

    @overload
    def message(self, fn: F, /) -> F: ...

    @overload
    def message(
        self,
        *filters: Filter | Callable[[Context], Any],
        text: str | Iterable[str] | None = None,
        regex: str | re.Pattern[str] | None = None,
        type: str | Iterable[str] | None = None,
        state: Steps = ANY_STATE,
    ) -> Callable[[F], F]: ...

    def message(
        self,
        *filters: Any,
        text: str | Iterable[str] | None = None,
        regex: str | re.Pattern[str] | None = None,
        type: str | Iterable[str] | None = None,
        state: Steps = ANY_STATE,
    ) -> Any:
        """Handle a message.

        Args:
            *filters: extra filters (``qbot.filters``), all of which must pass.
            text: exact text or texts; trimmed and case-insensitive.
            regex: searched in the text; the match is ``ctx.match``.
            type: comment type(s); defaults to any type for filters and to text types for
                ``text=``/``regex=``.
            state: only when the sender's conversation is at this step (``ctx.state.step``):
                a step, several, ``None`` (no step), ``"*"`` (any step) or a ``prefix*``.
                Left out, the handler matches at every step.
        """
        if _is_bare(filters, text, regex, type) and state is ANY_STATE:
            return self.message()(filters[0])
        built = [as_filter(f) for f in filters]
        if state is not ANY_STATE:
            built.insert(0, state_filter(state))
        keys: frozenset[str] | None = None
        if text is not None:
            text_filter = Text(text)
            keys = text_filter.keys
            built.insert(0, text_filter)
        if regex is not None:
            built.append(Regex(regex))
        if type is not None:
            built.insert(0, MessageType(type))
        elif text is not None or regex is not None:
            built.insert(0, MessageType(TEXT_TYPES))
        return self._decorator(MESSAGE, built, keys)

    def intent(
        self,
        name: str,
        *filters: Filter | Callable[[Context], Any],
        state: Steps = ANY_STATE,
    ) -> Callable[[F], F]:
        """Handle a text classified as intent ``name`` (see ``qbot.intents``).

        ``state=`` restricts it to a step, as for :meth:`message`.
        """
        flt = Intent(name)
        self._check_intent(flt.name)
        built: list[Filter] = [MessageType(TEXT_TYPES)]
        if state is not ANY_STATE:
            built.append(state_filter(state))
        return self._decorator(MESSAGE, [*built, flt, *map(as_filter, filters)])

    def postback(
        self,
        *filters: Filter | Callable[[Context], Any],
        action: str | Iterable[str] | None = None,
        state: Steps = ANY_STATE,
    ) -> Callable[[F], F]:
        """Handle a button tap whose packed action is ``action`` (whatever text the client sent).

        ``state=`` restricts it to a step, as for :meth:`message`.
        """
        built = [as_filter(f) for f in filters]
        if state is not ANY_STATE:
            built.insert(0, state_filter(state))
        keys = None
        if action is not None:
            action_filter = PostbackAction(action)
            keys = action_filter.actions
            built.insert(0, action_filter)
        return self._decorator(POSTBACK, built, keys)

    def event(
        self,
        system_event_type: str | Iterable[str],
        *filters: Filter | Callable[[Context], Any],
        state: Steps = ANY_STATE,
    ) -> Callable[[F], F]:
        """Handle a system event (``add_member``, ``join_room``, ... or a custom type).

        ``state=`` restricts it to a step of the sender's conversation, as for :meth:`message`.
        """
        event_filter = EventType(system_event_type)
        built: list[Filter] = [event_filter]
        if state is not ANY_STATE:
            built.append(state_filter(state))
        return self._decorator(EVENT, [*built, *map(as_filter, filters)], event_filter.names)

    def fallback(self, fn: F) -> F:
        """Handle what no handler took. Only the top-most fallback found runs."""
        check_handler(fn, "fallback")
        if self._fallback is not None:
            raise HandlerRegistrationError(
                f"router {self.name!r} already has fallback {_name(self._fallback)!r}; "
                f"cannot add {_name(fn)!r}"
            )
        self._fallback = fn
        return fn

    @overload
    def error(self, fn: F, /) -> F: ...

    @overload
    def error(self, *exceptions: type[BaseException]) -> Callable[[F], F]: ...

    def error(self, *args: Any) -> Any:
        """Handle an exception raised by a handler of this router (or a router inside it).

        Bare (``@bot.error``) it takes every ``Exception``; ``@bot.error(KeyError, ValueError)``
        takes those. ``ctx.error`` holds the exception.
        """
        if len(args) == 1 and not isinstance(args[0], type):
            return self.error(Exception)(args[0])
        if not args or not all(isinstance(a, type) and issubclass(a, BaseException) for a in args):
            raise HandlerRegistrationError(f"@error takes exception classes, got {args!r}")

        def register(fn: F) -> F:
            check_handler(fn, "error handler")
            self._errors.append((tuple(args), fn))
            return fn

        return register

    def middleware(self, fn: Middleware) -> Middleware:
        """Wrap every update this router sees: ``async def mw(ctx, call_next)``.

        Call ``await call_next()`` to go on; return without calling it to stop the update here.
        """
        check_middleware(fn)
        self._middlewares.append(fn)
        return fn

    def include_router(self, router: Router) -> Router:
        """Try ``router``'s handlers after this router's own."""
        if router is self or router.parent is not None:
            raise HandlerRegistrationError(
                f"router {router.name!r} is already included "
                f"{'in ' + repr(router.parent.name) if router.parent else 'in itself'}"
            )
        ancestor: Router | None = self
        while ancestor is not None:
            if ancestor is router:
                raise HandlerRegistrationError(f"including {router.name!r} would make a cycle")
            ancestor = ancestor.parent
        router.parent = self
        self._routers.append(router)
        _version[0] += 1
        root = self.root
        if isinstance(root, _IntentHolder):
            for handler in router.iter_handlers():
                for flt in handler.filters:
                    if isinstance(flt, Intent):
                        root._check_intent(flt.name, handler.name)
        return router

    def _decorator(
        self, kind: str, filters: list[Filter], keys: frozenset[str] | None = None
    ) -> Callable[[F], F]:
        def register(fn: F) -> F:
            check_handler(fn)
            handlers = self._handlers[kind]
            handler = Handler(fn, tuple(filters), kind, self, len(handlers), keys)
            handler.pure = all(f.pure for f in handler.filters)
            handlers.append(handler)
            _version[0] += 1
            self._memo.clear()
            if keys is None:
                self._unindexed[kind].append(handler.position)
            else:
                for key in keys:
                    self._by_key[kind].setdefault(key, []).append(handler.position)
            return fn

        return register

    def _check_intent(self, name: str, handler: str | None = None) -> None:
        root = self.root
        if isinstance(root, _IntentHolder):
            root._check_intent(name, handler)

    # --- lookup ---------------------------------------------------------------------------------

    @property
    def root(self) -> Router:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def iter_handlers(self) -> Iterable[Handler]:
        """Every handler of this router and the routers inside it, in trial order per kind."""
        for handlers in self._handlers.values():
            yield from handlers
        for router in self._routers:
            yield from router.iter_handlers()

    def handles_event(self, event_type: str | None) -> bool:
        """Whether any router in the tree has an ``@event`` handler for ``event_type``."""
        for handler in self._handlers[EVENT]:
            for flt in handler.filters:
                if isinstance(flt, EventType) and event_type in flt.names:
                    return True
        return any(r.handles_event(event_type) for r in self._routers)

    def _candidates(self, kind: str, ctx: Context) -> Iterable[Handler]:
        handlers = self._handlers[kind]
        index = self._by_key[kind]
        if not index:
            return handlers
        hits = index.get(_index_key(kind, ctx))  # type: ignore[arg-type]
        # Lazily: dispatch stops at the first match, so most candidates are never looked at.
        if not hits:
            return map(handlers.__getitem__, self._unindexed[kind])
        return map(handlers.__getitem__, merge(hits, self._unindexed[kind]))

    async def _propagate(self, ctx: Context, kind: str) -> Handler | None:
        """Find and run the handler for ``ctx`` in this router's tree; return it."""
        if not self._middlewares:
            return await self._dispatch(ctx, kind)
        chosen: list[Handler | None] = [None]

        async def innermost() -> None:
            chosen[0] = await self._dispatch(ctx, kind)

        call = innermost
        for mw in reversed(self._middlewares):
            call = _bind(mw, ctx, call)
        await call()
        return chosen[0]

    async def _dispatch(self, ctx: Context, kind: str) -> Handler | None:
        handler = await self._match(ctx, kind)
        if handler is not None:
            ctx.handler_name = handler.name
            await run_handler(handler.callback, handler.router, ctx)
            return handler
        for router in self._routers:
            found = await router._propagate(ctx, kind)
            if found is not None:
                return found
        return None

    async def _match(self, ctx: Context, kind: str) -> Handler | None:
        """This router's first handler (registration order) whose filters pass, or None.

        Pure handlers depend only on the memo key, so once a key has been seen only the impure
        handlers before the first pure match (and that match, to set ``ctx.match``) are tried.
        """
        handlers = self._handlers[kind]
        if not handlers:
            return None
        message = ctx.message
        postback = ctx.postback
        key = (
            kind,
            message.type,
            message.text,
            postback.action if postback is not None else None,
            ctx.event_type if kind == EVENT else None,
            ctx.bot.intents,
        )
        positions = self._memo.get(key)
        if positions is not None:
            for position in positions:
                handler = handlers[position]
                if await handler.matches(ctx):
                    return handler
            return None
        tried: list[int] = []
        for handler in self._candidates(kind, ctx):
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
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()  # bounded; a cleared memo only costs the next lookups a scan
        self._memo[key] = tuple(positions)

    def find_fallback(self) -> tuple[HandlerFn, Router] | None:
        """This router's fallback, else the first one in included routers (depth first)."""
        if self._fallback is not None:
            return self._fallback, self
        for router in self._routers:
            found = router.find_fallback()
            if found is not None:
                return found
        return None

    def error_handler_for(self, exc: BaseException) -> HandlerFn | None:
        """The nearest ``@error`` handler for ``exc``, from this router up to the root."""
        node: Router | None = self
        while node is not None:
            for types, fn in node._errors:
                if isinstance(exc, types):
                    return fn
            node = node.parent
        return None


class _IntentHolder(Router):
    """The root router (the Bot): owns intents, and tries step handlers first.

    Sub-routers check intent names against it.
    """

    intents: IntentSet | None = None
    _stateful: tuple[int, dict[str, list[Handler]]] = (-1, {})

    def stateful_handlers(self, kind: str) -> list[Handler]:
        """Handlers of ``kind`` registered with ``state=``, anywhere in the tree, in trial order."""
        version, cached = self._stateful
        if version != _version[0]:
            cached = {MESSAGE: [], POSTBACK: [], EVENT: []}
            for handler in self.iter_handlers():
                if any(isinstance(f, State) for f in handler.filters):
                    cached[handler.kind].append(handler)
            self._stateful = (_version[0], cached)
        return cached[kind]

    async def _dispatch(self, ctx: Context, kind: str) -> Handler | None:
        stateful = self.stateful_handlers(kind)
        if stateful and ctx.state.step is not None:
            for handler in stateful:
                if await handler.matches(ctx):
                    ctx.handler_name = handler.name
                    await self._run_in_tree(handler, ctx)
                    return handler
        return await super()._dispatch(ctx, kind)

    async def _run_in_tree(self, handler: Handler, ctx: Context) -> None:
        """Run a handler wrapped in the middlewares of the routers between it and the root."""

        async def call_handler() -> None:
            await run_handler(handler.callback, handler.router, ctx)

        call: Callable[[], Awaitable[None]] = call_handler
        node: Router | None = handler.router
        while node is not None and node is not self:
            for mw in reversed(node._middlewares):
                call = _bind(mw, ctx, call)
            node = node.parent
        await call()

    def _check_intent(self, name: str, handler: str | None = None) -> None:
        if self.intents is not None and name not in self.intents:
            who = f"handler {handler!r}" if handler else "@intent"
            raise ConfigError(
                f"{who} waits for intent {name!r}, which the intents file does not define "
                f"(known: {', '.join(self.intents.names)})"
            )

    def check_intents(self) -> None:
        """Every ``@intent`` handler names a defined intent (run when intents are loaded)."""
        for handler in self.iter_handlers():
            for flt in handler.filters:
                if isinstance(flt, Intent):
                    if self.intents is None:
                        raise ConfigError(
                            f"handler {handler.name!r} waits for intent {flt.name!r} but the bot "
                            "has no intents: pass Bot(intents='intents.yaml') or set intents.file"
                        )
                    self._check_intent(flt.name, handler.name)


async def run_handler(fn: HandlerFn, router: Router, ctx: Context) -> None:
    """Run one handler; if it raises, drop its state writes, log, run the ``@error`` handler."""
    try:
        await fn(ctx)
    except Exception as exc:
        # The failed handler's state writes are dropped; the error handler starts clean.
        ctx.rollback_state()
        ctx.error = exc
        error_fn = router.error_handler_for(exc)
        log.error(
            "handler.failed",
            handler=_name(fn),
            error=f"{type(exc).__name__}: {exc}",
            error_handler=_name(error_fn) if error_fn else None,
            exc_info=exc,
        )
        if error_fn is None:
            return
        try:
            await error_fn(ctx)
        except Exception as again:
            log.error("error_handler.failed", handler=_name(error_fn), exc_info=again)


def check_middleware(fn: Any) -> None:
    if not inspect.iscoroutinefunction(fn):
        raise HandlerRegistrationError(f"middleware {_name(fn)!r} must be 'async def'")
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise HandlerRegistrationError(
            f"middleware {_name(fn)!r} must take (ctx, call_next)"
        ) from None


def _bind(mw: Middleware, ctx: Context, call_next: Callable[[], Awaitable[None]]) -> Any:
    async def call() -> None:
        await mw(ctx, call_next)

    return call


def _is_bare(filters: tuple[Any, ...], *keywords: Any) -> bool:
    """``@router.message`` used without parentheses."""
    return (
        len(filters) == 1
        and all(k is None for k in keywords)
        and inspect.iscoroutinefunction(filters[0])
    )
