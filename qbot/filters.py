"""Composable filters: decide whether a handler takes an update.

The decorator keywords (``text=``, ``regex=``, ``type=``, ``action=``) build these; combine them
for anything else with ``&``, ``|`` and ``~``:

```python
from qbot import filters as F

@bot.message(F.RoomType("single") & ~F.SentBy("boss@example.com"), text="hi")
async def greet(ctx): ...

@bot.message(F.Func(lambda ctx: len(ctx.text) > 200))
async def long_story(ctx): ...
```
A filter is called with the :class:`~qbot.context.Context` and returns a bool (or an awaitable
of one, for filters that need I/O). Filters that capture something store it on the context
(``Regex`` sets ``ctx.match``).

The filter names say what they test, so that none shares a name with a message or a state
class: ``TextIs`` (not the ``Text`` message), ``StateIs`` (not ``qbot.State``), ``SentBy`` (not
``ctx.sender``, a user). The old names ``Text``, ``State`` and ``Sender`` still work for one
release, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from qbot.errors import HandlerRegistrationError
from qbot.names import Action, Steps, name_of

if TYPE_CHECKING:
    from qbot.context import Context

__all__ = [
    "All",
    "Any_",
    "Channel",
    "EventType",
    "Filter",
    "Func",
    "Intent",
    "MessageType",
    "Not",
    "OfficeHours",
    "PostbackAction",
    "Regex",
    "RoomType",
    "SentBy",
    "StateIs",
    "TextIs",
    "normalize_text",
]

FilterResult = bool | Awaitable[bool]


def normalize_text(text: str) -> str:
    """How exact-text matching compares: trimmed, inner whitespace folded, case-folded."""
    return " ".join(text.split()).casefold()


class Filter:
    """Base class: subclasses implement :meth:`__call__`.

    ``pure`` filters decide from the comment type, the text, the postback action, the event type
    and the bot's intents alone (no sender, room, state or I/O). The router memoises which of its
    pure handlers match a given message, so leave ``pure`` false in a filter of your own unless
    that holds.
    """

    pure: bool = False

    def __call__(self, ctx: Context) -> FilterResult:
        raise NotImplementedError

    def __and__(self, other: Filter) -> Filter:
        return All(self, other)

    def __or__(self, other: Filter) -> Filter:
        return Any_(self, other)

    def __invert__(self) -> Filter:
        return Not(self)


async def evaluate(flt: Filter, ctx: Context) -> bool:
    """Run one filter, awaiting it when it is asynchronous."""
    result = flt(ctx)
    if inspect.isawaitable(result):
        return bool(await result)
    return bool(result)


class All(Filter):
    """Every filter passes (short-circuits in order)."""

    def __init__(self, *filters: Filter) -> None:
        self.filters = filters
        self.pure = all(f.pure for f in filters)

    async def __call__(self, ctx: Context) -> bool:
        for flt in self.filters:
            if not await evaluate(flt, ctx):
                return False
        return True

    def __repr__(self) -> str:
        return " & ".join(map(repr, self.filters))


class Any_(Filter):
    """At least one filter passes (short-circuits in order)."""

    def __init__(self, *filters: Filter) -> None:
        self.filters = filters
        self.pure = all(f.pure for f in filters)

    async def __call__(self, ctx: Context) -> bool:
        for flt in self.filters:
            if await evaluate(flt, ctx):
                return True
        return False

    def __repr__(self) -> str:
        return "(" + " | ".join(map(repr, self.filters)) + ")"


class Not(Filter):
    """The filter fails."""

    def __init__(self, inner: Filter) -> None:
        self.inner = inner
        self.pure = inner.pure

    async def __call__(self, ctx: Context) -> bool:
        return not await evaluate(self.inner, ctx)

    def __repr__(self) -> str:
        return f"~{self.inner!r}"


class Func(Filter):
    """Any callable ``(ctx) -> bool`` or ``async (ctx) -> bool``."""

    def __init__(self, fn: Callable[[Context], FilterResult]) -> None:
        if not callable(fn):
            raise HandlerRegistrationError(f"Func filter needs a callable, got {fn!r}")
        self.fn = fn

    def __call__(self, ctx: Context) -> FilterResult:
        return self.fn(ctx)

    def __repr__(self) -> str:
        return f"Func({getattr(self.fn, '__qualname__', self.fn)!r})"


class TextIs(Filter):
    """The message text equals one of ``values`` (trimmed, case-insensitive)."""

    pure = True

    def __init__(self, values: str | Iterable[str]) -> None:
        raw = [values] if isinstance(values, str) else list(values)
        if not raw or not all(isinstance(v, str) and v.strip() for v in raw):
            raise HandlerRegistrationError(
                f"text= needs a non-empty string or list of non-empty strings, got {values!r}"
            )
        self.keys = frozenset(normalize_text(v) for v in raw)

    def __call__(self, ctx: Context) -> bool:
        return ctx.normalized_text in self.keys

    def __repr__(self) -> str:
        return f"TextIs({sorted(self.keys)!r})"


class Regex(Filter):
    """``re.search`` on the message text; the match is stored in ``ctx.match``."""

    pure = True

    def __init__(self, pattern: str | re.Pattern[str], flags: int = re.IGNORECASE) -> None:
        if isinstance(pattern, re.Pattern):
            self.pattern = pattern
        else:
            try:
                self.pattern = re.compile(pattern, flags)
            except (re.error, TypeError) as e:
                raise HandlerRegistrationError(f"regex {pattern!r} does not compile: {e}") from e

    def __call__(self, ctx: Context) -> bool:
        match = self.pattern.search(ctx.text)
        if match is None:
            return False
        ctx.match = match
        return True

    def __repr__(self) -> str:
        return f"Regex({self.pattern.pattern!r})"


class MessageType(Filter):
    """The comment type is one of ``types`` (``text``, ``file_attachment``, ``location``...)."""

    pure = True

    def __init__(self, types: str | Iterable[str]) -> None:
        self.types = frozenset([types] if isinstance(types, str) else types)
        if not self.types or not all(isinstance(t, str) and t for t in self.types):
            raise HandlerRegistrationError(f"type= needs comment type names, got {types!r}")

    def __call__(self, ctx: Context) -> bool:
        return ctx.message.type in self.types

    def __repr__(self) -> str:
        return f"MessageType({sorted(self.types)!r})"


class PostbackAction(Filter):
    """A button tap whose packed action is one of ``actions``."""

    pure = True

    def __init__(self, actions: str | Iterable[str]) -> None:
        self.given = (actions,) if isinstance(actions, str) else tuple(actions)
        self.actions = frozenset(self.given)
        if not self.actions or not all(isinstance(a, str) and a for a in self.actions):
            raise HandlerRegistrationError(f"action= needs non-empty action names, got {actions!r}")
        for action in self.actions:
            if isinstance(action, Steps):
                raise HandlerRegistrationError(
                    f"action= got the step {name_of(action)}: pass an Action (or a string)"
                )

    def __call__(self, ctx: Context) -> bool:
        return ctx.postback is not None and ctx.postback.action in self.actions

    def __repr__(self) -> str:
        return f"PostbackAction({sorted(self.actions)!r})"


class EventType(Filter):
    """A system event of one of ``names`` (``add_member``, ``left_room``, custom types...)."""

    pure = True

    def __init__(self, names: str | Iterable[str]) -> None:
        self.names = frozenset([names] if isinstance(names, str) else names)
        if not self.names or not all(isinstance(n, str) and n for n in self.names):
            raise HandlerRegistrationError(f"event needs system event type names, got {names!r}")

    def __call__(self, ctx: Context) -> bool:
        return ctx.event_type in self.names

    def __repr__(self) -> str:
        return f"EventType({sorted(self.names)!r})"


class Intent(Filter):
    """The text was classified as intent ``name`` with at least the bot's threshold."""

    pure = True

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise HandlerRegistrationError(f"intent needs a non-empty name, got {name!r}")
        self.name = name

    def __call__(self, ctx: Context) -> bool:
        match = ctx.classify()
        return match is not None and match.name == self.name

    def __repr__(self) -> str:
        return f"Intent({self.name!r})"


