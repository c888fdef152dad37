"""The async Qiscus server REST API client: every endpoint of ``rest-api-v2.md``, v2 and v2.1.

```python
async with QiscusClient("my-app", secret_key) as qiscus:
    comment = await qiscus.post_comment("bot@example.com", room_id=42, message="hello")
    async for room in qiscus.iter_user_rooms("bot@example.com"):
        print(room.room_name)
```

The bot runtime keeps one client for its lifetime without ``async with``: the pooled session is
created on the first call and closed by ``await client.close()``.
"""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiohttp
from pydantic import BaseModel, SecretStr, ValidationError

from qbot._http import BodyFactory, Transport
from qbot._json import dumps_text
from qbot._retry import RetryPolicy
from qbot.errors import ConfigError, QiscusAPIError
from qbot.models.api import (
    Comment,
    Export,
    Import,
    Room,
    RoomInfo,
    RoomWithComments,
    User,
    UserRooms,
)

if TYPE_CHECKING:
    from qbot.config import Settings

__all__ = ["ApiVersion", "QiscusClient", "RetryPolicy"]

ApiVersion = Literal["2", "2.1"]
ResourceType = Literal["users", "rooms", "comments"]
M = TypeVar("M", bound=BaseModel)
_ROOMS_PER_PAGE = 20  # get_user_rooms pages hold at most 20 rooms
LOOKUP_COMMENTS = 50
"""A room's newest comments searched for a post whose answer was lost (one load_comments)."""


def _card_image(card: Mapping[str, Any], api_version: ApiVersion) -> dict[str, Any]:
    """v2 takes a card's picture as ``image_url``, v2.1 as ``image``: send the one expected."""
    out = dict(card)
    want, other = ("image_url", "image") if api_version == "2" else ("image", "image_url")
    if want not in out and other in out:
        out[want] = out.pop(other)
    return out


def _wire_payload(type: str, payload: Mapping[str, Any], api_version: ApiVersion) -> dict[str, Any]:
    if type == "card":
        return _card_image(payload, api_version)
    if type == "carousel" and isinstance(payload.get("cards"), list):
        cards = [
            _card_image(c, api_version) if isinstance(c, Mapping) else c for c in payload["cards"]
        ]
        return {**payload, "cards": cards}
    return dict(payload)


def _listing(results: Any, key: str) -> list[Any]:
    items = results.get(key) if isinstance(results, dict) else None
    return items if isinstance(items, list) else []


