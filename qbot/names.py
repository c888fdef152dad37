"""Typed names for postback actions and conversation steps, so a typo fails before any chat.

```python
from enum import auto
from qbot import Action, Steps

class Act(Action):
    CONFIRM = auto()            # "confirm"
    CANCEL = "cancel"

class Checkout(Steps):
    ADDRESS = "checkout:address"
    PAYMENT = "checkout:payment"

Buttons("Sure?").postback("Yes", action=Act.CONFIRM)

@bot.postback(action=Act.CONFIRM)
async def confirm(ctx: Context) -> None:
    await ctx.state.goto(Checkout.ADDRESS)

@bot.message(state=Checkout.ADDRESS)
async def address(ctx: Context) -> None: ...
```

Both are :class:`enum.StrEnum` bases: a member *is* its string (``Act.CONFIRM == "confirm"``),
so it goes wherever a plain string went, and plain strings keep working. ``Act.CONFRIM`` is an
``AttributeError`` when the module is imported (and a ``mypy`` error before that).

What a bot's handlers can tell is checked when it starts (:func:`unhandled_names`, run by
``bot.configure`` and ``bot.start``): every member of an ``Action`` class that a handler names
needs a ``@postback`` handler (a tap on it would otherwise reach nobody), every member of a
``Steps`` class that a handler names needs a handler with a matching ``state=``, and two action
classes (or two step groups) must not share a value. ``action=Act`` (the class) takes every
member, ``state=Checkout`` every step of the group.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

__all__ = ["Action", "Steps", "name_of", "plain", "unhandled_names"]


class Action(enum.StrEnum):
    """Base class of a bot's postback actions: ``class Act(Action): CONFIRM = "confirm"``.

    ``auto()`` gives the member's name in lower case.
    """


class Steps(enum.StrEnum):
    """Base class of a group of conversation steps: ``class Checkout(Steps): ADDRESS = ...``.

    ``auto()`` gives the member's name in lower case; give explicit values
    (``"checkout:address"``) to keep two groups' steps apart and to match the group with a
    prefix (``state="checkout:*"``).
    """


def plain(value: str) -> str:
    """``value`` as a plain ``str`` (a member's value; a plain string as it is)."""
    return str.__str__(value)


def name_of(value: Any) -> str:
    """How a value shows in messages: ``Act.CONFIRM ('confirm')``, or ``'confirm'``."""
    if isinstance(value, Action | Steps):
        return f"{type(value).__name__}.{value.name} ({plain(value)!r})"
    return repr(value)


def unhandled_names(
    actions: Iterable[str | None], steps: Iterable[str | None], catch_all_postback: bool
) -> list[str]:
    """What is wrong with the typed names a bot's handlers use, one sentence each.

    Args:
        actions: every ``action=`` of the bot's ``@postback`` handlers (members or strings).
        steps: every ``state=`` step of its handlers, prefixes ending in ``*``.
        catch_all_postback: a ``@postback`` handler without ``action=`` exists (it may take any
            tap, so no action is reported unhandled).
    """
    actions, steps = list(actions), list(steps)
    problems = []
    known_actions = {plain(a) for a in actions if a is not None}
    for cls in _classes(actions, Action):
        if catch_all_postback:
            break
        for member in cls:
            if plain(member) not in known_actions:
                problems.append(
                    f"action {name_of(member)} has no @postback handler: a tap on its button "
                    f"would reach none; add @bot.postback(action={cls.__name__}.{member.name})"
                )
    exact = {plain(s) for s in steps if s is not None and not s.endswith("*")}
    prefixes = tuple(plain(s)[:-1] for s in steps if s is not None and s.endswith("*"))
    for cls in _classes(steps, Steps):
        for member in cls:
            if plain(member) not in exact and not plain(member).startswith(prefixes):
                problems.append(
                    f"step {name_of(member)} has no handler: a conversation moved there would "
                    f"wait for nothing; add @bot.message(state={cls.__name__}.{member.name})"
                )
    problems.extend(_shared_values(_classes(actions, Action)))
    problems.extend(_shared_values(_classes(steps, Steps)))
    return problems


def _classes(values: list[str | None], base: type[enum.StrEnum]) -> list[type[enum.StrEnum]]:
    found: dict[type[enum.StrEnum], None] = {}
    for value in values:
        if isinstance(value, base):
            found[type(value)] = None
    return list(found)


def _shared_values(classes: list[type[enum.StrEnum]]) -> list[str]:
    owner: dict[str, type[enum.StrEnum]] = {}
    problems = []
    for cls in classes:
        for member in cls:
            first = owner.setdefault(plain(member), cls)
            if first is not cls:
                problems.append(
                    f"{plain(member)!r} is both {first.__name__}.{first(plain(member)).name} and "
                    f"{cls.__name__}.{member.name}: give one of them another value"
                )
    return problems
