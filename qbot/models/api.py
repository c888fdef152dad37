"""Typed results of the Qiscus server REST API (``shared/qiscus/rest-api-v2.md``).

Every model is lenient the way Qiscus needs: unknown fields are kept (``extra="allow"``), ids may be
integers or strings, blank timestamps become ``None``. Models are frozen: they describe what the
server said.

| endpoint                                           | result                        |
|----------------------------------------------------|-------------------------------|
| create_room, add/remove_room_participants          | `Room`                        |
| get_or_create_room_with_target                     | `RoomWithComments`            |
| get_rooms_info                                     | ``list[RoomInfo]``            |
| post_comment, post_system_event_message            | `Comment`                     |
| load_comments                                      | ``list[Comment]``             |
| login_or_register, reset_user_token                | `User`                        |
| exports (create, get, delete), exports (list)      | `Export`, ``list[Export]``    |
| imports (create), imports (list)                   | `Import`, ``list[Import]``    |
| get_user_rooms                                     | `UserRooms`                   |
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "Avatar",
    "BackupHistory",
    "Comment",
    "Export",
    "Id",
    "Import",
    "ImportErrors",
    "PageMeta",
    "Participant",
    "Room",
    "RoomDetail",
    "RoomInfo",
    "RoomWithComments",
    "User",
    "UserRooms",
]

Id = int | str
"""Qiscus ids: integers in the SDK API, strings in Omnichannel and for room unique ids."""


def _blank_to_none(value: Any) -> Any:
    return None if value in ("", None) else value


Timestamp = Annotated[datetime | None, BeforeValidator(_blank_to_none)]


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


class Avatar(_Result):
    """``{"avatar": {"url": ...}}`` as Qiscus nests it."""

    avatar: dict[str, Any] = Field(default_factory=dict)

    @property
    def url(self) -> str | None:
        """The avatar's URL, when present."""
        url = self.avatar.get("url")
        return url if isinstance(url, str) else None


class Comment(_Result):
    """A comment (message) in a room, as post_comment and load_comments return it."""

    id: Id
    message: str = ""
    type: str = "text"
    payload: Any = None
    room_id: Id | None = None
    topic_id: Id | None = None
    room_name: str | None = None
    comment_before_id: Id | None = None
    unique_temp_id: str | None = None
    disable_link_preview: bool = False
    email: str | None = None
    username: str | None = None
    user_id: Id | None = None
    user_avatar_url: str | None = None
    user_avatar: Avatar | None = None
    timestamp: Timestamp = None
    unix_timestamp: int | str | None = None
    extras: Any = None


class Participant(_Result):
    """A room member as room listings show it."""

    email: str
    username: str | None = None
    avatar_url: str | None = None
    id: Id | None = None
    last_comment_read_id: Id | None = None
    last_comment_received_id: Id | None = None


class Room(_Result):
    """A room as create_room and add/remove_room_participants return it."""

    room_id: Id
    room_name: str = ""
    room_type: str | None = None
    creator: str | None = None
    participants: list[str] = Field(default_factory=list)


class RoomDetail(_Result):
    """The ``room`` object of get_or_create_room_with_target."""

    id: Id
    room_name: str = ""
    chat_type: str | None = None
    avatar_url: str | None = None
    last_comment_id: Id | None = None
    last_comment_message: str | None = None
    last_topic_id: Id | None = None
    options: Any = None
    participants: list[Participant] = Field(default_factory=list)


class RoomWithComments(_Result):
    """get_or_create_room_with_target: the room and its latest comments."""

    room: RoomDetail
    comments: list[Comment] = Field(default_factory=list)


class RoomInfo(_Result):
    """One entry of get_rooms_info or get_user_rooms."""

    room_id: Id
    room_name: str = ""
    room_type: str | None = None
    room_avatar_url: str | None = None
    last_comment_id: Id | None = None
    last_comment_message: str | None = None
    last_comment_timestamp: Timestamp = None
    unread_count: int = 0
    participants: list[Participant] | None = None


class PageMeta(_Result):
    """Paging information of get_user_rooms."""

    current_page: int = 1
    total_room: int = 0


class UserRooms(_Result):
    """One page of get_user_rooms."""

    meta: PageMeta = Field(default_factory=PageMeta)
    rooms_info: list[RoomInfo] = Field(default_factory=list)


class User(_Result):
    """A user as login_or_register and reset_user_token return it."""

    email: str
    id: Id | None = None
    username: str | None = None
    avatar_url: str | None = None
    avatar: Avatar | None = None
    token: str | None = None
    last_comment_id: Id | None = None
    pn_android_configured: bool | None = None
    pn_ios_configured: bool | None = None
    rt_key: str | None = Field(default=None, alias="rtKey")


class Export(_Result):
    """A backup (``backup_history``) of users, rooms or comments.

    ``percentage`` runs from 0 to 100; ``download_url`` is set once ``status`` is ``finished``.
    """

    unique_id: str
    status: str = ""
    percentage: float = 0
    resource_name: str | None = None
    download_url: str | None = None
    error_message: str | None = None
    original_filename: str | None = None
    size: int = 0
    total_rows: int = 0
    created_at: Timestamp = None

    @property
    def finished(self) -> bool:
        """True once the backup can be downloaded."""
        return self.status == "finished" or (self.percentage >= 100 and bool(self.download_url))

    @property
    def failed(self) -> bool:
        """True when Qiscus reports the backup failed."""
        return self.status in {"failed", "error"} or bool(self.error_message)


BackupHistory = Export
"""The reference's name for an export record."""


class ImportErrors(_Result):
    """The ``errors`` object of an import: ``{"Message": ..., "Data": ...}``."""

    message: str = Field(default="", alias="Message")
    data: Any = Field(default=None, alias="Data")


class Import(_Result):
    """An import job and its progress."""

    unique_id: str
    status: str = ""
    resource_name: str | None = None
    original_filename: str | None = None
    size: int = 0
    total_rows: int = 0
    errors: ImportErrors | None = None
    created_at: Timestamp = None

    @property
    def finished(self) -> bool:
        """True once Qiscus has processed the file."""
        return self.status == "finished"

    @property
    def failed(self) -> bool:
        """True when Qiscus reports the import failed or carries an error message."""
        return self.status in {"failed", "error"} or bool(self.errors and self.errors.message)
