"""``qbot new NAME``: a ready-to-run bot project whose tests pass right away.

```
NAME/
├── PKG/bot.py             handlers (greeting template, a menu with buttons, an intent, fallback)
├── templates/welcome.txt  a jinja2 reply template
├── intents.yaml           named intents
├── config.yaml            settings for `qbot run`
├── tests/                 a pytest test using qbot_chat, and a YAML transcript
├── Dockerfile, README.md, pyproject.toml, .gitignore, .dockerignore
```
``PKG`` is ``NAME`` with dashes turned into underscores.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from qbot.errors import ConfigError

__all__ = ["TEMPLATE_DIR", "create_project", "package_name"]

TEMPLATE_DIR = Path(__file__).parent / "scaffold_template"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# Dotfiles are stored without their dot so packaging tools never skip them.
_RENAMES = {"gitignore": ".gitignore", "dockerignore": ".dockerignore"}


def package_name(name: str) -> str:
    """The Python package for project ``name``: ``my-bot`` → ``my_bot``."""
    return name.replace("-", "_").lower()


def _qbot_version() -> str:
    try:
        return version("qbot")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.1.0"


def create_project(name: str, parent: Path | str = ".") -> Path:
    """Write a new bot project into ``parent/name``.

    Args:
        name: the project name: a letter, then letters, digits, ``-`` or ``_``.
        parent: the directory the project is created in.

    Returns:
        The project directory.

    Raises:
        ConfigError: the name is not usable, or the directory exists and is not empty.
    """
    if not _NAME.match(name):
        raise ConfigError(
            f"project name {name!r} must start with a letter and hold only letters, digits, "
            "'-' or '_', e.g. 'shop-bot'"
        )
    pkg = package_name(name)
    target = Path(parent) / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{str(target)!r} already exists and is not empty: pick another name")
    replacements = {"__PKG__": pkg, "__NAME__": name, "__QBOT_VERSION__": _qbot_version()}
    for source in sorted(TEMPLATE_DIR.rglob("*.tmpl")):
        relative = source.relative_to(TEMPLATE_DIR).with_suffix("")
        parts = [replacements.get(p, p) for p in relative.parts]
        parts[-1] = _RENAMES.get(parts[-1], parts[-1])
        text = source.read_text(encoding="utf-8")
        for marker, value in replacements.items():
            text = text.replace(marker, value)
        destination = target.joinpath(*parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text, encoding="utf-8")
    return target
