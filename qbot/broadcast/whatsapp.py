"""`WhatsAppTemplate`: a broadcast's sender through Omnichannel's WhatsApp endpoint.

Before the first send it reads the approved template (``GET /api/v2/admin/hsm``): the template
must exist and be approved in every language the broadcast uses, the CSV must have one variable
column per placeholder of its body, and each row is checked against WhatsApp's limits with the
placeholders filled (`qbot.omnichannel.templates.Template.check`): a row over a limit is refused
with the reason, the others go. Each recipient is then sent one
``POST /whatsapp/v1/{app_code}/{channel_id}/messages``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from qbot.broadcast.journal import Entry
from qbot.broadcast.recipients import RecipientList
from qbot.errors import ConfigError, MessageBuildError
from qbot.omnichannel.models import Id
from qbot.omnichannel.templates import ApprovedTemplate, QuickReply, Template

if TYPE_CHECKING:
    from qbot.messages.postback import PostbackSigner
    from qbot.omnichannel.client import OmnichannelClient

__all__ = ["WhatsAppTemplate"]


class WhatsAppTemplate:
    """Sends one approved template, each recipient's variables filled in.

    Args:
        client: the Omnichannel client.
        name: the approved template's name.
        language: its language (a CSV ``language`` column overrides it per row).
        channel_id: the WhatsApp channel to send from; by default the app's one active
            WhatsApp channel (an app with several must say which).
        namespace: the template namespace; by default the approved template's.
        buttons: quick-reply buttons and what a tap does (their labels as approved).
        signer: signs the buttons' postbacks (the bot's ``postback.secret``).
    """

    def __init__(
        self,
        client: OmnichannelClient,
        name: str,
        *,
        language: str = "id",
        channel_id: Id | None = None,
        namespace: str | None = None,
        buttons: Sequence[QuickReply] = (),
        signer: PostbackSigner | None = None,
    ) -> None:
        if not name.strip():
            raise ConfigError("a broadcast needs a template name")
        self.client = client
        self.name = name.strip()
        self.language = language
        self.channel_id = channel_id
        self.namespace = namespace
        self.buttons = list(buttons)
        self.signer = signer
        self.approved: ApprovedTemplate | None = None

    def __repr__(self) -> str:
        return f"WhatsAppTemplate({self.name!r}, language={self.language!r})"

    async def check(self, recipients: RecipientList) -> dict[int, str]:
        """Read the approved template and check the CSV against it (see the module's doc).

        Returns:
            The rows refused by WhatsApp's limits, with the reason.

        Raises:
            ConfigError: no such approved template, not approved in the broadcast's language,
                a CSV with another number of variable columns, no (or an ambiguous) WhatsApp
                channel. A row whose own ``language`` is not approved is refused, not raised.
        """
        approved = await self.client.template(self.name)
        if approved is None:
            names = sorted(t.name for t in await self.client.templates())
            listed = ", ".join(names) or "none"
            raise ConfigError(
                f"the app has no approved WhatsApp template {self.name!r} (approved: {listed})"
            )
        self.approved = approved
        default = approved.content(self.language)
        if default is None:
            raise ConfigError(approved.not_approved(self.language))
        recipients.expect_variables(default.variables, self.name)
        refused: dict[int, str] = {}
        for recipient in recipients.accepted:  # a row's own language: that row is refused
            language = recipient.language or self.language
            content = approved.content(language)
            if content is None:
                refused[recipient.row] = approved.not_approved(language)
            elif content.variables != default.variables:
                refused[recipient.row] = (
                    f"template {self.name!r} takes {content.variables} variable(s) in "
                    f"{language!r}, the CSV has {default.variables}"
                )
        if self.namespace is None:
            self.namespace = approved.namespace
        if self.channel_id is None:
            self.channel_id = await self._channel()
        else:
            await self._known_channel(self.channel_id)
        for recipient in recipients.accepted:
            if recipient.row in refused:
                continue
            try:
                self._template(recipient.variables, recipient.language, recipient.header).check(
                    approved
                )
            except MessageBuildError as e:
                refused[recipient.row] = str(e)
        return refused

    async def _known_channel(self, channel_id: Id) -> None:
        """Refuse an unknown channel before any send: each send would be refused and journaled
        as done, so running again with the right channel would message nobody."""
        channels = (await self.client.channels()).wa_channels
        if any(str(c.id) == str(channel_id) for c in channels):
            return
        ids = ", ".join(f"{c.id} ({c.name})" for c in channels) or "none"
        raise ConfigError(f"the app has no WhatsApp channel {channel_id} (its channels: {ids})")

    async def _channel(self) -> Id:
        channels = [
            c for c in (await self.client.channels()).wa_channels if c.is_active is not False
        ]
        if len(channels) == 1:
            return channels[0].id
        if not channels:
            raise ConfigError("the app has no active WhatsApp channel to broadcast from")
        ids = ", ".join(f"{c.id} ({c.name})" for c in channels)
        raise ConfigError(f"the app has several WhatsApp channels ({ids}): pick one with --channel")

    def _template(
        self, variables: Sequence[str], language: str | None, header: str | None
    ) -> Template:
        return Template(
            self.name,
            language or self.language,
            variables,
            self.buttons,
            header=header,
            namespace=self.namespace,
        )

    async def send(self, entry: Entry) -> str:
        """Send the template to one recipient; WhatsApp's message id (``""`` if none said)."""
        if self.channel_id is None:
            self.channel_id = await self._channel()
        template = self._template(entry.variables, entry.language, entry.header)
        sent = await self.client.send_template(
            self.channel_id, entry.phone, template, signer=self.signer
        )
        return sent.message_id or ""
