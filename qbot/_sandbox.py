"""A jinja sandbox whose renders are bounded in time, loop steps and size.

jinja's own sandbox blocks Python internals and bounds ``range``; it does not stop
``{{ 7 ** 3000000 }}``, ``{{ 'a' * 200000000 }}`` or three nested loops of ten thousand steps, each
of which stalls the event loop for seconds. Here every render gets a :class:`Budget`: every loop
step counts (loops are compiled through :func:`_counted`), operators and string methods that
could build a huge value are checked before they run, and the output is measured as it is
produced; going over raises :class:`~qbot.errors.TemplateError`.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace

from qbot.errors import TemplateError

__all__ = ["MAX_LOOP_STEPS", "MAX_OUTPUT", "MAX_SECONDS", "BoundedSandbox", "Budget"]

MAX_OUTPUT = 256 * 1024
"""Characters a render may produce, and the longest string or list it may build."""
MAX_LOOP_STEPS = 200_000
"""Loop iterations, all loops together, in one render."""
MAX_SECONDS = 1.0
"""Seconds a render may take."""
_MAX_POWER_BITS = 4096
_CHECK_EVERY = 256
_WIDE_FORMAT = re.compile(r"\d{6,}")
"""A width or precision of six digits or more in a format string (``'%099999999d'``)."""
_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})

_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("qbot_budget", default=None)


class Budget:
    """What one render may still spend: loop steps and time."""

    __slots__ = ("_token", "deadline", "steps", "template")

    def __init__(self, template: str, seconds: float = MAX_SECONDS) -> None:
        self.template = template
        self.steps = 0
        self.deadline = time.monotonic() + seconds
        self._token: contextvars.Token[Budget | None] | None = None

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_LOOP_STEPS:
            raise TemplateError(
                f"template {self.template!r} looped more than {MAX_LOOP_STEPS} times: "
                "render less, or prepare the data in Python"
            )
        if self.steps % _CHECK_EVERY == 0:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateError(
                f"template {self.template!r} took longer than {MAX_SECONDS:g} s to render"
            )

    def __enter__(self) -> Budget:
        self._token = _budget.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _budget.reset(self._token)


def _current() -> Budget | None:
    return _budget.get()


def _too_big(what: str) -> TemplateError:
    budget = _current()
    name = budget.template if budget is not None else "?"
    return TemplateError(
        f"template {name!r} would build {what} longer than {MAX_OUTPUT} characters or items"
    )


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every loop of a template iterates through this: each step is counted."""
    budget = _current()
    for item in iterable:
        if budget is not None:
            budget.step()
        yield item


class _CountingCodeGenerator(CodeGenerator):
    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        counted = nodes.Call(
            nodes.EnvironmentAttribute("qbot_counted"),
            [node.iter],
            [],
            None,
            None,
            lineno=node.lineno,
        )
        loop = nodes.For(
            node.target,
            counted,
            node.body,
            node.else_,
            node.test,
            node.recursive,
            lineno=node.lineno,
        )
        super().visit_For(loop, frame)


class _BoundedNamespace(Namespace):
    """``namespace()``: a value set on it (``{% set ns.s = ns.s ~ ns.s %}``) is size-checked."""

    def __setitem__(self, name: str, value: Any) -> None:
        _check_size(value, "a value")
        super().__setitem__(name, value)


def _check_size(value: Any, what: str) -> None:
    if isinstance(value, str | bytes | list | tuple) and len(value) > MAX_OUTPUT:
        raise _too_big(what)


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class BoundedSandbox(SandboxedEnvironment):
    """The sandbox, with operators, string methods, loops and ``namespace`` bounded."""

    code_generator_class = _CountingCodeGenerator
    qbot_counted = staticmethod(_counted)
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["namespace"] = _BoundedNamespace
        self.filters["center"] = _bounded_center
        self.filters["indent"] = _bounded_indent

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        spec: str = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            # A width in the format string, or one passed in (``'{:>{w}}'.format(1, w=10**9)``).
            nested = "{" in spec.partition(":")[2] or ":{" in spec
            if _WIDE_FORMAT.search(spec) or (
                nested and any((_int(a) or 0) > MAX_OUTPUT for a in (*args, *kwargs.values()))
            ):
                raise _too_big("a formatted string")
            return wrapped(*args, **kwargs)

        return bounded

    def call_binop(self, context: Context, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            base, exponent = _int(left), _int(right)
            if (
                base is not None
                and exponent is not None
                and abs(base) > 1
                and exponent * abs(base).bit_length() > _MAX_POWER_BITS
            ):
                raise TemplateError(
                    f"template {_name()!r}: {left} ** {right} is too large to compute "
                    f"(over {_MAX_POWER_BITS} bits)"
                )
        elif op == "*":
            for seq, times in ((left, right), (right, left)):
                length, count = _size(seq), _int(times)
                if length is not None and count is not None and length * count > MAX_OUTPUT:
                    raise _too_big("a repeated value")
        elif op == "+":
            a, b = _size(left), _size(right)
            if a is not None and b is not None and a + b > MAX_OUTPUT:
                raise _too_big("a joined value")
        elif op == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
            raise _too_big("a formatted string")
        result = self.binop_table[op](left, right)
        budget = _current()
        if budget is not None:
            budget.check_time()
        return result

    def call(
        __self,  # jinja's own signature: 'self' may be a keyword argument of the call
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            widths = [_int(a) or 0 for a in (*args, *kwargs.values())]
            if name in _PADDING and any(w > MAX_OUTPUT for w in widths):
                raise _too_big("a padded string")
            if (
                name == "replace"
                and len(args) >= 2
                and isinstance(args[1], str)
                and (len(owner) + 1) * max(1, len(args[1])) > MAX_OUTPUT * 4
            ):
                raise _too_big("a replaced string")
        result = SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
        _check_size(result, "a value")
        return result


def _name() -> str:
    budget = _current()
    return budget.template if budget is not None else "?"


def _bounded_center(value: Any, width: int = 80) -> str:
    if _int(width) is not None and width > MAX_OUTPUT:
        raise _too_big("a centred string")
    return str(value).center(width)


def _bounded_indent(
    value: Any, width: int | str = 4, first: bool = False, blank: bool = False
) -> str:
    from jinja2.filters import do_indent

    if (
        isinstance(width, int | str)
        and len(str(value)) * (width if isinstance(width, int) else len(width)) > MAX_OUTPUT * 4
    ):
        raise _too_big("an indented string")
    return do_indent(str(value), width, first, blank)


def render_bounded(chunks: Iterable[str], template: str) -> str:
    """Join a render's output chunks, refusing more than :data:`MAX_OUTPUT` characters."""
    out: list[str] = []
    size = 0
    budget = _current()
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise TemplateError(f"template {template!r} rendered more than {MAX_OUTPUT} characters")
        out.append(chunk)
        if budget is not None:
            budget.check_time()
    return "".join(out)
