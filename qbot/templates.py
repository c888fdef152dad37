"""Reply templates: jinja2 text files and YAML message specs in one directory.

```
templates/
├── greet.txt          Hello {{ name }}!                       → Text
└── order_status.yaml  type: buttons / text: ... / buttons: ... → any message (message_from_spec)
```
``Templates("templates").render("greet", name="Ani")`` returns a message ready for
``ctx.reply()``. Templates are user-supplied files, so they run in a sandbox whose renders are
bounded in time, loop steps and size (:mod:`qbot._sandbox`); chat text is not HTML, so nothing is
HTML-escaped; an undefined variable is an error, never an empty string.

In a YAML template every ``{{ value }}`` is a value, never YAML: the template is parsed with a
placeholder in its place and the value put back into the parsed structure, so user text cannot
add keys or change types. ``| tojson`` and ``| safe`` output is inserted as YAML text, as written.
"""

from __future__ import annotations

import contextvars
import re
import secrets
from pathlib import Path
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from qbot._sandbox import BoundedSandbox, Budget, render_bounded
from qbot.errors import MessageBuildError, TemplateError
from qbot.messages import Message, Text, message_from_spec

__all__ = ["Templates"]

TEXT_SUFFIXES = (".txt", ".txt.j2", ".j2")
YAML_SUFFIXES = (".yaml", ".yml")
_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")


