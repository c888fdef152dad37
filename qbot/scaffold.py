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
``PKG`` is ``NAME`` with dashes turned into underscores; a name whose package would shadow
``qbot``, a standard-library module or the project's own ``tests``/``templates`` is refused.

The project depends on qbot as it is installed now (:func:`qbot_requirement`): a version range
when qbot came from a package index, else the local folder or wheel it was installed from, so
the project's first ``pip install`` resolves without an index that lacks qbot.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path

from qbot._json import loads
from qbot.errors import ConfigError

__all__ = ["TEMPLATE_DIR", "create_project", "package_name", "qbot_requirement"]

TEMPLATE_DIR = Path(__file__).parent / "scaffold_template"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# Dotfiles are stored without their dot so packaging tools never skip them.
_RENAMES = {"gitignore": ".gitignore", "dockerignore": ".dockerignore"}
# Besides the standard library: the framework itself and the project's own folders.
_TAKEN = {"qbot": "the qbot framework", "tests": "the tests/ folder", "templates": "templates/"}


def package_name(name: str) -> str:
    """The Python package for project ``name``: ``my-bot`` → ``my_bot``."""
    return name.replace("-", "_").lower()


def qbot_requirement(dist: Distribution | None = None) -> str:
    """The dependency on qbot that resolves from wherever qbot is installed now.

    Read from the installation's PEP 610 ``direct_url.json``: none means a package index
    (``qbot>=VERSION``); a local folder, wheel or VCS checkout gives a direct reference to it
    (``qbot @ file:///...``).

    Args:
        dist: the installed qbot distribution; the running one when omitted.
    """
    if dist is None:
        try:
            dist = distribution("qbot")
        except PackageNotFoundError:
            # Imported from a source tree that was never installed: depend on that tree.
            return f"qbot @ {Path(__file__).resolve().parent.parent.as_uri()}"
    text = dist.read_text("direct_url.json")
    if text is None:
        return f"qbot>={dist.version}"
    origin = loads(text)
    url = str(origin["url"])
    vcs = origin.get("vcs_info")
    if isinstance(vcs, dict):
        return f"qbot @ {vcs['vcs']}+{url}@{vcs['commit_id']}"
    return f"qbot @ {url}"


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"project name {name!r} must start with a letter and hold only letters, digits, "
            "'-' or '_', e.g. 'shop-bot'"
        )
    pkg = package_name(name)
    shadowed = _TAKEN.get(pkg)
    if shadowed is None and pkg in sys.stdlib_module_names:
        shadowed = f"the standard-library module {pkg!r}"
    if shadowed is not None:
        raise ConfigError(
            f"project name {name!r} makes a package {pkg!r} that would shadow {shadowed}: "
            f"pick another name, e.g. '{pkg}-bot'"
        )
    return pkg


def create_project(name: str, parent: Path | str = ".") -> Path:
    """Write a new bot project into ``parent/name``.

    Args:
        name: the project name: a letter, then letters, digits, ``-`` or ``_``; its package must
            not shadow ``qbot`` or a standard-library module.
        parent: the directory the project is created in.

    Returns:
        The project directory.

    Raises:
        ConfigError: the name is not usable, or the directory exists and is not empty.
    """
    pkg = _check_name(name)
    target = Path(parent) / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{str(target)!r} already exists and is not empty: pick another name")
    replacements = {
        "__PKG__": pkg,
        "__NAME__": name,
        "__QBOT_REQUIREMENT__": qbot_requirement(),
    }
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
