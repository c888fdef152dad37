"""``qbot templates list``: the app's approved WhatsApp templates, from a terminal.

It reads the same config as ``qbot run`` and calls `OmnichannelClient.templates` (Omnichannel's
``GET /api/v2/admin/hsm``). One row per template and language: name, language, category,
variables count and the body; ``--json`` prints the same as a JSON list. Failures print one
``error: ...`` line (exit 1 when Omnichannel refused or could not be reached, 2 for
configuration).
"""

from __future__ import annotations

import click

from qbot._cli_common import config_option
from qbot._cli_omnichannel import _run, _table
from qbot._json import dumps_text
from qbot.errors import ConfigError
from qbot.omnichannel.client import OmnichannelClient
from qbot.omnichannel.templates import ApprovedTemplate

__all__ = ["register"]

BODY_WIDTH = 60
"""Characters of a body shown in the table (``--json`` has them all)."""

_config_option = config_option()


def _rows(templates: list[ApprovedTemplate]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for template in templates:
        for content in template.hsm_details or []:
            rows.append(
                {
                    "name": template.name,
                    "language": content.language,
                    "category": template.category,
                    "variables": content.variables,
                    "header": content.header_content,
                    "body": content.content,
                    "footer": content.footer,
                    "quick_replies": content.quick_replies,
                    "namespace": template.namespace,
                    "status": (template.model_extra or {}).get("status"),
                }
            )
    return rows


def _short(text: object) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= BODY_WIDTH else flat[: BODY_WIDTH - 1] + "…"


async def _known_channel(client: OmnichannelClient, channel_id: str) -> None:
    """Raise `ConfigError` naming the app's channels when ``channel_id`` is not one of them."""
    channels = (await client.channels()).wa_channels
    if not any(str(c.id) == channel_id for c in channels):
        ids = ", ".join(f"{c.id} ({c.name})" for c in channels) or "none"
        raise ConfigError(f"the app has no WhatsApp channel {channel_id} (its channels: {ids})")


def register(group: click.Group) -> None:
    """Add ``templates list`` to ``group``."""

    @group.group("templates")
    def templates() -> None:
        """The app's WhatsApp message templates (sent with ctx.send_template)."""

    @templates.command("list")
    @click.option("--all", "everything", is_flag=True, help="Also templates not approved yet.")
    @click.option("--channel", "channel_id", default=None, help="Only this WhatsApp channel id.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    @_config_option
    def list_templates(
        everything: bool, channel_id: str | None, as_json: bool, config_path: str | None
    ) -> None:
        """List the approved templates: name, language, category, variables and body."""

        async def work(client: OmnichannelClient) -> None:
            found: list[ApprovedTemplate] = []
            for page in range(1, 51):
                batch = await client.templates(
                    channel_id=channel_id, approved=None if everything else True, page=page
                )
                found.extend(batch)
                if len(batch) < 100:
                    break
            if not found and channel_id is not None:
                await _known_channel(client, channel_id)  # else "no templates" hid a typo
            rows = _rows(found)
            if as_json:
                click.echo(dumps_text(rows, indent=True))
                return
            if not rows:
                click.echo("no approved templates" if not everything else "no templates")
                return
            header = ["name", "language", "category", "variables", "body"]
            cells = [
                [r["name"], r["language"], r["category"], r["variables"], _short(r["body"])]
                for r in rows
            ]
            _table(header, cells)

        _run(config_path, work)
