"""What the bot asked of the emulated REST API, and the faults a test makes it meet.

:class:`CallLog` records every REST call (:class:`Call`: method, path, headers, query, body) and
holds the rules a test sets: answer the next calls with an error, delay them, or hold them until
released. :class:`~qbot.emulator.core.Emulator` exposes it as ``calls``, ``fail_next``, ``delay``,
``hang`` and ``release``; the REST routes call :meth:`CallLog.record` and :meth:`CallLog.before`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, MultiMapping

from qbot._json import loads

#: The Retry-After header of an injected 429 (or any status given ``retry_after``).
RETRY_AFTER = "Retry-After"


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """One file part of a multipart body (``imports`` uploads).

    Attributes:
        filename: the part's file name, if sent.
        content_type: the part's content type.
        data: the file's bytes.
    """

    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Call:
    """One request the emulated REST API received, as the bot sent it.

    Attributes:
        method: ``GET``, ``POST``, ``DELETE``...
        path: e.g. ``/api/v2/rest/post_comment`` or ``/download/ID.json``.
        headers: the request headers (case-insensitive).
        query: the query string; names lose a trailing ``[]``, repeated or ``[]`` names are lists.
        body: the decoded JSON value; for form and multipart bodies a dict of fields (same naming
            as ``query``, file parts as :class:`UploadedFile`); the raw text when the JSON is
            invalid; ``None`` when empty.
        peer: the client's ``(host, port)``: equal peers mean one reused connection.
    """

    method: str
    path: str
    headers: CIMultiDict[str]
    query: dict[str, Any]
    body: Any
    peer: tuple[str, int] | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint name after ``/rest/`` (``post_comment``, ``exports/ID``), else the path."""
        _, sep, name = self.path.partition("/rest/")
        return name if sep else self.path


class BodyError(Exception):
    """The request body could not be decoded; the REST routes answer 400 with this message."""


@dataclass(slots=True)
class _Rule:
    endpoint: str | None
    times: int
    status: int = 0
    body: Any = None
    retry_after: float | None = None
    seconds: float = 0.0

    def matches(self, call: Call) -> bool:
        if self.endpoint is None:
            return True
        if self.endpoint.startswith("/"):
            return call.path == self.endpoint
        return call.endpoint == self.endpoint


def fields(items: MultiMapping[Any]) -> dict[str, Any]:
    """A query or form as a dict: ``a[]`` and repeated names become lists, files are read."""
    out: dict[str, Any] = {}
    for raw_key, raw in items.items():
        value: Any = raw
        if isinstance(raw, web.FileField):
            value = UploadedFile(raw.filename, raw.content_type, raw.file.read())
        key = raw_key.removesuffix("[]")
        if raw_key.endswith("[]") or key in out:
            prev = out.get(key, [])
            out[key] = [*(prev if isinstance(prev, list) else [prev]), value]
        else:
            out[key] = value
    return out


def _matching(rules: list[_Rule], call: Call) -> _Rule | None:
    for rule in rules:
        if rule.times > 0 and rule.matches(call):
            rule.times -= 1
            return rule
    return None


def _failure(rule: _Rule) -> web.Response:
    headers = {} if rule.retry_after is None else {RETRY_AFTER: f"{rule.retry_after:g}"}
    if isinstance(rule.body, str):
        return web.Response(status=rule.status, text=rule.body, headers=headers)
    if isinstance(rule.body, bytes):
        return web.Response(
            status=rule.status, body=rule.body, headers=headers, content_type="application/json"
        )
    body = rule.body
    if body is None:
        message = f"injected failure {rule.status}"
        body = {"status": rule.status, "error": {"message": message, "errors": {}}}
    return web.json_response(body, status=rule.status, headers=headers)


