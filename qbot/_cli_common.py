"""What ``qbot`` commands and the test kit share: loading a bot from ``MODULE:ATTR``.

Kept apart from ``qbot.cli`` so that the command modules it registers (and ``qbot.testing``)
can load a bot without importing the module that imports them.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qbot.errors import ConfigError, QbotError

if TYPE_CHECKING:
    from qbot.bot import Bot

__all__ = ["load_bot", "load_target"]


def load_target(target: str) -> Any:
    """Import ``MODULE:ATTR`` (uvicorn's convention) from the current directory.

    Raises:
        ConfigError: the target is malformed, the module cannot be imported or lacks the attribute.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"target {target!r} must look like MODULE:ATTR, e.g. bots.demo:bot")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise ConfigError(f"cannot import module {module_name!r} (from {target!r})") from None
        raise ConfigError(f"importing {module_name!r} failed: {e}") from None
    except QbotError as e:
        raise ConfigError(f"importing {module_name!r} failed: {e}") from None
    except Exception as e:
        raise ConfigError(f"importing {module_name!r} raised {type(e).__name__}: {e}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def load_bot(target: str) -> Bot:
    """Load ``target`` and check that it is a :class:`qbot.Bot`.

    Raises:
        ConfigError: as :func:`load_target`, or the object is not a bot.
    """
    from qbot.bot import Bot

    obj = load_target(target)
    if not isinstance(obj, Bot):
        raise ConfigError(f"{target!r} is a {type(obj).__name__}, not a qbot.Bot")
    return obj
