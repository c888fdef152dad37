"""A cancel that lands on a Redis call is never lost, whatever loop tick it lands in.

On Python 3.11 ``asyncio.wait_for``, which redis-py wraps around every command send, returns
the result instead of raising when the cancel comes in the tick its inner task finishes
(CPython gh-86296): the call then ran on and returned its answer to a task that was cancelled.
qbot's connections send under ``asyncio.timeout`` (qbot.storage.redis_connection); a private
``redis-server`` checks the other URL schemes and the write timeout it keeps.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_scale import free_port

from qbot.errors import StorageError
from qbot.storage import RedisStorage

pytestmark = pytest.mark.redis

TICKS = 40
"""Loop ticks before the cancel, at most: a call on the local Redis is over well before."""


@pytest.fixture
async def storage() -> AsyncIterator[RedisStorage]:
    store = RedisStorage(f"redis://127.0.0.1:6379/0?prefix=qbot-cancel-{uuid.uuid4().hex}:")
    async with store:
        await store.set_state("k", {"v": 1})
        yield store
        await store.drop()


async def outcomes(call: Callable[[], Awaitable[Any]]) -> tuple[list[int], int]:
    """Cancel ``call`` after 0, 1, 2... loop ticks: the ticks at which it was not cancelled
    although ``cancel()`` reached it while running, and how many ticks were tried."""
    lost: list[int] = []
    for ticks in range(TICKS):
        task = asyncio.ensure_future(call())
        for _ in range(ticks):
            await asyncio.sleep(0)
        if not task.cancel():  # done before the cancel: every later tick is too
            await task
            return lost, ticks
        async with asyncio.timeout(30):  # a hang guard, not a measure
            await asyncio.wait([task])
        if not task.cancelled():
            lost.append(ticks)
    return lost, TICKS


@pytest.mark.parametrize(
    "name", ["get_state", "outbox_get", "handoff_get", "lease_acquire", "inbox_wait"]
)
async def test_storage_redis_a_cancelled_call_ends_cancelled_at_every_tick(
    storage: RedisStorage, name: str
) -> None:
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "get_state": lambda: storage.get_state("k"),  # a command of its own, in the caller
        "outbox_get": lambda: storage.outbox_get("nothing"),
        "handoff_get": lambda: storage.handoff_get("r1"),
        "lease_acquire": lambda: storage.lease_acquire("l", "w", 60),  # through the batcher
        "inbox_wait": lambda: storage.inbox_wait(0.01),  # a blocking XREAD
    }
    lost, tried = await outcomes(calls[name])
    assert lost == [], f"{name}: cancelled after {lost} ticks, it returned its answer"
    assert tried >= 3  # the cancel met the call in flight, not only before it started
    assert await storage.get_state("k") == {"v": 1}  # the connections still serve


@dataclass
class Private:
    """A `redis-server` of the test's own: a TCP port, a TLS port and a Unix socket."""

    proc: asyncio.subprocess.Process
    port: int
    tls_port: int
    socket: Path

    @property
    def urls(self) -> dict[str, str]:
        return {
            "redis": f"redis://127.0.0.1:{self.port}/0",
            "rediss": f"rediss://127.0.0.1:{self.tls_port}/0?ssl_cert_reqs=none",
            "unix": f"unix://{self.socket}?db=0",
        }


@pytest.fixture
async def private(tmp_path: Path) -> AsyncIterator[Private]:
    if shutil.which("redis-server") is None or shutil.which("openssl") is None:
        pytest.skip("redis-server and openssl are not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = await asyncio.create_subprocess_exec(
        *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"),
        *("ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
        *("-keyout", str(key), "-out", str(cert)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert await made.wait() == 0
    port, tls_port, sock = free_port(), free_port(), tmp_path / "redis.sock"
    proc = await asyncio.create_subprocess_exec(
        *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
        *("--appendonly", "no", "--dir", str(tmp_path), "--unixsocket", str(sock)),
        *("--tls-port", str(tls_port), "--tls-cert-file", str(cert)),
        *("--tls-key-file", str(key), "--tls-auth-clients", "no"),
        stdout=asyncio.subprocess.DEVNULL,
    )
    server = Private(proc, port, tls_port, sock)
    try:
        for _ in range(200):
            probe = RedisStorage(server.urls["redis"])
            try:
                await probe.open()
            except StorageError:
                await asyncio.sleep(0.025)
                continue
            await probe.close()
            break
        yield server
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        await proc.wait()


@pytest.mark.parametrize("scheme", ["redis", "rediss", "unix"])
async def test_storage_redis_every_url_scheme_keeps_a_cancel(private: Private, scheme: str) -> None:
    async with RedisStorage(private.urls[scheme]) as storage:
        await storage.set_state("k", {"v": scheme})
        lost, tried = await outcomes(lambda: storage.get_state("k"))
        assert lost == [], f"{scheme}: cancelled after {lost} ticks, it returned its answer"
        assert tried >= 3
        assert await storage.get_state("k") == {"v": scheme}


async def test_storage_redis_a_write_redis_does_not_take_times_out_and_the_next_call_serves(
    private: Private,
) -> None:
    # Redis stopped (SIGSTOP) reads nothing: 32 MiB fill the socket buffers and the send waits
    # past socket_timeout (from the URL), fails as redis-py's does and drops the connection.
    async with RedisStorage(private.urls["redis"] + "?socket_timeout=0.5") as storage:
        await storage.set_state("k", 1)
        private.proc.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(StorageError, match="Timeout writing to socket"):
                await storage.set_state("big", "x" * (32 << 20))
        finally:
            private.proc.send_signal(signal.SIGCONT)
        # The next call serves, on a new connection. (The big one may still run: closing the
        # old one flushes the bytes asyncio had buffered, as with redis-py's own connections.)
        assert await storage.get_state("k") == 1


async def test_storage_redis_an_inbox_wait_longer_than_socket_timeout_is_no_failure() -> None:
    # The claim loop waits 1 s for an arrival (a blocking XREAD); with `?socket_timeout=0.5` the
    # answer came after the read timeout, so an idle worker logged a storage outage each second.
    prefix = f"qbot-cancel-{uuid.uuid4().hex}:"
    url = f"redis://127.0.0.1:6379/0?prefix={prefix}&socket_timeout=0.5"
    async with RedisStorage(url) as storage:
        try:
            await storage.inbox_wait(1.0)  # nothing arrives
            await storage.inbox_put("r1", "hello", dedupe_key=None, dedupe_ttl=60)
            async with asyncio.timeout(30):  # a hang guard, not a measure
                await storage.inbox_wait(1.0)  # returns for the arrival
            assert await storage.get_state("missing") is None  # the connections still serve
        finally:
            await storage.drop()
