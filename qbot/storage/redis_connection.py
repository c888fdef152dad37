"""Redis connections that send under ``asyncio.timeout``, not ``asyncio.wait_for``.

redis-py (8.1) sends every command in ``asyncio.wait_for(..., socket_timeout)``. On Python 3.11
``wait_for`` returns the awaited result instead of raising when a cancel lands in the loop tick
its inner task finishes (CPython gh-86296, fixed in 3.12): the command runs on, its answer is
read and returned, and the caller, which was cancelled (an ``asyncio.timeout`` around a handler,
a request whose client went away, a drain), never learns it. ``wait_for`` also makes a task per
send. These classes send the same bytes under ``asyncio.timeout``, which neither loses a cancel
nor makes a task, and fail as redis-py does: a write that takes longer than ``socket_timeout``
raises redis' ``TimeoutError("Timeout writing to socket")``, any failure or cancel mid-send
closes the connection (a half-written command cannot be taken back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["TimedConnection", "TimedSSLConnection", "TimedUnixConnection", "timed"]


class _TimedSend(AbstractConnection):
    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        writer = self._writer
        try:
            if writer is None:  # connect_check_health connected it, or raised
                raise RedisConnectionError("Connection closed by server.")
            async with asyncio.timeout(self.socket_timeout or None):
                writer.writelines(command)
                await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as e:
            await self.disconnect(nowait=True)
            no, text = ("UNKNOWN", e.args[0]) if len(e.args) == 1 else (e.args[0], e.args[1])
            raise RedisConnectionError(f"Error {no} while writing to socket. {text}.") from e
        except BaseException:
            await self.disconnect(nowait=True)
            raise


class TimedConnection(_TimedSend, Connection):
    """``redis://``: a TCP connection."""


class TimedSSLConnection(_TimedSend, SSLConnection):
    """``rediss://``: a TLS connection."""


class TimedUnixConnection(_TimedSend, UnixDomainSocketConnection):
    """``unix://``: a Unix socket connection."""


_TIMED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: TimedConnection,
    SSLConnection: TimedSSLConnection,
    UnixDomainSocketConnection: TimedUnixConnection,
}


def timed(kind: object) -> type[AbstractConnection]:
    """The class of ours that replaces redis-py's connection class ``kind``.

    Raises:
        ValueError: ``kind`` is none of redis-py's (``connection_class=`` in a URL).
    """
    found = _TIMED.get(kind) if isinstance(kind, type) else None
    if found is None:
        raise ValueError(f"connection class {kind!r} is not one of redis-py's")
    return found
