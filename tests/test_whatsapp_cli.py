"""``qbot templates list`` against the emulator's templates (the command runs in a thread)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result

from qbot._json import dumps_text, loads
from qbot.cli import main
from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, create_emulator_app
from qbot.emulator.desk import OmnichannelDesk
from qbot.emulator.omnichannel import OMNICHANNEL_KEY

APP = "kovof-123"
SECRET = "omni-secret"
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("QBOT_"):
            monkeypatch.delenv(key)


@pytest_asyncio.fixture
async def served(
    tmp_path: Path, aiohttp_server: ServerFactory
) -> AsyncIterator[tuple[OmnichannelDesk, Emulator, Path]]:
    config = EmulatorConfig(app_id=APP, secret_key=SECRET, bot_email="bot@shop.local")
    emulator = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"))
    await emulator.start()
    app = create_emulator_app(emulator, manage=False)
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    path = tmp_path / "config.yaml"
    path.write_text(
        dumps_text(
            {
                "qiscus": {"app_id": APP, "secret_key": SECRET, "base_url": url,
                           "max_attempts": 1},
                "bot": {"email": "bot@shop.local"},
                "omnichannel": {"base_url": url},
            }
        )
    )  # fmt: skip
    yield app[OMNICHANNEL_KEY], emulator, path
    await emulator.close()


async def qbot(*args: str | Path) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, main, [str(a) for a in args])


async def test_templates_list_prints_one_row_per_approved_template_and_language(
    served: tuple[OmnichannelDesk, Emulator, Path],
) -> None:
    _, _, config = served
    result = await qbot("templates", "list", "--config", config)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["name", "language", "category", "variables", "body"]
    rows = {(line.split()[0], line.split()[1]): line for line in lines[1:]}
    assert ("order_shipped", "id") in rows and ("order_shipped", "en") in rows
    assert ("promo_weekend", "id") not in rows  # not approved yet
    shipped = rows[("order_shipped", "id")].split()
    assert shipped[2:4] == ["UTILITY", "3"]
    assert "Halo {{1}}, pesanan {{2}}" in rows[("order_shipped", "id")]
    assert rows[("otp_code", "id")].split()[2:4] == ["AUTHENTICATION", "1"]
    everything = await qbot("templates", "list", "--all", "--config", config)
    assert "promo_weekend" in everything.stdout


async def test_templates_list_json_has_every_field(
    served: tuple[OmnichannelDesk, Emulator, Path],
) -> None:
    desk, _, config = served
    desk.whatsapp.add("long_one", [{"language": "en", "content": "x" * 300 + " {{1}}"}])
    result = await qbot("templates", "list", "--json", "--config", config)
    assert result.exit_code == 0, result.output
    found = {(r["name"], r["language"]): r for r in loads(result.stdout)}
    shipped = found[("order_shipped", "id")]
    assert shipped["variables"] == 3
    assert shipped["quick_replies"] == ["Lacak pesanan", "Hubungi CS"]
    assert shipped["header"] == "Pesanan dikirim"
    assert shipped["namespace"]
    assert len(found[("long_one", "en")]["body"]) == 306  # the table shortens, JSON does not
    table = await qbot("templates", "list", "--config", config)
    [long_row] = [line for line in table.stdout.splitlines() if line.startswith("long_one")]
    assert long_row.endswith("…")


async def test_templates_list_of_an_unknown_channel_names_the_apps_channels(
    served: tuple[OmnichannelDesk, Emulator, Path],
) -> None:
    # It answered "no approved templates" (exit 0) for a channel the app does not have.
    _, _, config = served
    result = await qbot("templates", "list", "--channel", "9", "--config", config)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the app has no WhatsApp channel 9 (its channels: 2 (")
    known = await qbot("templates", "list", "--channel", "2", "--config", config)
    assert known.exit_code == 0 and "order_shipped" in known.stdout


async def test_templates_list_fails_in_one_line(
    served: tuple[OmnichannelDesk, Emulator, Path], tmp_path: Path
) -> None:
    _, emulator, config = served
    emulator.fail_next("/api/v2/admin/hsm", status=500)
    result = await qbot("templates", "list", "--config", config)
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: Omnichannel refused (500) on /api/v2/admin/hsm")
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace(SECRET, "wrong"))
    denied = await qbot("templates", "list", "--config", bad)
    assert denied.exit_code == 1 and "rejected the credentials (401)" in denied.stderr
    missing = await qbot("templates", "list", "--config", tmp_path / "nope.yaml")
    assert missing.exit_code == 2 and "Traceback" not in missing.stderr