class _Slots:
    """The values of one YAML render, each standing in the YAML text as a placeholder."""

    def __init__(self) -> None:
        nonce = secrets.token_hex(6)
        self.pattern = re.compile(rf"qbotv{nonce}x(\d+)q")
        self.nonce = nonce
        self.values: list[Any] = []

    def hold(self, value: Any) -> str:
        self.values.append(value)
        return f"qbotv{self.nonce}x{len(self.values) - 1}q"

    def restore(self, node: Any) -> Any:
        """``node`` (parsed YAML) with every placeholder replaced by its value."""
        if isinstance(node, str):
            whole = self.pattern.fullmatch(node)
            if whole is not None:
                value = self.values[int(whole.group(1))]
                return self._text(value) if isinstance(value, str) else value
            return self._text(node) if self.pattern.search(node) else node
        if isinstance(node, dict):
            return {self.restore(k): self.restore(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.restore(item) for item in node]
        return node

    def _text(self, text: str) -> str:
        # A macro's output is a value holding the placeholders of its own expressions.
        def one(match: re.Match[str]) -> str:
            value = self.values[int(match.group(1))]
            return self._text(value) if isinstance(value, str) else str(value)

        return self.pattern.sub(one, text)


_slots: contextvars.ContextVar[_Slots | None] = contextvars.ContextVar("qbot_slots", default=None)


def _finalize(value: Any) -> Any:
    slots = _slots.get()
    if slots is None or isinstance(value, Markup):
        return value
    return slots.hold(value)


class Templates:
    """A directory of reply templates.

    Args:
        directory: where the templates live.
        auto_reload: re-compile a template when its file changes (checked with a ``stat``, the
            file is only re-read when it changed); turn off in production to skip the check.

    Raises:
        TemplateError: ``directory`` is not a directory.

    Example:
        ``templates.render("order_status", order=order)`` finds ``order_status.txt``,
        ``.txt.j2``, ``.j2``, ``.yaml`` or ``.yml``, in that order.
    """

    def __init__(self, directory: str | Path, *, auto_reload: bool = True) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise TemplateError(
                f"template directory {str(self.directory)!r} does not exist or is not a "
                "directory: create it or point Templates at the right path"
            )
        self.env = BoundedSandbox(
            loader=jinja2.FileSystemLoader(self.directory),
            finalize=_finalize,
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            auto_reload=auto_reload,
        )
        # name → file name, so a render does not probe every suffix again.
        self._resolved: dict[tuple[str, bool], str] = {}

    def render(self, name: str, /, **variables: Any) -> Message:
        """Render template ``name`` into a message.

        Text templates become :class:`~qbot.messages.Text` (trailing whitespace dropped); YAML
        templates are rendered with jinja, parsed with ``yaml.safe_load`` and built with
        :func:`~qbot.messages.message_from_spec`.

        Args:
            name: the template's name without suffix, e.g. ``"order_status"`` (positional, so
                a template may itself use a variable called ``name``).
            **variables: the values the template uses.

        Raises:
            TemplateError: the template is missing, has a syntax error, uses an undefined
                variable or something the sandbox forbids, or renders to an invalid message.
        """
        filename = self._resolve(name, yaml_allowed=True)
        if filename.endswith(YAML_SUFFIXES):
            slots = _Slots()
            token = _slots.set(slots)
            try:
                rendered = self._render(filename, variables)
            finally:
                _slots.reset(token)
            return self._build(filename, rendered, slots)
        rendered = self._render(filename, variables)
        try:
            # A trailing newline left by a final {% endfor %} would show as an empty line.
            return Text(rendered.rstrip())
        except MessageBuildError as e:
            raise TemplateError(f"template {filename!r} rendered no usable text: {e}") from e

    def render_text(self, name: str, /, **variables: Any) -> str:
        """Render text template ``name`` (``.txt``, ``.txt.j2``, ``.j2``) to a string.

        Raises:
            TemplateError: as for :meth:`render`; also when ``name`` is only a YAML template.
        """
        return self._render(self._resolve(name, yaml_allowed=False), variables)

    def _resolve(self, name: str, *, yaml_allowed: bool) -> str:
        key = (name, yaml_allowed)
        cached = self._resolved.get(key)
        if cached is not None:
            return cached
        suffixes = TEXT_SUFFIXES + YAML_SUFFIXES if yaml_allowed else TEXT_SUFFIXES
        candidates = [name + suffix for suffix in suffixes]
        if name.endswith(suffixes):
            candidates.insert(0, name)
        for candidate in candidates:
            try:
                self.env.get_template(candidate)
            except jinja2.TemplateNotFound:
                continue
            except jinja2.TemplateSyntaxError as e:
                raise _syntax_error(candidate, e) from e
            self._resolved[key] = candidate
            return candidate
        hint = ""
        if not yaml_allowed and any(
            (self.directory / (name + suffix)).is_file() for suffix in YAML_SUFFIXES
        ):
            hint = "; it exists as a YAML template: use render() for it"
        raise TemplateError(
            f"template {name!r} not found in {str(self.directory)!r} "
            f"(looked for {', '.join(candidates)}){hint}"
        )

    def _render(self, filename: str, variables: dict[str, Any]) -> str:
        try:
            template = self.env.get_template(filename)
            with Budget(filename):
                return render_bounded(template.generate(**variables), filename)
        except TemplateError:
            raise
        except (RecursionError, MemoryError) as e:
            raise TemplateError(
                f"template {filename!r} recursed too deeply or needed too much memory"
            ) from e
        except jinja2.TemplateNotFound as e:
            self._resolved.clear()
            raise TemplateError(f"template {filename!r} disappeared from disk") from e
        except jinja2.TemplateSyntaxError as e:
            raise _syntax_error(filename, e) from e
        except jinja2.exceptions.SecurityError as e:
            raise TemplateError(f"template {filename!r} was blocked by the sandbox: {e}") from e
        except jinja2.UndefinedError as e:
            match = _UNDEFINED.match(str(e))
            if match:
                raise TemplateError(
                    f"template {filename!r} uses undefined variable {match.group(1)!r}: "
                    "pass it to render()"
                ) from e
            raise TemplateError(f"template {filename!r} uses an undefined value: {e}") from e
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError) as e:
            raise TemplateError(f"template {filename!r} failed to render: {e}") from e

    def _build(self, filename: str, rendered: str, slots: _Slots) -> Message:
        try:
            spec = slots.restore(yaml.safe_load(rendered))
        except yaml.YAMLError as e:
            raise TemplateError(
                f"template {filename!r} did not render to valid YAML: {e}; quote values that "
                "may contain ':' or '#' with {{ value | tojson }}"
            ) from e
        if not isinstance(spec, dict):
            raise TemplateError(
                f"template {filename!r} must render to a YAML mapping with a 'type' key, "
                f"got {spec!r}"
            )
        try:
            return message_from_spec(spec)
        except MessageBuildError as e:
            raise TemplateError(f"template {filename!r} describes an invalid message: {e}") from e


def _syntax_error(filename: str, error: jinja2.TemplateSyntaxError) -> TemplateError:
    return TemplateError(
        f"template {filename!r} has a syntax error on line {error.lineno}: {error.message}"
    )
