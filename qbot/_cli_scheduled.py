"""``qbot scheduled list`` and ``qbot scheduled cancel ROOM_ID NAME``: the stored follow-ups.

They open the storage the bot runs on, found as for ``qbot handoffs`` (``--storage URL``, else
``storage.url`` of the config, ``QBOT_STORAGE__URL``, else ``sqlite:///.qbot/qbot.db``).
Failures print one ``error: ...`` line and exit non-zero.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import click

from qbot import _json
from qbot._cli_common import fail
from qbot._cli_state import _config, _storage, _url
from qbot.errors import StorageError
from qbot.storage import open_storage
from qbot.storage.schedule import Job

__all__ = ["register"]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _as_json(job: Job) -> dict[str, Any]:
    origin = job.origin if isinstance(job.origin, dict) else {}
    sender = origin.get("from") or {}
    return {
        "room_id": job.room_id,
        "name": job.name,
        "id": job.id,
        "due_at": _when(job.due_at),
        "due_ts": job.due_at,
        "scheduled_at": _when(job.created_at),
        "state": "fired" if job.fired else "waiting",
        "cancel_on_reply": job.cancel_on_reply,
        "sender": sender.get("email") or None,
        "data": job.data,
    }


async def _list(url: str, room: str | None) -> list[Job]:
    async with open_storage(url) as storage:
        return await storage.schedule_list(room)


async def _cancel(url: str, room: str, name: str) -> list[str]:
    async with open_storage(url) as storage:
        return await storage.schedule_cancel(room, name)


@click.group()
def scheduled() -> None:
    """Follow-ups the bot scheduled (ctx.schedule), soonest due first."""


@scheduled.command("list")
@click.option("--room", "room", default=None, help="Only this room's jobs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
@_config
@_storage
def list_scheduled(
    room: str | None, as_json: bool, config_path: str | None, storage: str | None
) -> None:
    """List the scheduled jobs (waiting, or fired and about to run)."""
    url = _url(config_path, storage)
    if room is not None and not room.strip():
        fail("--room must not be empty")
    try:
        jobs = asyncio.run(_list(url, room))
    except StorageError as e:
        fail(str(e), 1)
    if as_json:
        click.echo(_json.dumps_text([_as_json(j) for j in jobs]))
        return
    if not jobs:
        click.echo("No scheduled job" + (f" in room {room}." if room else "."))
        return
    click.echo(f"{'ROOM':<20} {'NAME':<20} {'DUE (UTC)':<21} {'STATE':<8} {'REPLY':<6} DATA")
    for j in jobs:
        data = _json.dumps_text(j.data)
        data = data if len(data) <= 60 else data[:57] + "..."
        cancel = "cancel" if j.cancel_on_reply else "-"
        state = "fired" if j.fired else "waiting"
        click.echo(
            f"{j.room_id:<20} {j.name:<20} {_when(j.due_at):<21} {state:<8} {cancel:<6} {data}"
        )


@scheduled.command("cancel")
@click.argument("room_id")
@click.argument("name")
@_config
@_storage
def cancel_scheduled(room_id: str, name: str, config_path: str | None, storage: str | None) -> None:
    """Cancel ROOM_ID's job NAME (a fired one is dropped when its turn comes)."""
    url = _url(config_path, storage)
    try:
        names = asyncio.run(_cancel(url, room_id, name))
    except StorageError as e:
        fail(str(e), 1)
    if not names:
        fail(f"room {room_id!r} has no job {name!r} (see 'qbot scheduled list')", 1)
    click.echo(f"Cancelled {name} in room {room_id}.")


def register(group: click.Group) -> None:
    """Add ``scheduled`` to the ``qbot`` command group."""
    group.add_command(scheduled)
