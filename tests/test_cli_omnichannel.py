"""``qbot omnichannel agents|divisions|rooms`` against the emulator's Omnichannel endpoints.

Commands call ``asyncio.run`` themselves, so each runs in a worker thread while the emulator
keeps serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result

from qbot.cli import main
from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, create_emulator_app
from qbot.emulator.desk import OmnichannelDesk
from qbot.emulator.omnichannel import OMNICHANNEL_KEY

APP = "kovof-123"
SECRET = "omni-secret"
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@dataclass
class Running:
    emulator: Emulator
    desk: OmnichannelDesk
    url: str
    room_id: int


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    # The commands configure structlog to write on CliRunner's stderr, closed after each run.
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("QBOT_"):
            monkeypatch.delenv(key)


@pytest_asyncio.fixture
async def running(tmp_path: Path, aiohttp_server: ServerFactory) -> AsyncIterator[Running]:
    config = EmulatorConfig(app_id=APP, secret_key=SECRET, bot_email="bot@shop.local")
    emulator = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"))
    await emulator.start()
    app = create_emulator_app(emulator, manage=False)
    server = await aiohttp_server(app)
    await emulator.store.upsert_user("6281234@wa", "Harpi")
    room = await emulator.store.create_room(
        name="Harpi",
        room_type="group",
        creator="6281234@wa",
        participants=[config.bot_email],
        options=json.dumps({"source": "wa"}),
    )
    url = str(server.make_url("")).rstrip("/")
    yield Running(emulator, app[OMNICHANNEL_KEY], url, int(room["id"]))
    await emulator.close()


def write_config(tmp_path: Path, url: str, secret: str = SECRET, attempts: int = 2) -> Path:
    settings = {
        "qiscus": {
            "app_id": APP,
            "secret_key": secret,
            "base_url": url,
            "max_attempts": attempts,
            "max_retry_time": 5,
        },
        "bot": {"email": "bot@shop.local"},
        "omnichannel": {"base_url": url},
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(settings))  # JSON is YAML
    return path


async def qbot(*args: str | Path) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, main, [str(a) for a in args])


def rows(result: Result) -> list[list[str]]:
    assert result.exit_code == 0, result.output + result.stderr
    return [line.split("  ") for line in result.stdout.strip().splitlines()]


def cells(result: Result) -> list[list[str]]:
    """Each output row's non-empty cells."""
    return [[c.strip() for c in row if c.strip()] for row in rows(result)]


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


async def test_divisions_lists_the_desk_divisions(running: Running, tmp_path: Path) -> None:
    result = await qbot("omnichannel", "divisions", "--config", write_config(tmp_path, running.url))

    assert cells(result) == [["id", "name"], ["1", "support"], ["2", "sales"]]


async def test_agents_lists_everyone_or_a_division_by_name(
    running: Running, tmp_path: Path
) -> None:
    config = write_config(tmp_path, running.url)
    await running.desk.assign(running.room_id, 101)

    everyone = cells(await qbot("omnichannel", "agents", "--config", config))
    sales = cells(await qbot("omnichannel", "agents", "--division", "Sales", "--config", config))
    available = cells(await qbot("omnichannel", "agents", "--available", "--config", config))

    assert everyone[0] == ["id", "name", "email", "available", "customers", "divisions"]
    assert everyone[1] == ["101", "Ayu", "ayu@desk.qbot.local", "yes", "1", "support"]
    assert [r[1] for r in sales[1:]] == ["Bima", "Citra"]
    assert sales[1][-1] == "support, sales"
    assert [r[1] for r in available[1:]] == ["Ayu", "Bima"]


async def test_rooms_shows_who_handles_each_room(running: Running, tmp_path: Path) -> None:
    config = write_config(tmp_path, running.url)
    await running.desk.service(running.room_id)
    rid = str(running.room_id)

    assert cells(await qbot("omnichannel", "rooms", "--config", config))[1:] == [
        [rid, "Harpi", "wa", "bot"]
    ]
    await running.desk.assign(running.room_id, 102)
    running.desk.services[running.room_id].is_handled_by_bot = False
    assert cells(await qbot("omnichannel", "rooms", rid, "--config", config))[1:] == [
        [rid, "Harpi", "wa", "agent: Bima"]
    ]
    await running.desk.resolve(running.room_id)
    assert cells(await qbot("omnichannel", "rooms", "--config", config))[1:] == []
    resolved = await qbot("omnichannel", "rooms", "--status", "resolved", "--config", config)
    assert cells(resolved)[1:] == [[rid, "Harpi", "wa", "resolved"]]