class QiscusClient:
    """An async client for the Qiscus server REST API.

    Args:
        app_id: the Qiscus app id (``https://{app_id}.qiscus.com`` is the v2 base URL).
        secret_key: the app's secret key, sent as ``QISCUS-SDK-SECRET``; never logged.
        base_url: overrides the base URL (tests, proxies, the emulator).
        api_version: ``"2"`` (``/api/v2/rest``, ``sender_email``) or ``"2.1"``
            (``https://api.qiscus.com``, ``/api/v2.1/rest``, ``user_id``, optional ``extras``).
        timeout: seconds one try may take before it counts as a network failure.
        retry: when to retry; defaults to `RetryPolicy()`. ``RetryPolicy(max_attempts=1)`` disables.
        session: an ``aiohttp.ClientSession`` to share; the client then never closes it.

    Raises:
        ConfigError: on an empty app id or secret key, or an unknown ``api_version``.
    """

    def __init__(
        self,
        app_id: str,
        secret_key: str | SecretStr,
        base_url: str | None = None,
        api_version: ApiVersion = "2",
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        secret = secret_key if isinstance(secret_key, SecretStr) else SecretStr(secret_key)
        if not app_id:
            raise ConfigError("QiscusClient needs an app_id: set qiscus.app_id")
        if not secret.get_secret_value():
            raise ConfigError("QiscusClient needs a secret_key: set qiscus.secret_key")
        if api_version not in ("2", "2.1"):
            raise ConfigError(f"api_version {api_version!r} must be '2' or '2.1'")
        if timeout <= 0:
            raise ConfigError(f"timeout {timeout!r} must be a positive number of seconds")
        self.app_id = app_id
        self.api_version: ApiVersion = api_version
        default = f"https://{app_id}.qiscus.com" if api_version == "2" else "https://api.qiscus.com"
        self.base_url = (base_url or default).rstrip("/")
        self._prefix = f"/api/v{api_version}/rest"
        headers = {
            "QISCUS-SDK-APP-ID": app_id,
            "QISCUS-SDK-SECRET": secret.get_secret_value(),
            "Accept": "application/json",
        }
        self._http = Transport(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            session=session,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> QiscusClient:
        """The client ``settings.qiscus`` describes: the one way settings become a client.

        Args:
            settings: the loaded settings; ``qiscus.max_attempts`` and ``qiscus.max_retry_time``
                make the retry policy.
            retry: replaces that policy (e.g. ``RetryPolicy(max_attempts=1)`` in tests).
            session: an ``aiohttp.ClientSession`` to share; the client then never closes it.

        Raises:
            ConfigError: as the constructor.
        """
        q = settings.qiscus
        policy = retry or RetryPolicy(max_attempts=q.max_attempts, max_total_time=q.max_retry_time)
        return cls(
            q.app_id,
            q.secret_key,
            q.base_url,
            q.api_version,
            timeout=q.timeout,
            retry=policy,
            session=session,
        )

    def __repr__(self) -> str:
        return (
            f"QiscusClient(app_id={self.app_id!r}, base_url={self.base_url!r}, "
            f"api_version={self.api_version!r})"
        )

    async def __aenter__(self) -> QiscusClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the pooled session (unless it was passed in). The client reopens one if reused."""
        await self._http.close()

    def _call(
        self,
        method: str,
        name: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
        json_body: Mapping[str, Any] | None = None,
        form: BodyFactory | None = None,
        recover: Callable[[], Awaitable[Any]] | None = None,
    ) -> Awaitable[Any]:
        # The transport's call itself, not a coroutine awaiting it: one layer less per request.
        return self._http.request(
            method,
            f"{self._prefix}/{name}",
            params=params,
            json_body=json_body,
            form=form,
            recover=recover,
        )

    def _parse(self, model: type[M], data: Any, name: str) -> M:
        try:
            # The model's validator itself: what model_validate calls, without its Python frame
            # and keyword checks (about 1 µs of the 7 a post_comment answer takes on the VM).
            parsed: M = model.__pydantic_validator__.validate_python(data)
        except ValidationError as e:
            endpoint = f"{self._prefix}/{name}"
            raise QiscusAPIError(
                200, endpoint, f"unexpected {model.__name__} shape from Qiscus: {e}", data
            ) from e
        return parsed

    # -- rooms -----------------------------------------------------------------------------------
    async def create_room(self, name: str, participants: Sequence[str], creator: str) -> Room:
        """Create a group room.

        Args:
            name: the room's name.
            participants: member emails (the creator is added by Qiscus).
            creator: the creating user's email.
        """
        body = {"name": name, "participants": list(participants), "creator": creator}
        return self._parse(
            Room, await self._call("POST", "create_room", json_body=body), "create_room"
        )

    async def get_or_create_room_with_target(
        self, emails: Sequence[str], avatar_url: str | None = None
    ) -> RoomWithComments:
        """The single (1-to-1) room of exactly two users, created when missing."""
        query: list[tuple[str, str]] = [("emails[]", e) for e in emails]
        if avatar_url:
            query.append(("avatar_url", avatar_url))
        name = "get_or_create_room_with_target"
        return self._parse(RoomWithComments, await self._call("GET", name, params=query), name)

    async def get_rooms_info(
        self, room_id: Sequence[int | str] | int | str, user_email: str
    ) -> list[RoomInfo]:
        """Last comment, unread count and type of rooms, as seen by ``user_email``."""
        ids = [room_id] if isinstance(room_id, int | str) else list(room_id)
        body = {"room_id": [str(i) for i in ids], "user_email": user_email}
        results = await self._call("POST", "get_rooms_info", json_body=body)
        return [self._parse(RoomInfo, r, "get_rooms_info") for r in _listing(results, "rooms_info")]

    async def add_room_participants(self, room_id: int | str, emails: Sequence[str]) -> Room:
        """Add users to a group room; returns the room with its updated participants."""
        body = {"room_id": room_id, "emails": list(emails)}
        name = "add_room_participants"
        return self._parse(Room, await self._call("POST", name, json_body=body), name)

    async def remove_room_participants(self, room_id: int | str, emails: Sequence[str]) -> Room:
        """Remove users from a group room; returns the room with its updated participants."""
        body = {"room_id": room_id, "emails": list(emails)}
        name = "remove_room_participants"
        return self._parse(Room, await self._call("POST", name, json_body=body), name)

    async def get_user_rooms(
        self, user_email: str, page: int | None = None, show_participants: bool = False
    ) -> UserRooms:
        """One page (up to 20) of the rooms ``user_email`` belongs to; see `iter_user_rooms`."""
        query = {"user_email": user_email, "show_participants": str(show_participants).lower()}
        if page is not None:
            query["page"] = str(page)
        name = "get_user_rooms"
        return self._parse(UserRooms, await self._call("GET", name, params=query), name)

    async def iter_user_rooms(
        self, user_email: str, show_participants: bool = False
    ) -> AsyncIterator[RoomInfo]:
        """Every room of ``user_email``, fetching page after page until none is left."""
        page, seen = 1, set[str]()
        while True:
            result = await self.get_user_rooms(user_email, page, show_participants)
            fresh = [r for r in result.rooms_info if str(r.room_id) not in seen]
            for room in fresh:
                seen.add(str(room.room_id))
                yield room
            total = result.meta.total_room
            # Stop on a short or repeated page (a server that ignores ``page``) or at the total.
            if len(result.rooms_info) < _ROOMS_PER_PAGE or not fresh or 0 < total <= len(seen):
                return
            page += 1

    # -- comments --------------------------------------------------------------------------------
    async def post_comment(
        self,
        sender_email: str,
        room_id: int | str,
        message: str,
        type: str = "text",
        payload: Mapping[str, Any] | None = None,
        unique_temp_id: str | None = None,
        disable_link_preview: bool = False,
        extras: Mapping[str, Any] | None = None,
    ) -> Comment:
        """Post a comment as ``sender_email`` (sent as ``user_id`` on v2.1).

        Args:
            sender_email: the posting user's email (the bot's, for replies).
            room_id: the room id or the room's unique id.
            message: the text; Qiscus caps it at 4000 characters.
            type: ``text``, ``buttons``, ``card``, ``carousel``, ``reply``, ``custom``, ...
            payload: the type's payload object; sent JSON-encoded, as the reference asks. A card's
                ``image_url``/``image`` is renamed to what the API version expects.
            unique_temp_id: the comment's client id; generated when omitted, and kept across
                retries so a retried post can be recognised.
            disable_link_preview: ask clients not to render a link preview.
            extras: free-form metadata (v2.1; passed through on v2 as well).
        """
        body: dict[str, Any] = {
            "user_id" if self.api_version == "2.1" else "sender_email": sender_email,
            "room_id": room_id,
            "message": message,
            "type": type,
            "unique_temp_id": unique_temp_id or f"qbot-{uuid.uuid4().hex}",
            "disable_link_preview": disable_link_preview,
        }
        if payload is not None:
            body["payload"] = dumps_text(_wire_payload(type, payload, self.api_version))
        if extras is not None:
            body["extras"] = dict(extras)
        temp_id = body["unique_temp_id"]

        async def posted_already() -> Any:
            # A retry after an unknown outcome: the comment is there if the first try landed.
            found = await self._find_comment(room_id, temp_id, LOOKUP_COMMENTS)
            return None if found is None else {"comment": found}

        results = await self._call("POST", "post_comment", json_body=body, recover=posted_already)
        return self._parse(Comment, _field(results, "comment"), "post_comment")

    async def find_comment(
        self, room_id: int | str, unique_temp_id: str, newest: int = LOOKUP_COMMENTS
    ) -> Comment | None:
        """The comment of ``room_id`` posted with ``unique_temp_id``, among its ``newest`` ones.

        One ``load_comments`` call: how a post whose answer was lost is recognised.
        """
        found = await self._find_comment(room_id, unique_temp_id, newest)
        return None if found is None else self._parse(Comment, found, "load_comments")

    async def _find_comment(
        self, room_id: int | str, unique_temp_id: str, newest: int
    ) -> dict[str, Any] | None:
        body = {"room_id": room_id, "limit": newest}
        results = await self._call("POST", "load_comments", json_body=body)
        for comment in _listing(results, "comments"):
            if isinstance(comment, dict) and comment.get("unique_temp_id") == unique_temp_id:
                return comment
        return None

    async def load_comments(
        self, room_id: int | str, page: int | None = None, limit: int | None = None
    ) -> list[Comment]:
        """One page of a room's comments, newest first (Qiscus's default limit is 20)."""
        body: dict[str, Any] = {"room_id": room_id}
        if page is not None:
            body["page"] = page
        if limit is not None:
            body["limit"] = limit
        results = await self._call("POST", "load_comments", json_body=body)
        return [self._parse(Comment, c, "load_comments") for c in _listing(results, "comments")]

    async def iter_comments(self, room_id: int | str, limit: int = 20) -> AsyncIterator[Comment]:
        """Every comment of a room, newest first, ``limit`` per request."""
        page, seen = 1, set[str]()
        while True:
            comments = await self.load_comments(room_id, page=page, limit=limit)
            fresh = [c for c in comments if str(c.id) not in seen]
            for comment in fresh:
                seen.add(str(comment.id))
                yield comment
            # A short page ends the room; a page of repeats means the server ignores ``page``.
            if len(comments) < limit or not fresh:
                return
            page += 1

    async def post_system_event_message(
        self,
        system_event_type: str,
        room_id: int | str,
        subject_email: str,
        object_email: Sequence[str] | str | None = None,
        updated_room_name: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Comment:
        """Post a ``system_event`` comment (``create_room``, ``add_member``, ..., ``custom``).

        Args:
            system_event_type: the event's sub-type.
            room_id: the room to post in.
            subject_email: who acted.
            object_email: who was acted on (``add_member``, ``remove_member``).
            updated_room_name: the new name (``change_room_name``, ``create_room``).
            payload: the free-form object of a ``custom`` event; sent JSON-encoded.
        """
        body: dict[str, Any] = {
            "system_event_type": system_event_type,
            "room_id": room_id,
            "subject_email": subject_email,
        }
        if object_email:
            body["object_email"] = (
                [object_email] if isinstance(object_email, str) else list(object_email)
            )
        if updated_room_name is not None:
            body["updated_room_name"] = updated_room_name
        if payload is not None:
            body["payload"] = dumps_text(dict(payload))
        name = "post_system_event_message"
        results = await self._call("POST", name, json_body=body)
        return self._parse(Comment, _field(results, "comment"), name)

    # -- users -----------------------------------------------------------------------------------
    async def login_or_register(
        self,
        email: str,
        username: str,
        password: str | SecretStr | None = None,
        avatar_url: str | None = None,
        device_token: str | None = None,
        device_platform: Literal["ios", "android"] | None = None,
    ) -> User:
        """Create a user, or update an existing one (its password too, when given)."""
        body: dict[str, Any] = {"email": email, "username": username}
        if password is not None:
            secret = password.get_secret_value() if isinstance(password, SecretStr) else password
            body["password"] = secret
        optional = {"avatar_url": avatar_url, "device_token": device_token}
        body.update({k: v for k, v in optional.items() if v is not None})
        if device_platform is not None:
            body["device_platform"] = device_platform
        results = await self._call("POST", "login_or_register", json_body=body)
        return self._parse(User, _field(results, "user"), "login_or_register")

    async def reset_user_token(self, user_email: str) -> User:
        """Invalidate a user's token and return the user with a new one."""
        results = await self._call("POST", "reset_user_token", json_body={"user_email": user_email})
        return self._parse(User, _field(results, "user"), "reset_user_token")

    # -- exports (backups) -----------------------------------------------------------------------
    async def create_export(
        self, type: ResourceType, start_date: date | str, end_date: date | str
    ) -> Export:
        """Request a JSON backup of users, rooms or comments created between two dates."""
        body = {
            "type": type,
            "start_date": start_date.isoformat() if isinstance(start_date, date) else start_date,
            "end_date": end_date.isoformat() if isinstance(end_date, date) else end_date,
        }
        return self._parse(Export, await self._call("POST", "exports", json_body=body), "exports")

    async def list_exports(self, page: int | None = None) -> list[Export]:
        """Up to 20 recent backups per page."""
        query = {} if page is None else {"page": str(page)}
        results = await self._call("GET", "exports", params=query)
        return [self._parse(Export, e, "exports") for e in _listing(results, "backup_histories")]

    async def get_export(self, unique_id: str) -> Export:
        """One backup and its progress (``percentage``, ``status``, ``download_url``)."""
        name = f"exports/{unique_id}"
        return self._parse(Export, _field(await self._call("GET", name), "backup_history"), name)

    async def delete_export(self, unique_id: str) -> Export:
        """Delete a backup; returns the deleted record."""
        name = f"exports/{unique_id}"
        return self._parse(Export, _field(await self._call("DELETE", name), "backup_history"), name)

    async def download_export(self, export: Export | str) -> bytes:
        """The backup file's bytes, from an `Export` (finished) or its ``download_url``.

        The secret key is not sent: download URLs point at a storage host.
        """
        url = export if isinstance(export, str) else export.download_url
        if not url:
            raise ConfigError(
                f"backup {getattr(export, 'unique_id', export)!r} has no download_url yet: "
                "wait until its status is 'finished'"
            )
        return await self._http.download(url)

    # -- imports ---------------------------------------------------------------------------------
    async def create_import(
        self, type: ResourceType, file: str | os.PathLike[str] | bytes, filename: str | None = None
    ) -> Import:
        """Upload a JSON file of users, rooms or comments (4 MB at most) as multipart.

        Validate and split big files first with `qbot.imports`.
        """
        if isinstance(file, bytes):
            data, name = file, filename or f"{type}.json"
        else:
            path = Path(file)
            data, name = await asyncio.to_thread(path.read_bytes), filename or path.name

        def form() -> aiohttp.FormData:
            fd = aiohttp.FormData()
            fd.add_field("type", type)
            # A BytesIO, not bytes: aiohttp warns that big raw bodies could block the loop.
            fd.add_field("file", io.BytesIO(data), filename=name, content_type="application/json")
            return fd

        results = await self._call("POST", "imports", form=form)
        return self._parse(Import, _field(results, "backup_history"), "imports")

    async def list_imports(self, page: int | None = None) -> list[Import]:
        """Up to 20 recent imports per page, with their status."""
        query = {} if page is None else {"page": str(page)}
        results = await self._call("GET", "imports", params=query)
        return [self._parse(Import, i, "imports") for i in _listing(results, "backup_histories")]


def _field(results: Any, key: str) -> Any:
    """``results[key]`` when Qiscus nests the object, else ``results`` itself."""
    if isinstance(results, dict) and isinstance(results.get(key), dict):
        return results[key]
    return results
