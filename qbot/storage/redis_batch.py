"""Group commit for Redis: the commands of concurrent callers in one pipelined round trip.

Every call of the message path (a webhook's ``PUT``, a room's ``load_room`` reads, each commit,
lease renewals) is queued here; one task sends what is queued as one pipeline
(``transaction=False``), waits for its answers and sends what was queued meanwhile as the next,
so with many rooms in flight one round trip (one connection taken from the pool, one write, one
read loop) carries many calls. Each call keeps its own commands and its own outcome: a call whose
script fails (a lost lease is an answer, not an error) fails alone, the others of its pipeline
are applied. Answers are given back in the order the calls were queued, which is the order Redis
ran them in.

A script is sent by its SHA1 (``EVALSHA``); when Redis does not know it (restarted, or ``SCRIPT
FLUSH``), the script is loaded and the calls that met ``NOSCRIPT`` (which ran nothing) go again
in the next round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from qbot._aio import cancel_and_wait
from qbot.errors import StorageError

__all__ = ["Batcher", "sha1"]

Command = tuple[Any, ...]

_SHAS: dict[str, str] = {}


def sha1(script: str) -> str:
    """The SHA1 Redis knows ``script`` by (``EVALSHA``), computed once per script."""
    sha = _SHAS.get(script)
    if sha is None:
        sha = _SHAS[script] = hashlib.sha1(script.encode()).hexdigest()
    return sha


class _Call:
    __slots__ = ("commands", "future", "retried", "scripts")

    def __init__(
        self, commands: Sequence[Command], scripts: Sequence[str], future: asyncio.Future[Any]
    ) -> None:
        self.commands = commands
        self.scripts = scripts
        self.future = future
        self.retried = False


class Batcher:
    """Queues calls and sends them in pipelines, one round trip in flight at a time.

    Args:
        client: the open client (asked at each round trip).
        shown: the server, as error messages name it (the URL without its password).
    """

    def __init__(self, client: Callable[[], aioredis.Redis], shown: str) -> None:
        self._client = client
        self._shown = shown
        self._queue: deque[_Call] = deque()
        self._task: asyncio.Task[None] | None = None
        self.round_trips = 0
        """Pipelines sent so far (a count for benchmarks and tests)."""

    async def call(self, commands: Sequence[Command], scripts: Sequence[str] = ()) -> list[Any]:
        """Run ``commands`` in the next round trip; their answers, in order.

        Args:
            commands: the commands of one call, each as ``execute_command`` takes it.
            scripts: the text of each script an ``EVALSHA`` of ``commands`` runs (loaded when
                Redis does not know it).

        Raises:
            StorageError: Redis failed, or answered one of the commands with an error.
        """
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Call(commands, scripts, future))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="qbot-redis-batcher")
        return await future

    async def script(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """``EVALSHA`` of ``script`` in the next round trip; its answer."""
        command = ("EVALSHA", sha1(script), len(keys), *keys, *args)
        (answer,) = await self.call([command], (script,))
        return answer

    async def close(self) -> None:
        """Stop sending; calls still queued fail with a :class:`StorageError`."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])
        while self._queue:
            call = self._queue.popleft()
            if not call.future.done():
                call.future.set_exception(
                    StorageError(f"redis storage {self._shown!r} was closed before the call ran")
                )

    async def _run(self) -> None:
        try:
            while self._queue:
                batch = list(self._queue)
                self._queue.clear()
                await self._send(batch)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _send(self, batch: list[_Call]) -> None:
        batch = [call for call in batch if not call.future.done()]  # callers cancelled
        if not batch:
            return
        self.round_trips += 1
        try:
            pipe = self._client().pipeline(transaction=False)
            for call in batch:
                for command in call.commands:
                    pipe.execute_command(*command)
            answers = await pipe.execute(raise_on_error=False)
        except BaseException as e:  # Redis failed, or cancelled (close): no caller waits forever
            for call in batch:
                if call.future.done():
                    continue
                if isinstance(e, StorageError):  # not open
                    call.future.set_exception(StorageError(str(e)))
                    continue
                error = StorageError(f"redis {self._shown!r} failed: {e or type(e).__name__}")
                error.__cause__ = e
                call.future.set_exception(error)
            if isinstance(e, RedisConnectionError | RedisTimeoutError | OSError):
                await self._drop_idle()
            if isinstance(e, Exception):
                return  # each caller has its error; the calls queued meanwhile go next
            raise
        unknown: list[_Call] = []
        start = 0
        for call in batch:
            mine = answers[start : start + len(call.commands)]
            start += len(call.commands)
            failed = next((a for a in mine if isinstance(a, Exception)), None)
            if isinstance(failed, NoScriptError) and not call.retried:
                call.retried = True
                unknown.append(call)
            elif call.future.done():
                pass
            elif failed is not None:
                call.future.set_exception(StorageError(f"redis {self._shown!r} failed: {failed}"))
            else:
                call.future.set_result(mine)
        if unknown:
            await self._load([s for call in unknown for s in call.scripts])
            self._queue.extendleft(reversed(unknown))

    async def _drop_idle(self) -> None:
        """After a connection failed, close the idle ones too (reconnected when next used).

        The pool hands a connection out without checking that the server did not close it
        meanwhile (with maintenance notifications on), and a pipeline is sent on one connection
        at a time: the idle ones, not used through a restart, would each fail once after it.
        """
        try:
            await self._client().connection_pool.disconnect(inuse_connections=False)
        except (RedisError, OSError, StorageError):
            return

    async def _load(self, scripts: Sequence[str]) -> None:
        """Load scripts Redis did not know; a failure fails nothing here (the retry will)."""
        try:
            pipe = self._client().pipeline(transaction=False)
            for script in dict.fromkeys(scripts):
                pipe.script_load(script)
            await pipe.execute()
        except RedisError:
            return