async def test_an_unknown_division_is_one_line_and_exit_2(running: Running, tmp_path: Path) -> None:
    config = write_config(tmp_path, running.url)

    result = await qbot("omnichannel", "agents", "--division", "billing", "--config", config)

    assert result.exit_code == 2
    assert "no Omnichannel division 'billing'" in one_error_line(result)


async def test_a_wrong_secret_is_one_line_naming_the_setting(
    running: Running, tmp_path: Path
) -> None:
    config = write_config(tmp_path, running.url, secret="wrong")

    result = await qbot("omnichannel", "divisions", "--config", config)

    assert result.exit_code == 1
    line = one_error_line(result)
    assert "rejected the credentials (401)" in line
    assert "qiscus.secret_key" in line


async def test_an_unknown_room_is_one_line_and_exit_1(running: Running, tmp_path: Path) -> None:
    config = write_config(tmp_path, running.url)

    result = await qbot("omnichannel", "rooms", "424242", "--config", config)

    assert result.exit_code == 1
    assert "room '424242' not found" in one_error_line(result)


async def test_an_unreachable_desk_names_the_base_url_setting(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", attempts=1)

    result = await qbot("omnichannel", "divisions", "--config", config)

    assert result.exit_code == 1
    assert "check omnichannel.base_url" in one_error_line(result)


async def test_retries_of_an_unreachable_desk_are_not_printed_before_the_error(
    tmp_path: Path,
) -> None:
    # Three tries: the two retries were logged as JSON lines on stderr above the error line.
    config = write_config(tmp_path, "http://127.0.0.1:9", attempts=3)

    result = await qbot("omnichannel", "agents", "--config", config)

    assert result.exit_code == 1
    assert "could not reach" in one_error_line(result)


async def test_a_missing_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = await qbot("omnichannel", "divisions", "--config", tmp_path / "absent.yaml")

    assert result.exit_code == 2
    assert "does not exist" in one_error_line(result)


async def test_connect_registers_the_bot_and_resolved_webhooks_with_the_token(
    running: Running, tmp_path: Path
) -> None:
    config = write_config(tmp_path, running.url)
    config.write_text(
        config.read_text().replace('"omnichannel": {', '"omnichannel": {"webhook_token": "t0k&", ')
    )
    result = await qbot(
        "omnichannel", "connect", "--url", "https://bot.example.com/", "--config", config
    )
    assert result.exit_code == 0, result.stderr
    assert running.desk.bot_webhook_url == "https://bot.example.com/webhook"
    assert (
        running.desk.resolved_webhook_url == "https://bot.example.com/webhook/resolved?token=t0k%26"
    )
    assert "t0k" not in result.stdout  # the token is not printed
    assert "resolved?token=***" in result.stdout


async def test_connect_refuses_a_url_that_is_not_http(running: Running, tmp_path: Path) -> None:
    config = write_config(tmp_path, running.url)
    result = await qbot("omnichannel", "connect", "--url", "bot.example.com", "--config", config)
    assert result.exit_code == 2
    assert "must be an http(s) URL" in one_error_line(result)


@pytest.mark.parametrize("room", ["abc", "12a", "1.5", "１２"])
async def test_a_room_id_that_is_not_digits_is_a_usage_error_before_any_call(
    running: Running, tmp_path: Path, room: str
) -> None:
    config = write_config(tmp_path, running.url)

    result = await qbot("omnichannel", "rooms", str(running.room_id), room, "--config", config)

    assert result.exit_code == 2  # was 1, "room 'abc' not found", after asking the desk
    line = one_error_line(result)
    assert "is not a room id" in line and "digits" in line
