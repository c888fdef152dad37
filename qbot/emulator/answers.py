"""Qiscus-shaped answers and parameter checks shared by the emulated REST endpoints.

A handler takes the call's parameters (query and body merged, ``[]`` dropped from names) and
returns :func:`ok` or raises :class:`RestError`, which becomes
``{"status": 4xx, "error": {"message", "errors", "detailed_messages"}}`` like Qiscus's errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from qbot._json import loads

Params = dict[str, Any]
#: One endpoint: its parameters in, an aiohttp response out.
Handler = Callable[[Params], Awaitable[web.StreamResponse]]


class RestError(Exception):
    """A request Qiscus would refuse; becomes a JSON error response.

    Args:
        status: the HTTP status.
        message: what is wrong, with the offending value.
        field: the parameter at fault, listed under ``errors``...
        problem: ...with this short problem.
    """

    def __init__(
        self, status: int, message: str, field: str | None = None, problem: str = "is invalid"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.problem = problem

    def response(self) -> web.Response:
        """The error as Qiscus sends it (the message once, so clients do not repeat it)."""
        errors = {self.field: [self.problem]} if self.field else {}
        return web.json_response(
            {
                "status": self.status,
                "error": {"message": self.message, "errors": errors, "detailed_messages": []},
            },
            status=self.status,
        )


def ok(results: dict[str, Any]) -> web.Response:
    """A successful answer: ``{"status": 200, "results": ...}``."""
    return web.json_response({"status": 200, "results": results})


def required(params: Params, name: str) -> Any:
    """The parameter ``name``; a 400 when it is missing or empty."""
    value = params.get(name)
    if value is None or value == "" or value == []:
        raise RestError(400, f"{name} is required", name, "is required")
    return value


def as_list(value: Any, name: str) -> list[str]:
    """A string or a list of strings (emails) as a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RestError(400, f"{name} must be a list of emails, got {value!r:.80}", name)


def as_int(value: Any, name: str, default: int | None = None) -> int:
    """An integer parameter (``default`` when absent)."""
    if value is None and default is not None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as e:
        raise RestError(400, f"{name} must be an integer, got {value!r:.80}", name) from e


def json_value(value: Any, name: str) -> Any:
    """A parameter that may arrive as a JSON string (``payload``, ``extras``), decoded."""
    if isinstance(value, str) and value.strip():
        try:
            return loads(value)
        except ValueError as e:
            raise RestError(400, f"{name} must be a JSON object: {e}", name) from e
    return value if value != "" else None
