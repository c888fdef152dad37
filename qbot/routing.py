"""Routers, handlers and the order in which they are tried.

For every update a router tries, in this order (documented in ``docs/routing.md``):

1. its middlewares, outermost first, each wrapping everything below;
2. its own handlers of the update's kind, in registration order (the first whose filters all pass
   wins); exact-text handlers are found through an index, so 10,000 of them cost a dict lookup;
3. its included routers, in inclusion order, each applying steps 1-3 itself;
4. at the top (the ``Bot``) only: the fallback, when nothing matched (inside the bot's own
   middlewares).

A middleware that returns without calling ``call_next`` stops the update: nothing else runs, the
fallback included (:class:`~qbot.handlers.Result` ``STOPPED``).

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
from typing import TYPE_CHECKING, Any, TypeVar, overload

from qbot.debounce import check_window
from qbot.errors import ConfigError, HandlerRegistrationError
from qbot.filters import (
    EventType,
    Filter,
    Intent,
    MessageType,
    PostbackAction,
    Regex,
    StateIs,
    TextIs,
    as_filter,
    state_filter,
)
from qbot.handlers import (
    EVENT,
    KINDS,
    MESSAGE,
    POSTBACK,
    Handler,
    HandlerFn,
    HandlerList,
    Middleware,
    Result,
    check_handler,
    check_middleware,
    describe,
    run_handler,
)
from qbot.hooks import Hook, LifecycleHook, check_hook
from qbot.names import unhandled_names
from qbot.storage.schedule import JOB_NAME

if TYPE_CHECKING:
    import re

    from qbot.context import Context
    from qbot.intents import IntentSet

__all__ = ["Handler", "Middleware", "Result", "RootRouter", "Router"]

F = TypeVar("F", bound=HandlerFn)
H = TypeVar("H", bound=Hook)

_version = [0]  # bumped by every registration and inclusion: invalidates cached handler lists
ANY_STATE: Any = object()
"""The default of ``state=``: the handler matches whatever step the conversation is at."""
StepSpec = str | Iterable[str | None] | None
TEXT_TYPES = ("text", "reply")


class Router:
    """A group of handlers; include routers in one another to organise a large bot.

    Args:
        name: shown in logs.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"router-{id(self):x}"
        self.parent: Router | None = None
        # One handler list per kind of update, each with its index and memo.
        self.handlers: dict[str, HandlerList] = {kind: HandlerList(kind) for kind in KINDS}
        self._routers: list[Router] = []
        self._middlewares: list[Middleware] = []
        self._fallback: HandlerFn | None = None
        self._errors: list[tuple[tuple[type[BaseException], ...], HandlerFn]] = []
        self._hooks: dict[str, list[LifecycleHook]] = {"startup": [], "shutdown": []}
        self._scheduled: dict[str, HandlerFn] = {}

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
        state: StepSpec = ANY_STATE,
        debounce: float | None = None,
    ) -> Callable[[F], F]: ...

    def message(
        self,
        *filters: Any,
        text: str | Iterable[str] | None = None,
        regex: str | re.Pattern[str] | None = None,
        type: str | Iterable[str] | None = None,
        state: StepSpec = ANY_STATE,
        debounce: float | None = None,
    ) -> Any:
        """Handle a message.

        Args:
            *filters: extra filters (``qbot.filters``), all of which must pass.
            text: exact text or texts; trimmed and case-insensitive.
            regex: searched in the text; the match is ``ctx.match``.
            type: comment type(s); defaults to any type for filters and to text types for
                ``text=``/``regex=``.
            state: only when the sender's conversation is at this step (``ctx.state.step``):
                a step, several, ``None`` (no step), ``"*"`` (any step) or a ``prefix*``; a
                step is a string or a :class:`~qbot.names.Steps` member (a ``Steps`` class:
                each of its steps). Left out, the handler matches at every step.
            debounce: seconds to gather a customer's burst of texts whose first message
                would come here (``qbot.debounce``); 0 answers at once; None: the bot's.
        """
        window = check_window(debounce, "debounce")
        if _is_bare(filters, text, regex, type) and state is ANY_STATE and window is None:
            return self.message()(filters[0])
        built = [as_filter(f) for f in filters]
        if state is not ANY_STATE:
            built.insert(0, state_filter(state))
        keys: frozenset[str] | None = None
        if text is not None:
            text_filter = TextIs(text)
            keys = text_filter.keys
            built.insert(0, text_filter)
        if regex is not None:
            built.append(Regex(regex))
        if type is not None:
            built.insert(0, MessageType(type))
        elif text is not None or regex is not None:
            built.insert(0, MessageType(TEXT_TYPES))
        return self._decorator(MESSAGE, built, keys, window)

    def intent(
        self,
        name: str,
        *filters: Filter | Callable[[Context], Any],
        state: StepSpec = ANY_STATE,
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
        state: StepSpec = ANY_STATE,
    ) -> Callable[[F], F]:
        """Handle a button tap whose packed action is ``action`` (whatever text the client sent).

        ``action`` is a string, an :class:`~qbot.names.Action` member, or several (an ``Action``
        class: each of its members). ``state=`` restricts it to a step, as for :meth:`message`.
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
        state: StepSpec = ANY_STATE,
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
                f"router {self.name!r} already has fallback {describe(self._fallback)!r}; "
                f"cannot add {describe(fn)!r}"
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

    def scheduled(self, name: str) -> Callable[[F], F]:
        """Run the handler when a room's job ``name`` is due (``ctx.schedule``, qbot.scheduling).

        ``ctx.scheduled`` is the job, ``ctx.data`` its data. One handler per name in a router;
        the first found (this router's, then included routers') runs, outside middlewares.
        """
        if not isinstance(name, str) or not JOB_NAME.fullmatch(name):
            raise HandlerRegistrationError(
                f"@scheduled name {name!r} must be 1 to 100 letters, digits, '_', '.' or '-'"
            )

        def register(fn: F) -> F:
            check_handler(fn, "scheduled handler")
            if name in self._scheduled:
                raise HandlerRegistrationError(
                    f"router {self.name!r} already has @scheduled({name!r}) handler "
                    f"{describe(self._scheduled[name])!r}; cannot add {describe(fn)!r}"
                )
            self._scheduled[name] = fn
            return fn

        return register

    def scheduled_handler(self, name: str) -> tuple[HandlerFn, Router] | None:
        """The ``@scheduled(name)`` handler of this router or one inside it, and its router."""
        fn = self._scheduled.get(name)
        if fn is not None:
            return fn, self
        for router in self._routers:
            found = router.scheduled_handler(name)
            if found is not None:
                return found
        return None

    def middleware(self, fn: Middleware) -> Middleware:
        """Wrap every update this router sees: ``async def mw(ctx, call_next)``.

        Call ``await call_next()`` to go on; return without calling it to stop the update here.
        """
        check_middleware(fn)
        self._middlewares.append(fn)
        return fn

    def on_startup(self, fn: H) -> H:
        """Run ``async def fn()`` (or ``fn(bot)``) when the bot starts serving (``qbot.hooks``)."""
        self._hooks["startup"].append(check_hook(fn, "startup"))
        return fn

    def on_shutdown(self, fn: H) -> H:
        """Run ``async def fn()`` (or ``fn(bot)``) when the bot stops, in reverse order."""
        self._hooks["shutdown"].append(check_hook(fn, "shutdown"))
        return fn

    def iter_hooks(self, when: str) -> Iterable[LifecycleHook]:
        """The ``startup`` or ``shutdown`` hooks of this router, then of its included routers."""
        yield from self._hooks[when]
        for router in self._routers:
            yield from router.iter_hooks(when)

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
        if isinstance(root, RootRouter):
            for handler in router.iter_handlers():
                for flt in handler.filters:
                    if isinstance(flt, Intent):
                        root.check_intent(flt.name, handler.name)
        return router

    def _decorator(
        self,
        kind: str,
        filters: list[Filter],
        keys: frozenset[str] | None = None,
        debounce: float | None = None,
    ) -> Callable[[F], F]:
        def register(fn: F) -> F:
            check_handler(fn)
            self.handlers[kind].register(fn, tuple(filters), self, keys).debounce = debounce
            _version[0] += 1
            return fn

        return register

    def _check_intent(self, name: str) -> None:
        root = self.root
        if isinstance(root, RootRouter):
            root.check_intent(name)

    # --- lookup ---------------------------------------------------------------------------------

    @property
    def root(self) -> Router:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def iter_handlers(self) -> Iterable[Handler]:
        """Every handler of this router and the routers inside it, in trial order per kind."""
        for handlers in self.handlers.values():
            yield from handlers
        for router in self._routers:
            yield from router.iter_handlers()

    def handles_event(self, event_type: str | None) -> bool:
        """Whether any router in the tree has an ``@event`` handler for ``event_type``."""
        for handler in self.handlers[EVENT]:
            for flt in handler.filters:
                if isinstance(flt, EventType) and event_type in flt.names:
                    return True
        return any(r.handles_event(event_type) for r in self._routers)

    async def propagate(self, ctx: Context, kind: str) -> Result:
        """Try this router's tree for ``ctx``, inside its middlewares; run what matches."""
        if not self._middlewares:
            return await self._dispatch(ctx, kind)
        # Stays STOPPED unless the innermost call_next is reached.
        result = [Result.STOPPED]

        async def innermost() -> None:
            result[0] = await self._dispatch(ctx, kind)

        await _wrap(self._middlewares, ctx, innermost)()
        return result[0]

    async def _dispatch(self, ctx: Context, kind: str) -> Result:
        handler = await self.handlers[kind].match(ctx)
        if handler is not None:
            ctx.handler_name = handler.name
            await run_handler(handler.callback, handler.router, ctx)
            return Result.HANDLED
        for router in self._routers:
            result = await router.propagate(ctx, kind)
            if result is not Result.NOT_HANDLED:
                return result
        return Result.NOT_HANDLED

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


