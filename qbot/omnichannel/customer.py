"""``ctx.customer``: the customer of an Omnichannel room, read and written at the desk."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qbot.omnichannel.client import OmnichannelClient
    from qbot.omnichannel.models import RoomTag

__all__ = ["Customer"]


class Customer:
    """The room's customer as the agent desk knows them (``ctx.customer``).

    Each call goes to Omnichannel at once (not through the outbox) and raises the client's
    errors (`qbot.errors.QiscusError`) when it fails.
    """

    def __init__(self, client: OmnichannelClient, room_id: str) -> None:
        self.client = client
        self.room_id = room_id

    async def properties(self) -> dict[str, Any]:
        """The room's additional info (customer properties) as a dict."""
        return await self.client.user_info(self.room_id)

    async def update(self, **properties: Any) -> dict[str, Any]:
        """Merge ``properties`` into what the desk has (the API replaces the list); the result."""
        return await self.client.update_user_info(self.room_id, **properties)

    async def tag(self, *tags: str) -> list[RoomTag]:
        """Add tags to the room (``"vip"``...); the tags created."""
        return [await self.client.add_room_tag(self.room_id, tag) for tag in tags]

    def __repr__(self) -> str:
        return f"<Customer room={self.room_id!r}>"
