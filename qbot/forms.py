"""Forms: ask a user for several answers in turn (slot filling), then act on them.

```python
from qbot.forms import Field, Form, length, regex

complaint = Form(
    "complaint",
    [
        Field("order", "Your order number?", validate=regex(r"^\\d{3,10}$", "Use 3 to 10 digits.")),
        Field("issue", "What went wrong?", choices={"late": "Late", "damaged": "Damaged"}),
        Field("details", "Tell me more.", validate=length(min=10)),
    ],
)

@complaint.on_complete
async def filed(ctx: Context, data: dict[str, Any]) -> None:
    await ctx.reply(f"Complaint about order {data['order']} filed.")

bot.include_router(complaint)          # a Form is a Router

@bot.message(text="complain")
async def start(ctx: Context) -> None:
    await complaint.start(ctx)
```

While a form runs, the user's conversation is at step ``form:<name>:<field>`` (then
``form:<name>:confirm``) and the answers so far are kept in ``ctx.state`` under
``form:<name>``, so a form survives restarts and works across replicas. Because handlers waiting
for the current step are tried first, the form gets the answers even when other handlers would
match the text. The user can type ``cancel`` or ``back`` at any question; a refused answer gets
the validator's reason and the question again; the summary asks to confirm before the
completion handler runs.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from qbot.errors import HandlerRegistrationError, InvalidInput
from qbot.filters import normalize_text
from qbot.messages import Buttons, Message
from qbot.nlu.entities import Money
from qbot.routing import Router

if TYPE_CHECKING:
    from qbot.context import Context

__all__ = [
    "Field",
    "Form",
    "InvalidInput",
    "email",
    "length",
    "number",
    "phone",
    "regex",
]

Validator = Callable[..., Any]
"""``(text)`` or ``(text, ctx)``, sync or async: the cleaned value, or raise InvalidInput."""
Prompt = str | Message | Callable[["Context"], Awaitable[str | Message]]
CompleteFn = Callable[["Context", dict[str, Any]], Awaitable[Any]]
CancelFn = Callable[["Context"], Awaitable[Any]]

_TEXT_TYPES = ("text", "reply")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


# --- validators ---------------------------------------------------------------------------------


def email(
    message: str = "That doesn't look like an email address, e.g. name@example.com.",
) -> Validator:
    """An email address; the value is trimmed and lower-cased."""

    def check(text: str) -> str:
        value = text.strip()
        if not _EMAIL.match(value):
            raise InvalidInput(message)
        return value.lower()

    return check


def phone(
    message: str = "That doesn't look like a phone number: use digits, e.g. +62 812 3456 7890.",
) -> Validator:
    """A phone number of 7 to 15 digits, optionally ``+``; spaces, dots, dashes, ``()`` dropped."""

    def check(text: str) -> str:
        value = re.sub(r"[\s.\-()]", "", text.strip())
        if not re.fullmatch(r"\+?\d{7,15}", value):
            raise InvalidInput(message)
        return value

    return check


def number(
    *, min: float | None = None, max: float | None = None, integer: bool = True
) -> Validator:
    """A number (an ``int`` unless ``integer=False``), optionally within ``[min, max]``."""
    what = "a whole number" if integer else "a number"

    def check(text: str) -> int | float:
        raw = text.strip().replace(",", "" if integer else ".")
        try:
            value: int | float = int(raw) if integer else float(raw)
        except ValueError:
            raise InvalidInput(f"Please send {what}.") from None
        if min is not None and value < min:
            raise InvalidInput(f"Please send {what} of at least {min}.")
        if max is not None and value > max:
            raise InvalidInput(f"Please send {what} of at most {max}.")
        return value

    return check


def length(*, min: int = 1, max: int | None = None) -> Validator:
    """A text of ``min`` to ``max`` characters (trimmed)."""

    def check(text: str) -> str:
        value = text.strip()
        if len(value) < min:
            raise InvalidInput(f"Please write at least {min} characters.")
        if max is not None and len(value) > max:
            raise InvalidInput(f"Please keep it under {max + 1} characters.")
        return value

    return check


def regex(pattern: str | re.Pattern[str], message: str) -> Validator:
    """A text ``pattern`` matches entirely (trimmed); ``message`` says what is expected."""
    try:
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
    except re.error as e:
        raise HandlerRegistrationError(f"form regex {pattern!r} does not compile: {e}") from e

    def check(text: str) -> str:
        value = text.strip()
        if not compiled.fullmatch(value):
            raise InvalidInput(message)
        return value

    return check


def _takes_ctx(fn: Validator) -> bool:
    try:
        inspect.signature(fn).bind("text", None)
    except TypeError:
        try:
            inspect.signature(fn).bind("text")
        except TypeError:
            raise HandlerRegistrationError(
                f"validator {getattr(fn, '__qualname__', fn)!r} must take (text) or (text, ctx)"
            ) from None
        return False
    return True


# --- fields and forms ---------------------------------------------------------------------------


@dataclass
class Field:
    """One question of a form.

    Args:
        name: the key of the answer in the completed data.
        prompt: the question: a text, a message builder, or ``async (ctx) -> str | Message``.
        template: ask with ``ctx.reply_template(template, form=answers_so_far)`` instead.
        validate: a validator or several, applied in order (see :func:`email`, :func:`phone`,
            :func:`number`, :func:`length`, :func:`regex`, or your own, sync or async).
        choices: answers offered as buttons, ``{value: label}`` or a list of labels; a tap or
            a typed label (case-insensitive) selects the value.
        label: the name shown in the summary (default: ``name`` capitalised).
        entity: an entity type (``number``, ``money``, ``email``, ``phone``, ``date``,
            ``time``, ``datetime`` or a list from the intents file): when a message holds one,
            it answers this field, whichever question is being asked, and the question is
            skipped ("refund order 123, Rp 50rb" fills ``order`` and ``amount`` at once). The
            answer goes through ``validate`` like a typed one; a refused one is asked for.
    """

    name: str
    prompt: Prompt | None = None
    template: str | None = None
    validate: Validator | Sequence[Validator] | None = None
    choices: Mapping[str, str] | Sequence[str] | None = None
    label: str | None = None
    entity: str | None = None
    _validators: list[tuple[Validator, bool]] = field(default_factory=list, init=False, repr=False)
    _choices: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z_][\w-]*", self.name):
            raise HandlerRegistrationError(
                f"form field name must be an identifier-like string, got {self.name!r}"
            )
        if self.prompt is None and self.template is None:
            raise HandlerRegistrationError(f"form field {self.name!r} needs a prompt or a template")
        if self.validate is not None:
            many = self.validate if isinstance(self.validate, Sequence) else [self.validate]
            for fn in many:
                if not callable(fn):
                    raise HandlerRegistrationError(
                        f"validator of field {self.name!r} is not callable: {fn!r}"
                    )
                self._validators.append((fn, _takes_ctx(fn)))
        if self.choices is not None:
            pairs = (
                self.choices.items()
                if isinstance(self.choices, Mapping)
                else ((c, c) for c in self.choices)
            )
            self._choices = {str(v): str(label) for v, label in pairs}
            if not self._choices:
                raise HandlerRegistrationError(f"field {self.name!r} has empty choices")
        self.label = self.label or self.name.replace("_", " ").capitalize()

    def display(self, value: Any) -> str:
        """How an answer reads in the summary (a choice's label)."""
        return self._choices.get(str(value), str(value))

    async def clean(self, text: str, ctx: Context) -> Any:
        """The answer ``text`` stands for.

        Raises:
            InvalidInput: a validator refused it, or it is none of the choices.
        """
        value: Any = text.strip()
        if self._choices:
            wanted = normalize_text(value)
            found = [v for v, label in self._choices.items() if normalize_text(label) == wanted]
            found = found or [v for v in self._choices if normalize_text(v) == wanted]
            if not found:
                raise InvalidInput(f"Please pick one of: {', '.join(self._choices.values())}.")
            value = found[0]
        for fn, takes_ctx in self._validators:
            result = fn(value, ctx) if takes_ctx else fn(value)
            value = await result if inspect.isawaitable(result) else result
        return value


class Form(Router):
    """A sequence of questions, a summary to confirm, and a completion handler.

    A Form is a :class:`~qbot.routing.Router`: include it in the bot, then ``await
    form.start(ctx)`` from any handler.

    Args:
        name: names the form's steps (``form:<name>:<field>``) and state key.
        fields: the questions, asked in order.
        confirm: show a summary and ask to confirm before completing.
        summary: ``async (ctx, data) -> str`` writing the summary text (default: one line per
            field with its label and answer).
        cancel_words: typed at any question, they cancel the form.
        back_words: typed at any question, they go back to the previous one.
        confirm_words: typed at the summary, they confirm.
        cancelled_text: the reply when the form is cancelled.
    """

    def __init__(
        self,
        name: str,
        fields: Sequence[Field],
        *,
        confirm: bool = True,
        summary: Callable[[Context, dict[str, Any]], Awaitable[str]] | None = None,
        cancel_words: Iterable[str] = ("cancel", "stop"),
        back_words: Iterable[str] = ("back",),
        confirm_words: Iterable[str] = ("yes", "confirm", "ok"),
        cancelled_text: str = "Cancelled. Nothing was saved.",
    ) -> None:
        if not isinstance(name, str) or not re.fullmatch(r"[\w-]+", name):
            raise HandlerRegistrationError(
                f"form name must be a word like 'complaint', got {name!r}"
            )
        super().__init__(f"form:{name}")
        self.form_name = name
        self.fields = list(fields)
        if not self.fields or not all(isinstance(f, Field) for f in self.fields):
            raise HandlerRegistrationError(f"form {name!r} needs a list of Field, got {fields!r}")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names) or "confirm" in names:
            raise HandlerRegistrationError(
                f"form {name!r} field names must be unique and not 'confirm', got {names}"
            )
        self._index = {f.name: i for i, f in enumerate(self.fields)}
        self.confirm = confirm
        self._summary = summary
        self.cancel_words = frozenset(map(normalize_text, cancel_words))
        self.back_words = frozenset(map(normalize_text, back_words))
        self.confirm_words = frozenset(map(normalize_text, confirm_words))
        self.cancelled_text = cancelled_text
        self.action = f"qbot.form:{name}"
        self.data_key = f"form:{name}"
        self._complete: CompleteFn | None = None
        self._cancel: CancelFn | None = None
        steps = f"form:{name}:*"
        self.message(state=steps)(self._on_message)
        self.postback(action=self.action, state=steps)(self._on_postback)

    # --- registration ---------------------------------------------------------------------------

    def on_complete(self, fn: CompleteFn) -> CompleteFn:
        """Register ``async def done(ctx, data)``: runs once the user confirmed the answers."""
        _check_callback(fn, 2, f"form {self.form_name!r} completion handler")
        self._complete = fn
        return fn

    def on_cancel(self, fn: CancelFn) -> CancelFn:
        """Register ``async def cancelled(ctx)``: runs after the user cancelled."""
        _check_callback(fn, 1, f"form {self.form_name!r} cancel handler")
        self._cancel = fn
        return fn

    # --- driving --------------------------------------------------------------------------------

    def step(self, field_name: str) -> str:
        """The conversation step of a field (or ``"confirm"``)."""
        return f"form:{self.form_name}:{field_name}"

    async def start(self, ctx: Context, **initial: Any) -> None:
        """Begin the form for the sender: forget earlier answers and ask the first question.

        ``initial`` answers are kept and their questions skipped, and so are those of fields
        whose ``entity`` the message that started the form holds.
        """
        answers = dict(initial)
        await self._fill_from_entities(ctx, answers, skip=None)
        await ctx.state.set(self.data_key, answers)
        await self._ask_from(ctx, 0)

    async def _fill_from_entities(
        self, ctx: Context, answers: dict[str, Any], skip: str | None
    ) -> None:
        """Answer the unanswered fields with an ``entity`` from the message's entities, each
        entity used once, in field order."""
        wanting = [f for f in self.fields if f.entity and f.name not in answers and f.name != skip]
        if not wanting or ctx.message.type not in _TEXT_TYPES:
            return
        used: set[int] = set()
        for f in wanting:
            for i, e in enumerate(ctx.entities):
                if i in used or e.type != f.entity:
                    continue
                try:
                    answers[f.name] = await f.clean(_entity_answer(e.value, e.text), ctx)
                except InvalidInput:
                    continue
                used.add(i)
                break

    async def cancel(self, ctx: Context) -> None:
        """Stop the form, forget its answers, say so and run the cancel handler."""
        await self._leave(ctx)
        await ctx.reply(self.cancelled_text)
        if self._cancel is not None:
            await self._cancel(ctx)

    async def answers(self, ctx: Context) -> dict[str, Any]:
        """The answers given so far."""
        data = await ctx.state.get(self.data_key, {})
        return data if isinstance(data, dict) else {}

    async def _leave(self, ctx: Context) -> None:
        await ctx.state.delete(self.data_key)
        await ctx.state.goto(None)

    def _current(self, ctx: Context) -> str:
        step = ctx.state.step or ""
        return step.split(":", 2)[2] if step.count(":") >= 2 else ""

    async def _ask_from(self, ctx: Context, index: int) -> None:
        answers = await self.answers(ctx)
        for f in self.fields[index:]:
            if f.name not in answers:
                await ctx.state.goto(self.step(f.name))
                await self._prompt(ctx, f)
                return
        if self.confirm:
            await ctx.state.goto(self.step("confirm"))
            await self._show_summary(ctx)
            return
        await self._finish(ctx)

    async def _prompt(self, ctx: Context, f: Field) -> None:
        if f.template is not None:
            await ctx.reply_template(f.template, form=await self.answers(ctx))
            return
        prompt = f.prompt
        if callable(prompt) and not isinstance(prompt, Message):
            prompt = await prompt(ctx)
        if f._choices and isinstance(prompt, str):
            buttons = Buttons(prompt)
            for value, label in f._choices.items():
                data = {"op": "choose", "field": f.name, "value": value}
                buttons.postback(label, action=self.action, data=data)
            prompt = buttons
        if prompt is not None:
            await ctx.reply(prompt)

    async def _show_summary(self, ctx: Context) -> None:
        answers = await self.answers(ctx)
        if self._summary is not None:
            text = await self._summary(ctx, answers)
        else:
            lines = [f"• {f.label}: {f.display(answers.get(f.name, ''))}" for f in self.fields]
            text = "Please check your answers:\n" + "\n".join(lines)
        await ctx.reply(
            Buttons(text)
            .postback("Confirm", action=self.action, data={"op": "confirm"})
            .postback("Back", action=self.action, data={"op": "back"})
            .postback("Cancel", action=self.action, data={"op": "cancel"})
        )

    async def _finish(self, ctx: Context) -> None:
        answers = await self.answers(ctx)
        await self._leave(ctx)  # first: the handler may start something else
        ctx.log.info("form.completed", form=self.form_name, fields=sorted(answers))
        if self._complete is not None:
            await self._complete(ctx, answers)

    async def _back(self, ctx: Context, current: str) -> None:
        index = len(self.fields) if current == "confirm" else self._index.get(current, 0)
        if index == 0:
            await ctx.reply("This is the first question.")
            await self._prompt(ctx, self.fields[0])
            return
        previous = self.fields[index - 1]
        answers = await self.answers(ctx)
        answers.pop(previous.name, None)
        await ctx.state.set(self.data_key, answers)
        await ctx.state.goto(self.step(previous.name))
        await self._prompt(ctx, previous)

    async def _answer(self, ctx: Context, f: Field, text: str) -> None:
        answers = await self.answers(ctx)
        found = await self._entity_for(ctx, f)
        await self._fill_from_entities(ctx, answers, skip=f.name)
        try:
            value = found if found is not _NONE else await f.clean(text, ctx)
        except InvalidInput as e:
            await ctx.state.set(self.data_key, answers)  # what else the message said is kept
            await ctx.reply(str(e))
            await self._prompt(ctx, f)
            return
        answers[f.name] = value
        await ctx.state.set(self.data_key, answers)
        await self._ask_from(ctx, self._index[f.name] + 1)

    async def _entity_for(self, ctx: Context, f: Field) -> Any:
        """The current field's answer from an entity of its type in the message, or ``_NONE``
        ("order 123, please" answers an order-number field with 123)."""
        if not f.entity or ctx.message.type not in _TEXT_TYPES:
            return _NONE
        for e in ctx.entities:
            if e.type == f.entity:
                try:
                    return await f.clean(_entity_answer(e.value, e.text), ctx)
                except InvalidInput:
                    continue
        return _NONE

    # --- handlers -------------------------------------------------------------------------------

    async def _on_message(self, ctx: Context) -> None:
        current = self._current(ctx)
        typed = ctx.normalized_text
        if ctx.message.type not in _TEXT_TYPES:
            await ctx.reply("Please answer with a text message.")
        elif typed in self.cancel_words:
            await self.cancel(ctx)
            return
        elif typed in self.back_words:
            await self._back(ctx, current)
            return
        elif current == "confirm":
            if typed in self.confirm_words:
                await self._finish(ctx)
                return
            await ctx.reply("Tap Confirm to send it, or type 'back' or 'cancel'.")
        elif current in self._index:
            await self._answer(ctx, self.fields[self._index[current]], ctx.text)
            return
        await self._reask(ctx, current)

    async def _on_postback(self, ctx: Context) -> None:
        data = ctx.postback.data if ctx.postback is not None else None
        op = data.get("op") if isinstance(data, dict) else None
        current = self._current(ctx)
        if op == "cancel":
            await self.cancel(ctx)
        elif op == "back":
            await self._back(ctx, current)
        elif op == "confirm" and current == "confirm":
            await self._finish(ctx)
        elif op == "choose" and isinstance(data, dict) and data.get("field") == current:
            f = self.fields[self._index[current]]
            await self._answer(ctx, f, f.display(data.get("value")))
        else:  # a button of an earlier question: ask the current one again
            await self._reask(ctx, current)

    async def _reask(self, ctx: Context, current: str) -> None:
        if current == "confirm":
            await self._show_summary(ctx)
        elif current in self._index:
            await self._prompt(ctx, self.fields[self._index[current]])
        else:  # a step this form no longer has (the bot changed): start over
            await self._ask_from(ctx, 0)


_NONE: Any = object()


def _entity_answer(value: Any, text: str) -> str:
    """An entity as a typed answer: a list's canonical value, an amount's digits, an ISO date."""
    if isinstance(value, str):
        return value
    if isinstance(value, Money):
        return str(value.amount)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, int | float | Decimal):
        return str(value)
    return text


def _check_callback(fn: Any, arity: int, what: str) -> None:
    if not inspect.iscoroutinefunction(fn):
        raise HandlerRegistrationError(
            f"{what} {getattr(fn, '__qualname__', fn)!r} must be 'async def'"
        )
    try:
        inspect.signature(fn).bind(*([None] * arity))
    except TypeError:
        args = "ctx, data" if arity == 2 else "ctx"
        raise HandlerRegistrationError(
            f"{what} {getattr(fn, '__qualname__', fn)!r} must take ({args})"
        ) from None
