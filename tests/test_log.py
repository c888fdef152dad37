"""Logging: JSON lines off a terminal, console on one, per-update context, no secrets."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from qbot.log import configure_logging


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_log_json_when_not_a_terminal_with_bound_context() -> None:
    out = io.StringIO()
    configure_logging("info", "auto", stream=out)
    with structlog.contextvars.bound_contextvars(room_id="7", message_id="id:1"):
        structlog.get_logger("t").info("reply.sent", to_room="7")
    line = json.loads(out.getvalue())
    assert line["event"] == "reply.sent"
    assert line["room_id"] == "7"
    assert line["message_id"] == "id:1"
    assert line["level"] == "info"
    assert "timestamp" in line


def test_log_console_on_a_terminal_and_level_filter() -> None:
    out = Tty()
    configure_logging("warning", "auto", stream=out)
    log = structlog.get_logger("t")
    log.info("quiet.event")
    log.warning("loud.event", key="v")
    text = out.getvalue()
    assert "quiet.event" not in text
    assert "loud.event" in text and "key" in text
    assert not text.lstrip().startswith("{")


def test_log_json_lines_carry_what_orjson_alone_refuses() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = structlog.get_logger("t")
    log.info("big.number", value=2**70, by_id={7: "seven"})
    log.info("odd.value", value=Tty(), text="ñ 🙂")
    big, odd = (json.loads(line) for line in out.getvalue().splitlines())
    assert big["value"] == 2**70
    assert big["by_id"] == {"7": "seven"}
    assert "Tty" in odd["value"]  # repr() of what JSON cannot hold
    assert odd["text"] == "ñ 🙂"


def test_log_library_errors_become_json_lines_with_their_traceback_redacted() -> None:
    # aiohttp and asyncio log through the standard library; a record of theirs must be one of
    # qbot's JSON lines (parseable by a log collector, secrets scrubbed), not a plain-text
    # traceback from Python's last-resort handler.
    import logging

    from qbot.log import redact

    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    redact(["s3cr3t-key"])
    try:
        raise RuntimeError("calling https://api.example/?key=s3cr3t-key failed")
    except RuntimeError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "1.2.3.4")
    logging.getLogger("asyncio").warning("Task exception was never retrieved")
    logging.getLogger("aiohttp.access").info("an access line stays below the level")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [
        "Error handling request from 1.2.3.4",
        "Task exception was never retrieved",
    ]
    assert lines[0]["level"] == "error"
    assert "RuntimeError" in lines[0]["exception"]
    assert "s3cr3t-key" not in out.getvalue()
    configure_logging("info", "json", stream=out)  # configuring twice adds no second handler
    assert (
        logging.getLogger("aiohttp").handlers.count(logging.getLogger("aiohttp").handlers[0]) == 1
    )


def test_log_timestamps_are_utc_with_microseconds_even_at_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = structlog.get_logger("t")
    for now in (1764597600.0, 1764597600.25, 1764597601.5):
        monkeypatch.setattr("qbot.log.time.time", lambda now=now: now)
        log.info("tick")
    stamps = [json.loads(line)["timestamp"] for line in out.getvalue().splitlines()]
    assert stamps == [
        "2025-12-01T14:00:00.000000Z",
        "2025-12-01T14:00:00.250000Z",
        "2025-12-01T14:00:01.500000Z",
    ]


def test_log_levels_stacks_and_exceptions_in_json() -> None:
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    log = structlog.get_logger("t")
    log.warning("w", stack_info=True)
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        log.exception("failed")
    warned, failed = (json.loads(line) for line in out.getvalue().splitlines())
    assert warned["level"] == "warning"
    # The stack starts at the caller, not inside qbot's logging or structlog.
    assert (
        warned["stack"]
        .splitlines()[-2]
        .endswith("in test_log_levels_stacks_and_exceptions_in_json")
    )
    assert failed["level"] == "error"
    assert "ZeroDivisionError: boom" in failed["exception"]
