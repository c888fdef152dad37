"""``qbot broadcast`` from the command line: dry runs, one-line errors, --status, --resume, --at."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result

import qbot._cli_broadcast as cli
from qbot._cli_broadcast import check_at, parse_at
from qbot._retry import RetryPolicy
from qbot.broadcast import Broadcast
from qbot.cli import main
from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, create_emulator_app
from qbot.emulator.desk import OmnichannelDesk
from qbot.emulator.omnichannel import OMNICHANNEL_KEY
from qbot.errors import ConfigError

APP = "kovof-123"
SECRET = "omni-secret"
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
CSV = (
    "phone,name,order,eta\n081211110001,Ana,A-1,besok\nnope,Budi,A-2,lusa\n"
    "6281211110003,Citra,A-3,Senin\n"
)


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
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
async def desk(
    tmp_path: Path, aiohttp_server: ServerFactory
) -> AsyncIterator[tuple[OmnichannelDesk, Path]]:
    config = EmulatorConfig(app_id=APP, secret_key=SECRET, bot_email="bot@shop.local")
    emulator = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"))
    await emulator.start()
    app = create_emulator_app(emulator, manage=False)
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    path = tmp_path / "config.yaml"
    path.write_text(
        json.dumps(
            {
                "qiscus": {"app_id": APP, "secret_key": SECRET, "base_url": url},
                "bot": {"email": "bot@shop.local"},
                "omnichannel": {"base_url": url},
            }
        )
    )
    yield app[OMNICHANNEL_KEY], path
    await emulator.close()


async def qbot(*args: str | Path) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, main, [str(a) for a in args])


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


async def test_a_dry_run_lists_the_refused_rows_and_sends_nothing(
    desk: tuple[OmnichannelDesk, Path], tmp_path: Path
) -> None:
    omni, config = desk
    csv = tmp_path / "c.csv"
    csv.write_text(CSV)
    result = await qbot(
        "broadcast", "--template", "order_shipped", "--csv", csv, "--config", config, "--dry-run"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "dry run: 2 to send, 1 refused; nothing sent",
        "  line 3: phone 'nope' is not a phone number",
        f"report: {tmp_path / 'c.order_shipped.report.csv'}",
    ]
    assert omni.whatsapp.sent == []


async def test_a_run_then_status_then_resume(
    desk: tuple[OmnichannelDesk, Path], tmp_path: Path
) -> None:
    omni, config = desk
    csv = tmp_path / "c.csv"
    csv.write_text(CSV)
    args = ("broadcast", "--template", "order_shipped", "--csv", csv, "--config", config)
    result = await qbot(*args, "--report", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(f"2 sent, 1 refused; report: {tmp_path / 'out.json'}")
    rows = json.loads((tmp_path / "out.json").read_text())
    assert [r["status"] for r in rows] == ["sent", "refused", "sent"]
    status = await qbot(*args, "--status")
    assert status.exit_code == 0
    assert status.stdout.splitlines()[0] == "2 sent, 1 refused"
    again = await qbot(*args, "--resume")
    assert again.exit_code == 0
    assert len(omni.whatsapp.sent) == 2


async def test_mistakes_are_one_line_and_exit_2(
    desk: tuple[OmnichannelDesk, Path], tmp_path: Path
) -> None:
    _, config = desk
    csv = tmp_path / "c.csv"
    csv.write_text(CSV)
    nophone = tmp_path / "nophone.csv"
    nophone.write_text("name,order\nAna,A-1\n")
    base = ("broadcast", "--config", config)
    cases = {
        ("--template", "order_shipped", "--csv", nophone): "has no phone column",
        ("--template", "order_shipped", "--csv", tmp_path / "none.csv"): "does not exist",
        ("--template", "nope", "--csv", csv): "no approved WhatsApp template 'nope'",
        ("--template", "otp_code", "--csv", csv): "takes 1 variable(s) but the CSV has 3",
        (
            "--template",
            "order_shipped",
            "--csv",
            csv,
            "--rate",
            "fast",
        ): "rate 'fast' must look like",
        ("--template", "order_shipped", "--csv", csv, "--at", "soon"): "--at 'soon' must be",
        ("--template", "order_shipped", "--csv", csv, "--resume"): "no journal",
        ("--template", "order_shipped", "--csv", csv, "--status"): "has not been started",
        ("--template", "order_shipped", "--csv", csv, "--concurrency", "0"): "concurrency 0",
        # An unknown channel is refused before any send: sending would journal every
        # recipient "refused" and a run with the right channel would then message nobody.
        ("--template", "order_shipped", "--csv", csv, "--channel", "9"): "no WhatsApp channel 9",
        # The suffix is the format: r.txt was written as CSV without a word.
        ("--template", "order_shipped", "--csv", csv, "--report", tmp_path / "r.txt"): (
            "--report '" + str(tmp_path / "r.txt") + "' ends in '.txt': name it .csv or .json"
        ),
        ("--template", "order_shipped", "--csv", csv, "--report", "r", "--status"): (
            "--report 'r' has no suffix"
        ),
        # Found after the last send, this was an exit 2 as if nothing had been sent.
        ("--template", "order_shipped", "--csv", csv, "--report", tmp_path / "no" / "r.csv"): (
            f"folder '{tmp_path / 'no'}' does not exist"
        ),
    }
    for extra, expected in cases.items():
        result = await qbot(*base, *extra)
        assert expected in one_error_line(result), (extra, result.stderr)
    assert not (tmp_path / "r.txt").exists()
    result = await qbot(*base, "--template", "order_shipped", "--csv", csv)
    assert result.exit_code == 0 and "2 sent, 1 refused" in result.stdout, result.output
    unwritable = tmp_path / "a-folder.csv"  # a folder where the report should go
    unwritable.mkdir()
    result = await qbot(
        *base, "--template", "order_shipped", "--csv", csv, "--status", "--report", unwritable
    )
    assert "cannot write the report" in one_error_line(result)


async def test_unreachable_omnichannel_is_one_line_and_exit_1(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "qiscus": {"app_id": APP, "secret_key": SECRET, "base_url": "http://127.0.0.1:9"},
                "bot": {"email": "bot@shop.local"},
                "omnichannel": {"base_url": "http://127.0.0.1:9"},
            }
        )
    )
    csv = tmp_path / "c.csv"
    csv.write_text(CSV)
    result = await qbot(
        "broadcast", "--template", "order_shipped", "--csv", csv, "--config", config
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1].startswith("error: Omnichannel could not be asked")
    )


def test_at_reads_dates_times_and_offsets() -> None:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC).timestamp()  # 10:00 WIB
    assert parse_at("2026-12-02T09:00", now) == datetime(2026, 12, 2, 2, 0, tzinfo=UTC).timestamp()
    assert (
        parse_at("2026-12-02 09:00+00:00", now)
        == datetime(2026, 12, 2, 9, 0, tzinfo=UTC).timestamp()
    )
    assert parse_at("11:30", now) == datetime(2026, 12, 1, 4, 30, tzinfo=UTC).timestamp()  # today
    assert parse_at("09:00", now) == datetime(2026, 12, 2, 2, 0, tzinfo=UTC).timestamp()  # tomorrow
    assert parse_at("09:00", now, "UTC") == datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp()
    for bad in ("25:00", "tomorrow", "9am"):
        with pytest.raises(ConfigError):
            parse_at(bad, now)


async def test_at_in_the_past_is_refused_unless_resuming(
    desk: tuple[OmnichannelDesk, Path], tmp_path: Path
) -> None:
    # A past --at sent at once without a word: yesterday's date typed by mistake messaged
    # everyone now. It is refused for a new broadcast, and fine when resuming a started one.
    omni, config = desk
    csv = tmp_path / "c.csv"
    csv.write_text(CSV)
    args = ("broadcast", "--template", "order_shipped", "--csv", csv, "--config", config)
    refused = await qbot(*args, "--at", "2026-01-05T09:00")
    line = one_error_line(refused)
    assert (
        "--at '2026-01-05T09:00' is " in line and " in the past (2026-01-05T09:00+07:00; " in line
    )
    assert "it is now " in line and "leave --at out to start now" in line
    assert one_error_line(await qbot(*args, "--at", "2026-01-05T09:00", "--dry-run")) == line
    assert omni.whatsapp.sent == []
    just_now = (datetime.now(UTC) - timedelta(seconds=20)).isoformat(timespec="seconds")
    started = await qbot(*args, "--at", just_now)  # within the grace: typing takes time
    assert started.exit_code == 0, started.output
    assert len(omni.whatsapp.sent) == 2
    resumed = await qbot(*args, "--at", "2026-01-05T09:00")  # the journal exists: a resume
    assert resumed.exit_code == 0, resumed.output
    assert len(omni.whatsapp.sent) == 2


def test_check_at_names_how_long_ago() -> None:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC).timestamp()  # 10:00 WIB
    check_at(now - 60, now, "x")
    check_at(now + 3600, now, "x")
    for ago, words in [(61, "1 min"), (4 * 3600 + 720, "4 h 12 min"), (3 * 86400, "3 days")]:
        with pytest.raises(ConfigError, match=f"is {words} in the past"):
            check_at(now - ago, now, "x")
    with pytest.raises(ConfigError, match=r"\(2026-12-01T09:00\+07:00; it is now 2026-12-01T10:00"):
        check_at(now - 3600, now, "x")


async def test_recipients_left_pending_are_one_line_not_a_log_line_each(
    desk: tuple[OmnichannelDesk, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # WhatsApp answering 503 for good: each recipient given up on was a JSON warning on stderr,
    # between the progress bar and the summary (10,000 lines for 10,000 recipients).
    omni, config = desk
    fast = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0, jitter=False)
    monkeypatch.setattr(cli, "Broadcast", functools.partial(Broadcast, retry=fast))
    omni.em.fail_next(f"/whatsapp/v1/{APP}/2/messages", status=503, times=100)
    csv = tmp_path / "c.csv"
    csv.write_text(CSV)
    result = await qbot(
        "broadcast", "--template", "order_shipped", "--csv", csv, "--config", config
    )
    assert result.exit_code == 1
    assert result.stdout.strip().endswith(
        "1 refused, 2 pending; report: " + str(tmp_path / "c.order_shipped.report.csv")
    )
    assert '"event"' not in result.stderr and "broadcast.gave_up" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "2 recipient(s) left pending: WhatsApp kept answering 429/5xx or could not be reached. "
        "Run the same command again later to send to them."
    )
