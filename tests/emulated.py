"""The emulator as the tests' Qiscus: the settings the `fake_qiscus` fixture serves it with."""

from __future__ import annotations

import dataclasses

from qbot.emulator import EmulatorConfig, EmulatorStore

#: Lenient: the rooms and users a test posts to exist without setup.
FAKE = EmulatorConfig(app_id="fake-app", secret_key="fake-secret", lenient=True)
#: Like Qiscus: unknown rooms and users are 404.
STRICT = dataclasses.replace(FAKE, lenient=False, bot_email="bot@example.com")


def fake_store() -> EmulatorStore:
    """A throw-away store whose rooms, comments and users count from 1."""
    return EmulatorStore(":memory:", first_id=1)
