"""Admin commands of ``qbot``: backups, imports, users, rooms and sending, over `QiscusClient`.

``register(main)`` adds them to the ``qbot`` click group. Each command reads the same config as
``qbot run`` (``--config``, else ``./config.yaml`` when present, with ``QBOT_*`` on top). Failures
print one ``error: ...`` line on stderr: exit 1 when Qiscus refused or could not be reached, 2 for
usage, configuration and invalid import files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from qbot._cli_common import (
    config_option,
    describe_qiscus_error,
    fail,
    quiet_logging,
    settings_from,
)
from qbot.client import QiscusClient
from qbot.config import Settings
from qbot.errors import ConfigError, ImportFileError, QiscusAPIError, QiscusNetworkError
from qbot.imports import (
    MAX_IMPORT_BYTES,
    ImportType,
    read_import_file,
    reference_values,
    split_rows,
    validate_rows,
)
from qbot.models.api import Export, Import

__all__ = ["register"]

F = TypeVar("F", bound=Callable[..., Any])
RESOURCES = click.Choice(["users", "rooms", "comments"])
DAY = click.DateTime(formats=["%Y-%m-%d"])


class _Abort(Exception):
    """A failure already phrased for the user, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _run(
    config_path: str | None, work: Callable[[QiscusClient, Settings], Awaitable[None]]
) -> None:
    """Load settings, open a client, run ``work`` and turn every failure into one line."""
    try:
        settings = settings_from(config_path)
        client = QiscusClient.from_settings(settings)
    except ConfigError as e:
        fail(str(e), 2)
    quiet_logging(settings)  # the final error says what happened; retries only when debugging

    async def main() -> None:
        async with client:
            await work(client, settings)

    try:
        asyncio.run(main())
    except _Abort as e:
        fail(str(e), e.code)
    except (ImportFileError, ConfigError) as e:
        fail(str(e), 2)
    except (QiscusAPIError, QiscusNetworkError) as e:
        fail(describe_qiscus_error(e, client), 1)


def _poll_option(fn: F) -> F:
    return click.option("--poll-interval", type=float, default=2.0, show_default=True, hidden=True)(
        fn
    )


@contextmanager
def _progress(label: str, total: float) -> Iterator[Callable[[float], None]]:
    """A rich progress bar on stderr; yields ``advance_to(completed)``."""
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, console=console, transient=not console.is_terminal) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


def _export_line(e: Export) -> str:
    created = e.created_at.isoformat() if e.created_at else "-"
    return (
        f"{e.unique_id}  {e.resource_name or '-':<8}  {e.status or '-':<11}  "
        f"{e.percentage:>5g}%  {e.total_rows:>8} rows  {created}"
    )


def _import_line(i: Import) -> str:
    created = i.created_at.isoformat() if i.created_at else "-"
    error = f"  errors: {i.errors.message}" if i.errors and i.errors.message else ""
    return (
        f"{i.unique_id}  {i.resource_name or '-':<8}  {i.status or '-':<11}  "
        f"{i.total_rows:>8} rows  {i.original_filename or '-'}  {created}{error}"
    )


async def _follow_export(client: QiscusClient, export: Export, interval: float) -> Export:
    with _progress(f"export {export.resource_name}", 100) as advance_to:
        while not export.finished:
            if export.failed:
                raise _Abort(
                    f"export {export.unique_id} failed: {export.error_message or export.status}", 1
                )
            await asyncio.sleep(interval)
            export = await client.get_export(export.unique_id)
            advance_to(export.percentage)
    return export


async def _save_export(client: QiscusClient, export: Export, output: Path) -> None:
    data = await client.download_export(export)
    try:
        await asyncio.to_thread(output.write_bytes, data)
    except OSError as e:
        raise _Abort(f"cannot write {str(output)!r}: {e.strerror}", 2) from e
    click.echo(f"saved {export.total_rows} {export.resource_name} to {output} ({len(data)} bytes)")


async def _wait_import(client: QiscusClient, unique_id: str, interval: float) -> Import:
    while True:
        found = next((i for i in await client.list_imports() if i.unique_id == unique_id), None)
        if found is not None and found.failed:
            message = found.errors.message if found.errors else found.status
            raise _Abort(f"import {unique_id} failed: {message}", 1)
        if found is not None and found.finished:
            return found
        await asyncio.sleep(interval)


