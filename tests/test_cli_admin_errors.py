"""Admin commands keep the one-line promise: one ``error:`` line, nothing before it, exit 1.

The commands run against the emulator's REST API served on a real port, or against a closed
port; each runs in a worker thread (it calls ``asyncio.run``) while the test's loop serves.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import pytest_asyncio
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result

from qbot import _cli_admin
from qbot._cli_admin import register
from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, create_emulator_app

BOT = "bot@example.com"
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@click.group()
def cli() -> None:
    """The admin commands on a bare group, as ``qbot`` registers them."""


register(cli)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    import os

    for key in list(os.environ):
        if key.startswith("QBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest_asyncio.fixture
async def emulator_url(tmp_path: Path, aiohttp_server: ServerFactory) -> AsyncIterator[str]:
    config = EmulatorConfig(app_id="test-app", secret_key="test-secret", bot_email=BOT)
    emulator = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"))
    await emulator.start()
    server = await aiohttp_server(create_emulator_app(emulator, manage=False))
    yield str(server.make_url("")).rstrip("/")
    await emulator.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(base_url: str, extra: str = "", **qiscus: Any) -> Path:
    path = Path("config.yaml")
    lines = [
        "qiscus:",
        "  app_id: test-app",
        "  secret_key: test-secret",
        f"  base_url: {base_url}",
        *(f"  {key}: {value}" for key, value in qiscus.items()),
        "bot:",
        f"  email: {BOT}",
    ]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


async def qbot(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


def the_one_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


COMMANDS = [
    pytest.param(["send", "7", "hi"], "post_comment", id="send"),
    pytest.param(["users", "register", "ann@x.com", "Ann"], "login_or_register", id="users"),
    pytest.param(["export", "users", "--from", "2026-01-01"], "exports", id="export"),
    pytest.param(["exports", "list"], "exports", id="exports-list"),
]


@pytest.mark.parametrize(("command", "endpoint"), COMMANDS)
async def test_unreachable_api_is_one_line_without_retry_warnings(
    command: list[str], endpoint: str
) -> None:
    port = closed_port()
    # Retries on: every try fails to connect; none of them may print a line of its own.
    write_config(f"http://127.0.0.1:{port}", max_attempts=3, max_retry_time=2)

    line = the_one_line(await qbot(*command))

    assert line == (
        f"error: could not reach Qiscus at http://127.0.0.1:{port} (/api/v2/rest/{endpoint}): "
        f"cannot connect to 127.0.0.1:{port}: connection refused; "
        "check qiscus.base_url and the network"
    )
    assert "ssl" not in line


async def test_unknown_room_says_not_found_once(emulator_url: str) -> None:
    write_config(emulator_url)

    line = the_one_line(await qbot("send", "999", "hi"))

    assert line == "error: not found (404) on /api/v2/rest/post_comment: room '999' not found"


async def test_refused_request_names_each_problem_once(emulator_url: str) -> None:
    write_config(emulator_url)

    line = the_one_line(await qbot("rooms", "create", "Team", "nobody@x.com"))

    assert line == (
        "error: not found (404) on /api/v2/rest/create_room: "
        "user 'nobody@x.com' not found: register it with login_or_register; "
        "participants: is invalid"
    )


async def test_a_debug_log_level_still_shows_the_retries(emulator_url: str) -> None:
    port = closed_port()
    debug = "log:\n  level: debug\n  format: json\n"
    write_config(f"http://127.0.0.1:{port}", debug, max_attempts=2, max_retry_time=2)

    result = await qbot("send", "7", "hi")

    assert result.exit_code == 1
    assert '"event":"qiscus.retry"' in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: could not reach Qiscus")


def test_admin_commands_are_module_level_click_commands() -> None:
    names = {"export", "exports", "import", "imports", "users", "rooms", "send"}
    assert set(cli.commands) == names
    for name in names:
        command = cli.commands[name]
        assert getattr(_cli_admin, command.callback.__name__) is command  # type: ignore[union-attr]
