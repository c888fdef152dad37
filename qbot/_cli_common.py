"""What every ``qbot`` command shares: the one-line failure, the config file, loading a bot.

Every failure a user can cause prints one ``error: ...`` line on stderr and exits non-zero (2 for
usage and configuration, 1 when something outside refused or could not be reached), never a
traceback. A command module adds its commands with ``register(group)``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from qbot.errors import (
    ConfigError,
    QbotError,
    QiscusAPIError,
    QiscusNetworkError,
    QiscusNotFound,
    QiscusRateLimited,
    QiscusServerError,
    QiscusUnauthorized,
)

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.client import QiscusClient
    from qbot.config import Settings

__all__ = [
    "DEFAULT_CONFIG",
    "OneLineGroup",
    "config_option",
    "describe_qiscus_error",
    "fail",
    "load_bot",
    "load_target",
    "quiet_logging",
    "resolve_config_path",
    "settings_from",
]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CONFIG = "config.yaml"
"""The config file every command reads when ``--config`` is not given and the file exists."""


class _UsageLine(click.ClickException):
    """A usage mistake shown as one ``error:`` line (click prints usage, a hint and the error)."""

    exit_code = 2

    def __init__(self, error: click.UsageError) -> None:
        super().__init__(error.format_message())
        self.command_path = error.ctx.command_path if error.ctx is not None else "qbot"

    def show(self, file: Any = None) -> None:
        message = self.format_message().strip()
        if not message.endswith((".", "?", ")")):
            message += "."
        click.echo(f"error: {message} See '{self.command_path} --help'.", err=True)


class OneLineGroup(click.Group):
    """The ``qbot`` group: a missing option, an unknown command or a bad value is one
    ``error: ...`` line naming the ``--help`` to read, exit 2, like every other failure.

    ``qbot`` or ``qbot GROUP`` alone still prints the help.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as e:
            raise _UsageLine(e) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as e:
            raise _UsageLine(e) from None


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear line on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def resolve_config_path(path: str | None) -> str | None:
    """The config file to read: ``path``, else ``./config.yaml`` when present, else ``None``."""
    if path is None and Path(DEFAULT_CONFIG).is_file():
        return DEFAULT_CONFIG
    return path


def settings_from(path: str | None, **overrides: Any) -> Settings:
    """Read the config file (see :func:`resolve_config_path`) and the environment.

    Raises:
        ConfigError: the file is missing or malformed, or a value is invalid.
    """
    from qbot.config import load_settings

    return load_settings(resolve_config_path(path), **overrides)


def quiet_logging(settings: Settings) -> None:
    """Logging for a command whose output and one error line are the point: only errors, unless
    ``log.level`` is ``debug`` (then every retry and request is logged, on stderr)."""
    from qbot.log import configure_logging

    configure_logging("debug" if settings.log.level == "debug" else "error", settings.log.format)


def describe_qiscus_error(error: Exception, client: QiscusClient) -> str:
    """One line that says what went wrong and what to do about it."""
    if isinstance(error, QiscusUnauthorized):
        return (
            f"Qiscus rejected the secret key (401) for app {client.app_id!r} at "
            f"{client.base_url}: check qiscus.secret_key (QBOT_QISCUS__SECRET_KEY) and "
            "qiscus.app_id"
        )
    if isinstance(error, QiscusNotFound):
        return f"not found (404) on {error.endpoint}: {error.message}"
    if isinstance(error, QiscusRateLimited):
        wait = f"; retry in {error.retry_after:g}s" if error.retry_after is not None else ""
        return f"Qiscus is rate limiting (429) on {error.endpoint}{wait}"
    if isinstance(error, QiscusServerError):
        return f"Qiscus failed ({error.status}) on {error.endpoint} after retries: {error.message}"
    if isinstance(error, QiscusAPIError):
        return f"Qiscus refused ({error.status}) on {error.endpoint}: {error.message}"
    if isinstance(error, QiscusNetworkError):
        return f"{error}; check qiscus.base_url and the network"
    return str(error)


def config_option(
    help: str = f"YAML config file (default: ./{DEFAULT_CONFIG} when present; QBOT_* env vars "
    "override).",
) -> Callable[[F], F]:
    """The ``--config`` option, passed to the command as ``config_path``.

    A plain path: reading it (``qbot.config.read_yaml``) reports a missing file, a directory or
    bad YAML as one ``ConfigError`` line, where click would print a multi-line usage error.
    """
    return click.option("--config", "config_path", default=None, metavar="FILE", help=help)


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