class RoomType(Filter):
    """The room is of one of ``types``: ``single``, ``group``, ``channel``."""

    def __init__(self, *types: str) -> None:
        self.types = frozenset(types)

    def __call__(self, ctx: Context) -> bool:
        return ctx.room.type in self.types

    def __repr__(self) -> str:
        return f"RoomType({sorted(self.types)!r})"


class SentBy(Filter):
    """The sender's email (case-insensitive) is one of ``emails``."""

    def __init__(self, *emails: str) -> None:
        self.emails = frozenset(e.casefold() for e in emails)

    def __call__(self, ctx: Context) -> bool:
        return ctx.sender.email.casefold() in self.emails

    def __repr__(self) -> str:
        return f"SentBy({sorted(self.emails)!r})"


class Channel(Filter):
    """Omnichannel: the customer wrote on one of ``sources`` (``wa``, ``line``, ``qiscus``...)."""

    def __init__(self, *sources: str) -> None:
        self.sources = frozenset(sources)

    def __call__(self, ctx: Context) -> bool:
        return ctx.channel in self.sources

    def __repr__(self) -> str:
        return f"Channel({sorted(self.sources)!r})"


class OfficeHours(Filter):
    """The bot's office hours are open now, by the bot's clock (``~OfficeHours()``: closed).

    Always passes when the bot has no office hours (``office_hours:`` in the config).
    """

    async def __call__(self, ctx: Context) -> bool:
        source = ctx.dispatcher.office_hours
        hours = None if source is None else await source.get()
        return hours is None or hours.is_open(ctx.dispatcher.clock.time())

    def __repr__(self) -> str:
        return "OfficeHours()"