class RootRouter(Router):
    """The root of a router tree (the Bot): tries step handlers first and the fallback last.

    Holds the intents ``@intent`` names are checked against (sub-routers check against it).
    """

    intents: IntentSet | None = None
    _stateful: tuple[int, dict[str, list[Handler]]] = (-1, {})
    _debounced: tuple[int, bool] = (-1, False)

    def stateful_handlers(self, kind: str, *, debounced: bool = False) -> list[Handler]:
        """Handlers of ``kind`` registered with ``state=``, anywhere in the tree, in trial order
        (``debounced``: those with their own ``debounce=`` instead)."""
        version, cached = self._stateful
        if version != _version[0]:
            cached = {MESSAGE: [], POSTBACK: [], EVENT: [], "debounced": []}
            for handler in self.iter_handlers():
                if any(isinstance(f, StateIs) for f in handler.filters):
                    cached[handler.kind].append(handler)
                if handler.debounce is not None:
                    cached["debounced"].append(handler)
            self._stateful = (_version[0], cached)
        return cached["debounced" if debounced else kind]

    def debounced_handlers(self) -> bool:
        """Whether any handler in the tree has its own ``debounce=``."""
        version, debounced = self._debounced
        if version != _version[0]:  # asked for every message: kept until a registration
            debounced = bool(self.stateful_handlers(MESSAGE, debounced=True))
            self._debounced = (_version[0], debounced)
        return debounced

    async def find_handler(self, ctx: Context, kind: str) -> Handler | None:
        """The handler ``ctx`` would go to (step handlers first), without running it or any
        middleware; None for the fallback or nothing."""
        stateful = self.stateful_handlers(kind)
        if stateful and ctx.state.step is not None:
            for handler in stateful:
                if await handler.matches(ctx):
                    return handler
        return await _find(self, ctx, kind)

    async def _dispatch(self, ctx: Context, kind: str) -> Result:
        stateful = self.stateful_handlers(kind)
        if stateful and ctx.state.step is not None:
            for handler in stateful:
                if await handler.matches(ctx):
                    ctx.handler_name = handler.name
                    return await self._run_in_tree(handler, ctx)
        result = await super()._dispatch(ctx, kind)
        if result is not Result.NOT_HANDLED:
            return result
        found = self.find_fallback()
        if found is None:
            return Result.NOT_HANDLED
        fn, router = found
        ctx.handler_name = "fallback"
        await run_handler(fn, router, ctx)
        return Result.HANDLED

    async def _run_in_tree(self, handler: Handler, ctx: Context) -> Result:
        """Run a handler wrapped in the middlewares of the routers between it and the root."""
        ran = [False]

        async def call_handler() -> None:
            ran[0] = True
            await run_handler(handler.callback, handler.router, ctx)

        call: Callable[[], Awaitable[None]] = call_handler
        node: Router | None = handler.router
        while node is not None and node is not self:
            call = _wrap(node._middlewares, ctx, call)
            node = node.parent
        await call()
        return Result.HANDLED if ran[0] else Result.STOPPED

    def check_intent(self, name: str, handler: str | None = None) -> None:
        """Raise ConfigError when the intents are loaded and do not define ``name``."""
        if self.intents is not None and name not in self.intents:
            who = f"handler {handler!r}" if handler else "@intent"
            raise ConfigError(
                f"{who} waits for intent {name!r}, which the intents file does not define "
                f"(known: {', '.join(self.intents.names)})"
            )

    def check_names(self) -> None:
        """Every typed action and step the handlers name can be handled (see ``qbot.names``).

        Raises:
            ConfigError: an ``Action`` member has no ``@postback`` handler, a step of a
                ``Steps`` group no handler, or two classes share a value; all are listed.
        """
        actions: list[str | None] = []
        steps: list[str | None] = []
        catch_all = False
        for handler in self.iter_handlers():
            for flt in handler.filters:
                if isinstance(flt, PostbackAction | StateIs):
                    (actions if isinstance(flt, PostbackAction) else steps).extend(flt.given)
            if handler.kind == POSTBACK and handler.keys is None:
                catch_all = True
        problems = unhandled_names(actions, steps, catch_all)
        if problems:
            raise ConfigError(f"bot {self.name!r}: " + "; ".join(problems))

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
                    self.check_intent(flt.name, handler.name)


async def _find(router: Router, ctx: Context, kind: str) -> Handler | None:
    handler = await router.handlers[kind].match(ctx)
    if handler is not None:
        return handler
    for inner in router._routers:
        found = await _find(inner, ctx, kind)
        if found is not None:
            return found
    return None


def _wrap(
    middlewares: list[Middleware], ctx: Context, call: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """``call`` inside ``middlewares``, the first registered outermost."""
    for mw in reversed(middlewares):
        call = _bind(mw, ctx, call)
    return call


def _bind(
    mw: Middleware, ctx: Context, call_next: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
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