@click.command("export")
@click.argument("resource", type=RESOURCES)
@click.option("--from", "start", type=DAY, required=True, help="First day, YYYY-MM-DD.")
@click.option("--to", "end", type=DAY, default=None, help="Last day, YYYY-MM-DD (today).")
@click.option("--wait", is_flag=True, help="Follow the export and download it when done.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@_poll_option
@config_option()
def export(
    resource: str,
    start: datetime,
    end: datetime | None,
    wait: bool,
    output: Path | None,
    poll_interval: float,
    config_path: str | None,
) -> None:
    """Back up RESOURCE (comments, users or rooms) created between --from and --to.

    With --wait (implied by --output) follow the progress and save the JSON to --output
    (default: qiscus-RESOURCE-FROM-TO.json).
    """
    first, last = start.date(), (end.date() if end else date.today())
    if last < first:
        fail(f"--to {last} is before --from {first}", 2)

    async def work(client: QiscusClient, _: Settings) -> None:
        kind = cast(ImportType, resource)
        created = await client.create_export(kind, first, last)
        if not (wait or output):
            click.echo(
                f"export {created.unique_id} started; follow it with "
                f"'qbot exports show {created.unique_id}'"
            )
            return
        done = await _follow_export(client, created, poll_interval)
        target = output or Path(f"qiscus-{resource}-{first}-{last}.json")
        await _save_export(client, done, target)

    _run(config_path, work)


@click.group("exports")
def exports() -> None:
    """List, show and delete backups."""


@exports.command("list")
@click.option("--page", type=click.IntRange(min=1), default=None)
@config_option()
def exports_list(page: int | None, config_path: str | None) -> None:
    """List recent backups (20 per page), newest first."""

    async def work(client: QiscusClient, _: Settings) -> None:
        items = await client.list_exports(page)
        for item in items:
            click.echo(_export_line(item))
        if not items:
            click.echo("no exports", err=True)

    _run(config_path, work)


@exports.command("show")
@click.argument("unique_id")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Download the backup to this file when it is finished.",
)
@config_option()
def exports_show(unique_id: str, output: Path | None, config_path: str | None) -> None:
    """Show one backup's progress and download URL."""

    async def work(client: QiscusClient, _: Settings) -> None:
        item = await client.get_export(unique_id)
        click.echo(_export_line(item))
        if item.download_url:
            click.echo(f"download: {item.download_url}")
        if output is not None:
            if not item.finished:
                raise _Abort(f"export {unique_id} is {item.percentage:g}% done; try later", 1)
            await _save_export(client, item, output)

    _run(config_path, work)


@exports.command("delete")
@click.argument("unique_id")
@config_option()
def exports_delete(unique_id: str, config_path: str | None) -> None:
    """Delete one backup."""

    async def work(client: QiscusClient, _: Settings) -> None:
        item = await client.delete_export(unique_id)
        click.echo(f"deleted export {item.unique_id}")

    _run(config_path, work)