class StateIs(Filter):
    """The sender's conversation is at one of ``steps`` (``ctx.state.step``).

    ``None`` matches a conversation at no step, ``"*"`` one at any step, and a step ending in
    ``*`` every step with that prefix (``"form:complaint:*"``). ``@bot.message(state=...)``
    builds this filter.
    """

    def __init__(self, *steps: str | None) -> None:
        if not steps or not all(s is None or (isinstance(s, str) and s) for s in steps):
            raise HandlerRegistrationError(
                f"state= needs step names (non-empty strings) or None, got {steps!r}"
            )
        for step in steps:
            if isinstance(step, Action):
                raise HandlerRegistrationError(
                    f"state= got the action {name_of(step)}: pass a step of a Steps class "
                    "(or a string)"
                )
        self.given = steps  # as passed: typed members kept apart even when values are equal
        self.steps = frozenset(s for s in steps if s is None or not s.endswith("*"))
        self.prefixes = tuple(s[:-1] for s in steps if s is not None and s.endswith("*"))

    def __call__(self, ctx: Context) -> bool:
        step = ctx.state.step
        if step in self.steps:
            return True
        return step is not None and step.startswith(self.prefixes)

    def __repr__(self) -> str:
        shown = sorted(self.steps, key=str) + [p + "*" for p in self.prefixes]
        return f"StateIs({', '.join(map(repr, shown))})"


def state_filter(steps: str | Iterable[str | None] | None) -> StateIs:
    """The filter of a decorator's ``state=`` argument (one step, ``None`` or several)."""
    if steps is None or isinstance(steps, str):
        return StateIs(steps)
    return StateIs(*steps)


def as_filter(value: Any) -> Filter:
    """Accept a Filter or a plain callable (wrapped in :class:`Func`)."""
    if isinstance(value, Filter):
        return value
    if callable(value):
        return Func(value)
    raise HandlerRegistrationError(f"{value!r} is not a filter (a Filter or a callable on ctx)")


# Old name: (new filter, what the old name clashed with).
_RENAMED: dict[str, tuple[type[Filter], str]] = {
    "Text": (TextIs, "the Text message"),
    "State": (StateIs, "qbot.State, the state class"),
    "Sender": (SentBy, "ctx.sender, a user"),
}


def __getattr__(name: str) -> Any:
    """The filters' old names, kept for one release: ``F.Text`` is ``F.TextIs``, and so on."""
    if name not in _RENAMED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    new, clash = _RENAMED[name]
    warnings.warn(
        f"qbot.filters.{name} is now {new.__name__} (the old name clashed with {clash}); "
        f"{name} will be removed in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return new
