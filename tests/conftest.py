"""Shared fixtures: a fake Qiscus server per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.fake_qiscus import FakeQiscus


@pytest_asyncio.fixture
async def fake_qiscus() -> AsyncIterator[FakeQiscus]:
    """A started `FakeQiscus` (app ``fake-app``, secret ``fake-secret``), closed after the test."""
    async with FakeQiscus() as fake:
        yield fake
