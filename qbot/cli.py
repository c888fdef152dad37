"""The ``qbot`` command.

Every failure a user can cause (bad target, missing or invalid config, unreachable Qiscus) prints
one ``error: ...`` line and exits non-zero (2 for usage and configuration), never a traceback.
The plumbing the commands share lives in ``qbot._cli_common``; each ``qbot/_cli_*.py`` module
adds its commands with ``register(main)``.
"""

from __future__ import annotations

import asyncio
import gc
from typing import TYPE_CHECKING, Any

import click
import structlog

from qbot._cli_common import (
    OneLineGroup,
    config_option,
    describe_qiscus_error,
    fail,
    load_bot,
    load_target,
    quiet_logging,
    settings_from,
)
from qbot.errors import (
    ConfigError,
    QbotError,
    QiscusAPIError,
    QiscusNetworkError,
    StartupError,
)

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.config import Settings

__all__ = ["fail", "load_bot", "load_target", "main"]


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qbot", prog_name="qbot")
def main() -> None:
    """qbot: build and serve chatbots on Qiscus."""


def _webhook_url(settings: Settings) -> str:
    s = settings.server
    return f"http://{s.host}:{s.port}{s.webhook_path}"


def _warn_placeholders(settings: Settings) -> None:
    for key in settings.placeholder_secrets():
        structlog.get_logger().warning(
            "config.placeholder_secret",
            key=key,
            hint="set a real value before the bot faces the Internet",
        )


def _parse_workers(value: str) -> int | str:
    """``--workers``: ``auto`` or a whole number from 1 to MAX_WORKERS (else one error line)."""
    from qbot.config import MAX_WORKERS

    text = value.strip().lower()
    if text == "auto":
        return "auto"
    if not (text.isdigit() and 1 <= int(text) <= MAX_WORKERS):
        fail(f"--workers must be 'auto' or a whole number from 1 to {MAX_WORKERS}, got {value!r}")
    return int(text)


@main.command()
@click.argument("target")
@config_option()
@click.option("--host", default=None, help="Overrides server.host.")
@click.option("--port", type=int, default=None, help="Overrides server.port.")
@click.option(
    "--workers",
    "workers_option",
    default=None,
    metavar="N|auto",
    help="Processes serving the port (auto: one per core). Overrides server.workers.",
)
@click.option("--worker-fds", default=None, hidden=True)  # a worker of the supervisor: its fds
def run(
    target: str,
    config_path: str | None,
    host: str | None,
    port: int | None,
    workers_option: str | None,
    worker_fds: str | None,
) -> None:
    """Serve the bot TARGET (MODULE:ATTR, e.g. bots.demo:bot) as a Qiscus webhook."""
    from qbot.log import configure_logging
    from qbot.server import create_app

    server: dict[str, Any] = {}
    if host is not None:
        server["host"] = host
    if port is not None:
        server["port"] = port
    if workers_option is not None:
        server["workers"] = _parse_workers(workers_option)
    try:
        # The target first: a typo in it is the error to see, even before any config exists.
        bot = load_bot(target)
        settings = settings_from(config_path, **({"server": server} if server else {}))
        configure_logging(settings.log.level, settings.log.format)
        bot.configure(settings)
        app = create_app(bot, settings)
    except ConfigError as e:
        fail(str(e))
    _warn_placeholders(settings)
    count = settings.server.worker_count()
    if worker_fds is None and count > 1:
        _supervise(target, config_path, host, port, settings, bot.name, count)
        return
    _serve(app, settings, bot.name, worker_fds)


def _serve(app: Any, settings: Settings, name: str, worker_fds: str | None) -> None:
    """Serve ``app`` in this process (``qbot run``, or one worker of ``--workers``)."""
    import socket

    from qbot.server import run_server
    from qbot.workers import serve_as_worker

    url = _webhook_url(settings)
    sock: socket.socket | None = None
    supervised = None
    if worker_fds is not None:
        try:
            listen_fd, control_fd = (int(fd) for fd in worker_fds.split(","))
            sock = socket.socket(fileno=listen_fd)
            supervised = serve_as_worker(control_fd)
        except (ValueError, OSError):
            fail("--worker-fds is for the workers `qbot run --workers N` starts; use --workers")

    def listening() -> None:
        # Called once the socket is bound: the line is true when it appears.
        structlog.get_logger().info("server.listening", url=url, bot=name)
        if supervised is None:  # the supervisor says it once for all its workers
            click.echo(f"qbot: serving {name} on {url} (Ctrl+C stops)")

    # What is loaded by now (modules, the bot and its handlers) lives as long as the process:
    # frozen out of the collector's sight, each full collection under load scans only what
    # the messages allocate (measured: -120 us of CPU per message on SQLite, bench/RESULTS.md).
    gc.collect()
    gc.freeze()
    try:
        run_server(app, settings, ready=listening, sock=sock, supervised=supervised)
    except StartupError as e:  # a startup hook failed: nothing is served
        fail(str(e), 1)
    except QbotError as e:  # raised while starting: the storage cannot be opened, ...
        fail(f"cannot start: {e}", 1)
    except OSError as e:
        if e.filename is not None:  # a file, not the socket
            fail(f"cannot start: {e.strerror}: {e.filename!r}", 1)
        fail(f"cannot listen on {settings.server.host}:{settings.server.port}: {e.strerror}", 1)


