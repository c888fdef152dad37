"""The per-request log lines: one bound logger per structlog configuration, never a stale one."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from qbot._logcache import LineLogger
from qbot.client import QiscusClient
from qbot.emulator import Emulator
from qbot.log import configure_logging


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _events(out: io.StringIO) -> list[str]:
    return [json.loads(line)["event"] for line in out.getvalue().splitlines()]


def test_the_bound_logger_is_kept_while_the_configuration_stays() -> None:
    configure_logging("info", "json", stream=io.StringIO())
    lines = LineLogger("t")
    assert lines.get() is lines.get()


def test_a_new_configuration_reaches_a_logger_bound_before_it() -> None:
    first, second = io.StringIO(), io.StringIO()
    lines = LineLogger("t")
    configure_logging("debug", "json", stream=first)
    lines.get().debug("one")
    configure_logging("debug", "json", stream=second)
    lines.get().debug("two")
    configure_logging("info", "json", stream=second)
    lines.get().debug("dropped")
    lines.get().info("three")
    assert _events(first) == ["one"]
    assert _events(second) == ["two", "three"]


def test_capture_logs_sees_lines_of_a_logger_bound_before_it() -> None:
    lines = LineLogger("t")
    lines.get().debug("before")
    with capture_logs() as logs:
        lines.get().debug("inside", key="v")
    assert [e["event"] for e in logs] == ["inside"]


async def test_every_try_is_logged_to_the_configuration_of_its_time(
    fake_qiscus: Emulator,
) -> None:
    first, second = io.StringIO(), io.StringIO()
    async with QiscusClient("fake-app", "fake-secret", base_url=fake_qiscus.base_url) as client:
        configure_logging("debug", "json", stream=first)
        await client.post_comment("bot@example.com", 1, "hi")
        configure_logging("debug", "json", stream=second)
        await client.post_comment("bot@example.com", 1, "again")
    assert _events(first).count("qiscus.request") == 1
    assert _events(second).count("qiscus.request") == 1


def test_at_answers_none_for_a_level_the_configuration_drops() -> None:
    out = io.StringIO()
    lines = LineLogger("t")
    configure_logging("info", "json", stream=out)
    assert lines.at(logging.DEBUG) is None
    info = lines.at(logging.INFO)
    assert info is not None
    info.info("kept")
    configure_logging("debug", "json", stream=out)
    debug = lines.at(logging.DEBUG)
    assert debug is not None
    debug.debug("now kept")
    assert _events(out) == ["kept", "now kept"]


async def test_the_request_line_keeps_its_stdlib_logger_name(
    fake_qiscus: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    structlog.configure(
        processors=[structlog.stdlib.render_to_log_kwargs],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
    )
    with caplog.at_level(logging.DEBUG):
        async with QiscusClient("fake-app", "fake-secret", base_url=fake_qiscus.base_url) as c:
            await c.post_comment("bot@example.com", 1, "hi")
    names = {r.name for r in caplog.records if r.getMessage() == "qiscus.request"}
    assert names == {"qbot._http"}
