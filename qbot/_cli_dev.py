"""The development commands of ``qbot``: ``dev``, ``shell`` and ``new``.

``qbot.cli`` calls :func:`register` to add them to its group. Like every qbot command, a failure
the user can cause prints one ``error: ...`` line and exits non-zero, never a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from qbot._cli_common import config_option, fail, load_bot, resolve_config_path
from qbot.errors import ConfigError, QbotError

__all__ = ["register"]


@click.command()
@click.argument("target", required=False)
@config_option()
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the page listens.")
@click.option("--port", type=int, default=8080, show_default=True, help="The page's port.")
@click.option("--reset", is_flag=True, help="Forget every stored user, room and message first.")
@click.option(
    "--db",
    default=".qbot/emulator.sqlite3",
    show_default=True,
    help="The emulator's SQLite file (conversations survive restarts).",
)
@click.option(
    "--webhook-url",
    default=None,
    help="Without TARGET: where to deliver user messages (a bot started with `qbot run`).",
)
@click.option(
    "--omnichannel",
    is_flag=True,
    help="Emulate Omnichannel too: customers on WhatsApp and other channels, the agent desk.",
)
def dev(
    target: str | None,
    config_path: str | None,
    host: str,
    port: int,
    reset: bool,
    db: str,
    webhook_url: str | None,
    omnichannel: bool,
) -> None:
    """Run the bot TARGET (MODULE:ATTR) with a local Qiscus emulator and web chat page."""
    from qbot.emulator.dev import DevServer, dev_settings
    from qbot.log import configure_logging

    try:
        bot = load_bot(target) if target else None
        settings = dev_settings(resolve_config_path(config_path), bot.name if bot else "Bot")
        # Development output is read by a person, piped (`make dev | tee`) or not: "auto" means
        # console here; an explicit `log.format: json` is still honoured.
        fmt = "console" if settings.log.format == "auto" else settings.log.format
        configure_logging(settings.log.level, fmt)
    except ConfigError as e:
        fail(str(e))
    server = DevServer(
        settings,
        bot,
        host=host,
        port=port,
        db=db,
        reset=reset,
        webhook_url=webhook_url,
        omnichannel=omnichannel,
    )

    def announce(url: str) -> None:
        if target:
            click.echo(
                f"qbot dev: chat with {target} at {url}  (state: {db}; Ctrl+C stops)", err=True
            )
            return
        where = (
            f"messages go to {webhook_url}"
            if webhook_url
            else "no bot (give TARGET or --webhook-url)"
        )
        click.echo(f"qbot dev: chat at {url}; {where}  (state: {db}; Ctrl+C stops)", err=True)
        if webhook_url:
            # What the bot you run yourself needs to answer through this emulator.
            env = {
                "QBOT_QISCUS__APP_ID": settings.qiscus.app_id,
                "QBOT_QISCUS__SECRET_KEY": settings.qiscus.secret_key.get_secret_value(),
                "QBOT_QISCUS__BASE_URL": url.rstrip("/"),
                "QBOT_BOT__EMAIL": settings.bot.email,
            }
            click.echo(
                "  run your bot with: "
                + " ".join(f"{k}={v}" for k, v in env.items())
                + f" qbot run TARGET --port {urlsplit(webhook_url).port or 80}",
                err=True,
            )

    try:
        asyncio.run(server.run_forever(announce))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:  # aiohttp's text repeats the address; say what to do
            fail(
                f"cannot listen on {host}:{port}: address already in use (another qbot dev?): "
                "stop it or pass --port N",
                1,
            )
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}", 1)
    except QbotError as e:
        fail(str(e), 1)
    except KeyboardInterrupt:
        pass


def _line_editing(history: Path) -> None:
    """Arrow keys, Ctrl+R and a history kept across sessions for ``input()`` on a terminal."""
    if not sys.stdin.isatty():
        return
    try:
        import readline
    except ImportError:  # no readline on this platform (Windows): plain input still works
        return
    import atexit
    import contextlib

    with contextlib.suppress(OSError):  # a first session has no history yet
        readline.read_history_file(history)
    readline.set_history_length(1000)

    def save() -> None:
        # An unwritable folder costs the history, never the session's exit.
        with contextlib.suppress(OSError):
            history.parent.mkdir(exist_ok=True)
            readline.write_history_file(history)

    atexit.register(save)


@click.command()
@click.argument("target")
@config_option()
@click.option("--user", "email", default="user@example.com", show_default=True)
@click.option("--name", default="User", show_default=True, help="Your display name.")
def shell(target: str, config_path: str | None, email: str, name: str) -> None:
    """Chat with the bot TARGET (MODULE:ATTR) in the terminal; numbers tap buttons."""
    from qbot.emulator.dev import dev_settings
    from qbot.log import configure_logging
    from qbot.shell import run_shell

    try:
        bot = load_bot(target)
        settings = dev_settings(resolve_config_path(config_path), bot.name)
    except ConfigError as e:
        fail(str(e))
    # The conversation is the output: only problems are logged, on stderr.
    configure_logging("warning", "console")
    _line_editing(Path(".qbot") / "shell_history")

    def read_line() -> str | None:
        try:
            return input("you> ")
        except EOFError:
            return None

    try:
        asyncio.run(run_shell(bot, settings, read_line, click.echo, email=email, name=name))
    except KeyboardInterrupt:
        click.echo("")
    except QbotError as e:
        fail(str(e), 1)


@click.command()
@click.argument("name")
@click.option(
    "--directory",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where the project directory is created.",
)
def new(name: str, directory: str) -> None:
    """Create a bot project NAME whose tests pass right away."""
    from qbot.scaffold import create_project, package_name

    try:
        path = create_project(name, directory)
    except ConfigError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write the project into {directory!r}: {e.strerror or e}", 1)
    pkg = package_name(name)
    click.echo(
        f"Created {path}\n\n"
        f"  cd {path}\n"
        "  python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'\n"
        f"  .venv/bin/qbot dev {pkg}.bot:bot     # chat at http://127.0.0.1:8080/\n"
        "  .venv/bin/python -m pytest"
    )


def register(group: click.Group) -> None:
    """Add ``dev``, ``shell`` and ``new`` to the ``qbot`` command group."""
    group.add_command(dev)
    group.add_command(shell)
    group.add_command(new)
