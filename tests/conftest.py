"""Shared fixtures: the Qiscus emulator, served on 127.0.0.1 for one test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from qbot.emulator import Emulator, serve_emulator
from tests.emulated import FAKE, fake_store


@pytest_asyncio.fixture
async def fake_qiscus() -> AsyncIterator[Emulator]:
    """A served, lenient emulator (app ``fake-app``, secret ``fake-secret``), closed after."""
    async with serve_emulator(FAKE, fake_store()) as emulator:
        yield emulator
