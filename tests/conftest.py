"""Shared fixtures: the Qiscus emulator for one test; Redis tests skip when none answers.

Tests marked ``redis`` talk to the Redis server at 127.0.0.1:6379. Without one they are skipped
with a reason, except under CI (``CI=true``), where a missing Redis fails them: CI must never
pass by skipping. ``QBOT_TEST_REDIS`` (``host:port``) moves the address this check probes, so
the skip itself can be tested against a port where nothing listens.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from functools import cache

import pytest
import pytest_asyncio

from qbot.emulator import Emulator, serve_emulator
from tests.emulated import FAKE, fake_store

REDIS_ADDRESS = os.environ.get("QBOT_TEST_REDIS", "127.0.0.1:6379")


@cache
def _redis_answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("redis") is None or _redis_answers(REDIS_ADDRESS):
        return
    reason = (
        f"no Redis server answers at {REDIS_ADDRESS}: start one "
        "(`redis-server`, `apt-get install redis-server` or `docker run -p 6379:6379 redis`)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest_asyncio.fixture
async def fake_qiscus() -> AsyncIterator[Emulator]:
    """A served, lenient emulator (app ``fake-app``, secret ``fake-secret``), closed after."""
    async with serve_emulator(FAKE, fake_store()) as emulator:
        yield emulator