@click.command("import")
@click.argument("resource", type=RESOURCES)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--users",
    "users_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A users file (import or export) to check creators and participants.",
)
@click.option(
    "--rooms",
    "rooms_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A rooms file (import or export) to check comments' rooms.",
)
@click.option("--check", is_flag=True, help="Validate only; upload nothing.")
@click.option("--wait", is_flag=True, help="Wait until Qiscus has processed the last chunk.")
@_poll_option
@config_option()
def import_(
    resource: str,
    file: Path,
    users_file: str | None,
    rooms_file: str | None,
    check: bool,
    wait: bool,
    poll_interval: float,
    config_path: str | None,
) -> None:
    """Validate FILE against Qiscus's import rules, then upload it as RESOURCE.

    Every problem is listed with its row number; errors stop the upload. Files over 4 MB are
    split into chunks uploaded in order, each after the previous one finished.
    """
    kind = cast(ImportType, resource)
    try:
        rows = read_import_file(file)
        emails = reference_values(users_file, "Email", "email") if users_file else None
        rooms = reference_values(rooms_file, "UniqueId", "unique_id") if rooms_file else None
        problems = validate_rows(kind, rows, known_emails=emails, known_rooms=rooms)
    except ImportFileError as e:
        fail(str(e), 2)
    for problem in problems:
        click.echo(f"{file.name}: {problem}", err=True)
    errors = sum(p.severity == "error" for p in problems)
    if errors:
        fail(f"{file.name} has {errors} error(s) in {len(rows)} rows; nothing uploaded", 2)
    if check:
        click.echo(f"{file.name}: {len(rows)} {resource} rows are valid")
        return

    async def work(client: QiscusClient, _: Settings) -> None:
        size = (await asyncio.to_thread(file.stat)).st_size
        if size <= MAX_IMPORT_BYTES:
            chunks = [await asyncio.to_thread(file.read_bytes)]
        else:
            chunks = split_rows(rows)
        with _progress(f"import {resource}", len(chunks)) as advance_to:
            for n, chunk in enumerate(chunks, 1):
                name = file.name if len(chunks) == 1 else f"{file.stem}.part{n}{file.suffix}"
                job = await client.create_import(kind, chunk, filename=name)
                if n < len(chunks) or wait:
                    job = await _wait_import(client, job.unique_id, poll_interval)
                advance_to(n)
                click.echo(f"uploaded {name}: import {job.unique_id} {job.status}")
        if not wait:
            click.echo("follow the import with 'qbot imports list'")

    _run(config_path, work)


@click.group("imports")
def imports() -> None:
    """List imports."""


@imports.command("list")
@click.option("--page", type=click.IntRange(min=1), default=None)
@config_option()
def imports_list(page: int | None, config_path: str | None) -> None:
    """List recent imports (20 per page) and their status."""

    async def work(client: QiscusClient, _: Settings) -> None:
        items = await client.list_imports(page)
        for item in items:
            click.echo(_import_line(item))
        if not items:
            click.echo("no imports", err=True)

    _run(config_path, work)


@click.group("users")
def users() -> None:
    """Manage Qiscus users."""


@users.command("register")
@click.argument("email")
@click.argument("name")
@click.option("--avatar-url", default=None)
@click.option("--password", default=None, help="Set or update the user's password.")
@config_option()
def users_register(
    email: str, name: str, avatar_url: str | None, password: str | None, config_path: str | None
) -> None:
    """Create user EMAIL named NAME, or update it if it exists."""

    async def work(client: QiscusClient, _: Settings) -> None:
        user = await client.login_or_register(email, name, password, avatar_url)
        click.echo(f"registered {user.email} ({user.username}), id {user.id}")

    _run(config_path, work)


@click.group("rooms")
def rooms() -> None:
    """Manage Qiscus rooms."""


@rooms.command("create")
@click.argument("name")
@click.argument("emails", nargs=-1, required=True)
@click.option("--creator", default=None, help="Creator's email (default: the bot's).")
@config_option()
def rooms_create(
    name: str, emails: tuple[str, ...], creator: str | None, config_path: str | None
) -> None:
    """Create group room NAME with the users EMAILS."""

    async def work(client: QiscusClient, settings: Settings) -> None:
        room = await client.create_room(name, list(emails), creator or settings.bot.email)
        click.echo(
            f"created room {room.room_id} {room.room_name!r} with "
            f"{len(room.participants)} participants"
        )

    _run(config_path, work)


@click.command("send")
@click.argument("room_id")
@click.argument("text")
@config_option()
def send(room_id: str, text: str, config_path: str | None) -> None:
    """Post TEXT in room ROOM_ID as the configured bot (bot.email)."""
    if not text.strip():
        fail("TEXT is empty; Qiscus does not post empty comments", 2)
    if len(text) > 4000:
        fail(f"TEXT is {len(text)} characters; Qiscus accepts at most 4000", 2)

    async def work(client: QiscusClient, settings: Settings) -> None:
        target: int | str = int(room_id) if room_id.isdigit() else room_id
        comment = await client.post_comment(settings.bot.email, target, text)
        click.echo(f"sent comment {comment.id} to room {comment.room_id or room_id}")

    _run(config_path, work)


def register(group: click.Group) -> None:
    """Add the admin commands (export(s), import(s), users, rooms, send) to ``group``."""
    for command in (export, exports, import_, imports, users, rooms, send):
        group.add_command(command)