@dataclass
class CallLog:
    """Every REST call received, oldest first, and the faults still to inject.

    Attributes:
        limit: how many calls (and posted bodies) to keep, the newest; ``None``: all.
    """

    limit: int | None = None
    calls: list[Call] = field(default_factory=list)
    #: Bodies of accepted ``post_comment`` calls (``payload`` decoded), oldest first.
    posted: list[dict[str, Any]] = field(default_factory=list)
    #: Bodies of accepted ``post_system_event_message`` calls, oldest first.
    events: list[dict[str, Any]] = field(default_factory=list)
    _failures: list[_Rule] = field(default_factory=list)
    _delays: list[_Rule] = field(default_factory=list)
    _hangs: list[_Rule] = field(default_factory=list)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def record(self, request: web.Request) -> Call:
        """Decode the request's body and append the call.

        Raises:
            BodyError: the JSON body is not valid JSON (the call is recorded with the raw text).
        """
        body: Any = None
        problem: str | None = None
        if request.content_type == "application/json":
            raw = await request.read()
            try:
                body = loads(raw) if raw else None
            except ValueError as e:
                body, problem = raw.decode(errors="replace"), f"request body is not valid JSON: {e}"
        elif request.body_exists:
            body = fields(await request.post()) or None
        peer = request.transport.get_extra_info("peername") if request.transport else None
        call = Call(
            request.method,
            request.path,
            CIMultiDict(request.headers),
            fields(request.query),
            body,
            (str(peer[0]), int(peer[1])) if peer else None,
        )
        self.calls.append(call)
        self.trim()
        self.changed()
        if problem is not None:
            raise BodyError(problem)
        return call

    async def before(self, call: Call) -> web.Response | None:
        """Apply the rules to a recorded call: wait, hold, then the injected answer (if any)."""
        delay = _matching(self._delays, call)
        if delay is not None:
            await asyncio.sleep(delay.seconds)
        if _matching(self._hangs, call) is not None:
            await self._released.wait()
        failure = _matching(self._failures, call)
        return None if failure is None else _failure(failure)

    def calls_to(self, endpoint: str) -> list[Call]:
        """The calls to ``endpoint`` (a name such as ``post_comment``, either API version)."""
        return [c for c in self.calls if c.endpoint == endpoint]

    def posted_comments(self, room_id: int | str | None = None) -> list[dict[str, Any]]:
        """Accepted ``post_comment`` bodies of ``room_id`` (``None``: every room)."""
        return [b for b in self.posted if room_id is None or str(b.get("room_id")) == str(room_id)]

    def posted_system_events(self, room_id: int | str | None = None) -> list[dict[str, Any]]:
        """Accepted ``post_system_event_message`` bodies of ``room_id`` (``None``: every room)."""
        return [b for b in self.events if room_id is None or str(b.get("room_id")) == str(room_id)]

    def fail_next(
        self,
        endpoint: str | None = None,
        *,
        status: int,
        times: int = 1,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` calls to ``endpoint`` (``None``: any) with ``status``."""
        _positive(times, "times")
        self._failures.append(_Rule(endpoint, times, status, body, retry_after))

    def delay(self, endpoint: str | None = None, *, seconds: float, times: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``times`` calls to ``endpoint``."""
        _positive(times, "times")
        if seconds < 0:
            raise ValueError(f"seconds={seconds!r} must be 0 or more")
        self._delays.append(_Rule(endpoint, times, seconds=seconds))

    def hang(self, endpoint: str | None = None, *, times: int = 1) -> None:
        """Hold the next ``times`` calls to ``endpoint`` unanswered until :meth:`release`."""
        _positive(times, "times")
        self._hangs.append(_Rule(endpoint, times))

    def release(self) -> None:
        """Let every held call go on; calls held later wait for the next release."""
        self._released.set()
        self._released = asyncio.Event()

    def clear_faults(self) -> None:
        """Forget the failures, delays and holds still to come, and release the held calls."""
        self._failures.clear()
        self._delays.clear()
        self._hangs.clear()
        self.release()

    def accepted_comment(self, body: dict[str, Any]) -> None:
        """Keep the body of a ``post_comment`` the emulator accepted."""
        self.posted.append(body)
        self.trim()

    def accepted_event(self, body: dict[str, Any]) -> None:
        """Keep the body of a ``post_system_event_message`` the emulator accepted."""
        self.events.append(body)
        self.trim()

    def trim(self) -> None:
        """Forget the oldest calls and posted bodies beyond :attr:`limit`."""
        if self.limit is not None:
            for history in (self.calls, self.posted, self.events):
                del history[: max(0, len(history) - self.limit)]

    def changed(self) -> None:
        """Wake :meth:`wait_for`: a call came in or was answered."""
        self._changed.set()

    async def wait_for(
        self,
        condition: int | Callable[[], bool],
        timeout: float,  # noqa: ASYNC109 - the documented test API takes a timeout
    ) -> None:
        """Wait until ``len(calls) >= condition`` (an int) or ``condition()`` holds.

        Raises:
            TimeoutError: not within ``timeout`` seconds; the message lists the calls seen.
        """
        if isinstance(condition, int):
            count = condition

            def check() -> bool:
                return len(self.calls) >= count
        else:
            check = condition
        try:
            async with asyncio.timeout(timeout):
                while not check():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            seen = [f"{c.method} {c.path}" for c in self.calls]
            raise TimeoutError(
                f"wait_for({condition!r}) timed out after {timeout}s; calls so far: {seen}"
            ) from None


def _positive(value: int, name: str) -> None:
    if value < 1:
        raise ValueError(f"{name}={value!r} must be 1 or more")
