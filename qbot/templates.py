"""Reply templates: jinja2 text files and YAML message specs in one directory.

```
templates/
├── greet.txt          Hello {{ name }}!                       → Text
└── order_status.yaml  type: buttons / text: ... / buttons: ... → any message (message_from_spec)
```
``Templates("templates").render("greet", name="Ani")`` returns a message ready for
``ctx.reply()``. Templates are user-supplied files, so they run in jinja's sandbox; chat text is
not HTML, so nothing is escaped; an undefined variable is an error, never an empty string.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from qbot.errors import MessageBuildError, TemplateError
from qbot.messages import Message, Text, message_from_spec

__all__ = ["Templates"]

TEXT_SUFFIXES = (".txt", ".txt.j2", ".j2")
YAML_SUFFIXES = (".yaml", ".yml")
_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")


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
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(self.directory),
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
        rendered = self._render(filename, variables)
        if filename.endswith(YAML_SUFFIXES):
            return self._build(filename, rendered)
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
            return self.env.get_template(filename).render(**variables)
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

    def _build(self, filename: str, rendered: str) -> Message:
        try:
            spec = yaml.safe_load(rendered)
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