def _supervise(
    target: str,
    config_path: str | None,
    host: str | None,
    port: int | None,
    settings: Settings,
    name: str,
    count: int,
) -> None:
    """``qbot run --workers N``: bind once, run N workers on the socket (``qbot.workers``)."""
    import sys

    from qbot._cli_common import resolve_config_path
    from qbot.workers import Supervisor, WorkerFailed, listen_socket

    if sys.platform == "win32":
        fail("--workers needs a POSIX system (Linux, macOS); run one process per port on Windows")
    url = settings.storage.served_url()
    if url.startswith("memory:"):
        fail(
            f"storage.url memory:// lives in one process and cannot be shared by {count} workers:"
            " use sqlite:///... or redis://... (QBOT_STORAGE__URL), or --workers 1"
        )
    s = settings.server
    try:
        sock = listen_socket(s.host, s.port)
    except OSError as e:
        fail(f"cannot listen on {s.host}:{s.port}: {e.strerror}", 1)
    bound = sock.getsockname()[1]
    config = resolve_config_path(config_path)

    def command(listen_fd: int, control_fd: int) -> list[str]:
        argv = [sys.executable, "-m", "qbot.cli", "run", target, "--workers", "1"]
        argv += ["--worker-fds", f"{listen_fd},{control_fd}", "--port", str(bound)]
        if config is not None:
            argv += ["--config", config]
        if host is not None:
            argv += ["--host", host]
        return argv

    shown = f"[{s.host}]" if ":" in s.host else s.host
    where = f"http://{shown}:{bound}{s.webhook_path}"

    def ready() -> None:
        click.echo(f"qbot: serving {name} on {where} with {count} workers (Ctrl+C stops)")

    supervisor = Supervisor(command, count, sock, shutdown_timeout=s.shutdown_timeout, ready=ready)
    try:
        code = asyncio.run(supervisor.run())
    except WorkerFailed as e:
        fail(f"cannot start: {e}", 1)
    except KeyboardInterrupt:  # before the loop took the signal over: the workers drain alone
        fail("interrupted while starting the workers", 130)
    finally:
        sock.close()
    if code != 0:
        sys.exit(code)


def _describe_bot(target: str, bot: Bot) -> str:
    kinds: dict[str, int] = {}
    for handler in bot.iter_handlers():
        kinds[handler.kind] = kinds.get(handler.kind, 0) + 1
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "no"
    fallback = "a fallback" if bot.find_fallback() is not None else "no fallback"
    return f"ok: bot {bot.name!r} from {target}: {counts} handlers, {fallback}"


def _reach_qiscus(settings: Settings) -> str:
    """Call Qiscus once (read-only) and say what it answered; one line and exit 1 if it fails."""
    from qbot.client import QiscusClient

    quiet_logging(settings)  # only the final error line speaks; retries when debugging
    client = QiscusClient.from_settings(settings)

    async def call() -> int:
        async with client:
            rooms = await client.get_user_rooms(settings.bot.email)
        return rooms.meta.total_room

    try:
        total = asyncio.run(call())
    except (QiscusAPIError, QiscusNetworkError) as e:
        fail(describe_qiscus_error(e, client), 1)
    return (
        f"ok: Qiscus at {client.base_url} accepted app {client.app_id!r}; bot "
        f"{settings.bot.email!r} is in {total} room{'s' * (total != 1)}"
    )


@main.command("check-config")
@config_option()
@click.option("--target", default=None, help="Also import MODULE:ATTR and check its handlers.")
@click.option(
    "--online", is_flag=True, help="Also call Qiscus: the URL answers, the secret key is accepted."
)
def check_config(config_path: str | None, target: str | None, online: bool) -> None:
    """Validate the configuration (and optionally the bot) without starting anything.

    Placeholder secrets (change-me, the example config's values, empty) are not ok.
    """
    try:
        bot = load_bot(target) if target is not None else None  # as `run`: the target first
        settings = settings_from(config_path)
        if bot is not None:
            bot.configure(settings)
    except ConfigError as e:
        fail(str(e))
    placeholders = settings.placeholder_secrets()
    if placeholders:
        keys = ", ".join(placeholders)
        fail(f"placeholder secret in {keys}: set a real value (e.g. QBOT_QISCUS__SECRET_KEY)")
    reached = _reach_qiscus(settings) if online else None
    click.echo(
        f"ok: app {settings.qiscus.app_id!r} at {settings.qiscus.base_url} (API v"
        f"{settings.qiscus.api_version}), bot {settings.bot.email!r}, webhook "
        f"{_webhook_url(settings)}"
    )
    if bot is not None and target is not None:
        click.echo(_describe_bot(target, bot))
    if reached is not None:
        click.echo(reached)


def _register_subcommands() -> None:
    # Command groups that live in their own modules (each adds itself to `main`).
    from qbot import (
        _cli_admin,
        _cli_broadcast,
        _cli_dev,
        _cli_intents,
        _cli_omnichannel,
        _cli_scheduled,
        _cli_state,
        _cli_templates,
    )

    _cli_admin.register(main)
    _cli_broadcast.register(main)
    _cli_dev.register(main)
    _cli_intents.register(main)
    _cli_omnichannel.register(main)
    _cli_state.register(main)
    _cli_scheduled.register(main)
    _cli_templates.register(main)


_register_subcommands()

if __name__ == "__main__":
    main()
