"""``qbot handoffs list`` and ``qbot handoffs end ROOM_ID``: the rooms a human agent took over.

``register(main)`` adds the group to the ``qbot`` command. The commands open the storage the bot
uses: ``--storage URL``, else ``storage.url`` from the config file (``--config``, else
``./config.yaml`` when present) or ``QBOT_STORAGE__URL``, else ``qbot run``'s default
``sqlite:///.qbot/qbot.db``. Only this section of the config is read, so no Qiscus credentials
are needed. Failures print one ``error: ...`` line and exit non-zero.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

import click
from pydantic import ValidationError

from qbot._cli_common import DEFAULT_CONFIG, config_option, fail, resolve_config_path
from qbot.config import StorageSettings, read_yaml
from qbot.errors import ConfigError, StorageError
from qbot.storage import Handoff, open_storage
from qbot.storage.sqlite import SqliteStorage

__all__ = ["register"]


def storage_url(config_path: str | None, override: str | None) -> str:
    """The storage URL the commands open (see the module docstring).

    Raises:
        ConfigError: the config file is unreadable or its ``storage`` section is invalid.
    """
    if override:
        return override
    if path := os.environ.get("QBOT_STORAGE__URL"):
        return path
    config_path = resolve_config_path(config_path)
    data = read_yaml(config_path) if config_path is not None else {}
    section = data.get("storage") or {}
    try:
        return StorageSettings.model_validate(section).served_url()
    except ValidationError as e:
        where = f"in {config_path!r}" if config_path else ""
        raise ConfigError(f"invalid storage section {where}: {e.errors()[0]['msg']}") from None


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


async def _list(url: str) -> list[Handoff]:
    async with open_storage(url) as storage:
        return await storage.handoff_list()


async def _end(url: str, room_id: str) -> bool:
    async with open_storage(url) as storage:
        return await storage.handoff_end(room_id)


def _url(config_path: str | None, override: str | None) -> str:
    try:
        url = storage_url(config_path, override)
    except ConfigError as e:
        fail(str(e))
    if url.lower().startswith("memory://"):
        fail(
            "storage.url is memory://, which no other process can see: pass --storage with "
            "the SQLite or Redis URL the bot runs on"
        )
    _check_sqlite_file(url)
    return url


def _check_sqlite_file(url: str) -> None:
    """A SQLite file that is not there is a wrong folder or URL, not an empty storage: opening
    it would create an empty database (and say nothing is scheduled or handed off)."""
    try:
        storage = open_storage(url)  # not connected: only the URL is read
    except StorageError:
        return  # a malformed URL: reported when the command opens it
    if not isinstance(storage, SqliteStorage) or storage.path == ":memory:":
        return
    if not Path(storage.path).is_file():
        fail(
            f"no storage file {storage.path!r} ({url}): run this in the bot's folder or pass "
            "--storage with the bot's storage.url (qbot dev's is "
            "sqlite:///.qbot/emulator-bot.sqlite3)",
            1,
        )


_config = config_option(
    f"YAML config file whose storage.url is used (default: ./{DEFAULT_CONFIG} if present)."
)
_storage = click.option(
    "--storage", "storage", default=None, help="Storage URL (overrides the config)."
)


@click.group()
def handoffs() -> None:
    """Rooms where a human agent took over from the bot."""


@handoffs.command("list")
@_config
@_storage
def list_handoffs(config_path: str | None, storage: str | None) -> None:
    """List the rooms in handoff, oldest first."""
    url = _url(config_path, storage)
    try:
        found = asyncio.run(_list(url))
    except StorageError as e:
        fail(str(e), 1)
    if not found:
        click.echo("No room is handed off: the bot answers everywhere.")
        return
    click.echo(f"{'ROOM':<20} {'SINCE':<21} {'UNTIL':<21} REASON")
    for h in found:
        click.echo(
            f"{h.room_id:<20} {_when(h.started_at):<21} {_when(h.expires_at):<21} {h.reason}"
        )


@handoffs.command("end")
@click.argument("room_id")
@_config
@_storage
def end_handoff(room_id: str, config_path: str | None, storage: str | None) -> None:
    """Give ROOM_ID back to the bot."""
    url = _url(config_path, storage)
    try:
        ended = asyncio.run(_end(url, room_id))
    except StorageError as e:
        fail(str(e), 1)
    if not ended:
        fail(f"room {room_id!r} is not handed off (see 'qbot handoffs list')", 1)
    click.echo(f"Room {room_id} is back with the bot.")


def register(group: click.Group) -> None:
    """Add ``handoffs`` to the ``qbot`` command group."""
    group.add_command(handoffs)
