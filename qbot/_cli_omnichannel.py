"""``qbot omnichannel``: look at the Omnichannel desk (agents, divisions, rooms) from a terminal.

``register(main)`` adds the group to the ``qbot`` command. The commands read the same config as
``qbot run`` (``--config``, else ``./config.yaml`` when present, ``QBOT_*`` on top) and call
Omnichannel with `OmnichannelClient.from_settings`. Failures print one ``error: ...`` line: exit
1 when Omnichannel refused or could not be reached, 2 for usage and configuration.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

import click

from qbot._cli_common import config_option, quiet_logging
from qbot.config import Settings, load_settings
from qbot.errors import (
    ConfigError,
    QiscusAPIError,
    QiscusError,
    QiscusNetworkError,
    QiscusUnauthorized,
)
from qbot.omnichannel.client import OmnichannelClient
from qbot.omnichannel.models import Agent, CustomerRoom

__all__ = ["register"]

DEFAULT_CONFIG = "config.yaml"
STATUSES = click.Choice(["unresolved", "resolved", "all"])


class _RoomId(click.ParamType[str]):
    """A Qiscus room id: digits (the desk answers 404 to anything else, after a network call)."""

    name = "room_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        if not text.isascii() or not text.isdigit():
            self.fail(f"{value!r} is not a room id (Qiscus room ids are digits)", param, ctx)
        return text


ROOM_ID = _RoomId()


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _describe(error: QiscusError, client: OmnichannelClient) -> str:
    """One line that says what went wrong and what to do about it."""
    if isinstance(error, QiscusUnauthorized):
        return (
            f"Omnichannel rejected the credentials (401) for app {client.app_code!r} at "
            f"{client.base_url}: check qiscus.secret_key and omnichannel.app_code"
        )
    if isinstance(error, QiscusAPIError):
        return f"Omnichannel refused ({error.status}) on {error.endpoint}: {error.message}"
    if isinstance(error, QiscusNetworkError):
        return f"{error}; check omnichannel.base_url and the network"
    return str(error)


def _run(
    config_path: str | None,
    work: Callable[[OmnichannelClient], Awaitable[None]],
    check: Callable[[Settings], None] | None = None,
) -> None:
    """Load settings, open a client, run ``work`` and turn every failure into one line.

    ``check`` sees the settings first and may raise `ConfigError` (exit 2).
    """
    if config_path is None and Path(DEFAULT_CONFIG).is_file():
        config_path = DEFAULT_CONFIG
    try:
        settings = load_settings(config_path)
        quiet_logging(settings)  # one error line; retries are logged only when debugging
        if check is not None:
            check(settings)
        client = OmnichannelClient.from_settings(settings)
    except ConfigError as e:
        _fail(str(e), 2)

    async def main() -> None:
        async with client:
            await work(client)

    try:
        asyncio.run(main())
    except ConfigError as e:
        _fail(str(e), 2)
    except QiscusError as e:
        _fail(_describe(e, client), 1)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Columns padded to their widest cell; ``-`` for a missing value."""
    cells = [[("-" if v is None or v == "" else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    for row in [list(header), *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _yes_no(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


def _agent_rows(agents: Sequence[Agent]) -> list[list[Any]]:
    return [
        [
            a.id,
            a.name,
            a.email,
            _yes_no(a.is_available),
            a.current_customer_count,
            ", ".join(d.name for d in a.user_roles),
        ]
        for a in agents
    ]


def _status(room: CustomerRoom) -> str:
    if room.is_resolved:
        return "resolved"
    if room.is_handled_by_bot:
        return "bot"
    agents = room.model_extra.get("agents") if room.model_extra else None
    if isinstance(agents, list) and agents:
        names = [str(a.get("name") or a.get("email")) for a in agents if isinstance(a, dict)]
        return "agent: " + ", ".join(names)
    return "waiting" if room.is_waiting else "open"


_config_option = config_option()


def register(group: click.Group) -> None:
    """Add ``omnichannel agents|divisions|rooms|connect`` to ``group``."""

    @group.group("omnichannel")
    def omnichannel() -> None:
        """The Qiscus Omnichannel desk: agents, divisions and customer rooms."""

    @omnichannel.command("agents")
    @click.option("--division", default=None, help="Only this division (a name or an id).")
    @click.option("--available", is_flag=True, help="Only agents available now.")
    @click.option("--search", default=None, help="Agents whose name or email contains this.")
    @_config_option
    def agents(
        division: str | None, available: bool, search: str | None, config_path: str | None
    ) -> None:
        """List the desk's agents, with how many customers each serves."""

        async def work(client: OmnichannelClient) -> None:
            if division is not None:
                found = await client.division(division)
                listed = await client.agents_by_division(
                    found.id, is_available=True if available else None, sort="asc"
                )
            else:
                listed = await client.agents(search=search, limit=100)
                if available:
                    listed = [a for a in listed if a.is_available]
            if search is not None and division is not None:
                text = search.casefold()
                listed = [a for a in listed if text in f"{a.name} {a.email}".casefold()]
            header = ["id", "name", "email", "available", "customers", "divisions"]
            _table(header, _agent_rows(listed))

        _run(config_path, work)

    @omnichannel.command("divisions")
    @_config_option
    def divisions(config_path: str | None) -> None:
        """List the desk's divisions (hand rooms to one with ctx.handoff(division=...))."""

        async def work(client: OmnichannelClient) -> None:
            _table(["id", "name"], [[d.id, d.name] for d in await client.divisions()])

        _run(config_path, work)

    @omnichannel.command("rooms")
    @click.argument("room_ids", nargs=-1, type=ROOM_ID)
    @click.option("--status", type=STATUSES, default="unresolved", show_default=True)
    @click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
    @_config_option
    def rooms(room_ids: tuple[str, ...], status: str, limit: int, config_path: str | None) -> None:
        """List customer rooms and who handles each (bot, waiting, an agent, resolved).

        With ROOM_IDS, show those rooms only.
        """

        async def work(client: OmnichannelClient) -> None:
            if room_ids:
                found = [await client.customer_room(r) for r in room_ids]
            else:
                wanted: Any = None if status == "all" else status
                found = await client.customer_rooms(status=wanted, limit=limit)
            rows = [[r.room_id, r.name, r.source, _status(r)] for r in found]
            _table(["room", "name", "channel", "status"], rows)

        _run(config_path, work)

    @omnichannel.command("connect")
    @click.option(
        "--url",
        required=True,
        help="Where `qbot run` is reached from the internet, e.g. https://bot.example.com.",
    )
    @_config_option
    def connect(url: str, config_path: str | None) -> None:
        """Register the bot webhook and the resolved webhook of the app at Omnichannel.

        The bot webhook is URL + server.webhook_path; the resolved webhook is the same path
        + /resolved, with ?token=omnichannel.webhook_token when it is set.
        """
        base = url.strip().rstrip("/")
        urls: dict[str, str] = {}

        def check(settings: Settings) -> None:
            parts = urlsplit(base)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    f"--url {url!r} must be an http(s) URL like https://bot.example.com"
                )
            path = settings.server.webhook_path.rstrip("/")
            token = settings.omnichannel.webhook_token
            query = f"?{urlencode({'token': token.get_secret_value()})}" if token else ""
            urls["bot"] = f"{base}{path}"
            urls["resolved"] = f"{base}{path}/resolved{query}"
            urls["shown"] = f"{base}{path}/resolved" + ("?token=***" if token else "")

        async def work(client: OmnichannelClient) -> None:
            await client.set_bot_webhook(urls["bot"])
            await client.set_resolved_webhook(urls["resolved"])
            click.echo(f"bot webhook:      {urls['bot']}")
            click.echo(f"resolved webhook: {urls['shown']}")

        _run(config_path, work, check)
