"""Broadcasts: the CSV checked row by row, the template checked first, sends journaled and
resumable, 429/5xx retried honouring Retry-After, 4xx refused, the rate and --at on the clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from qbot._retry import RetryPolicy
from qbot.broadcast import (
    Broadcast,
    Journal,
    TokenBucket,
    WhatsAppTemplate,
    normalize_phone,
    parse_rate,
    read_recipients,
    report_format,
    write_report,
)
from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, create_emulator_app
from qbot.emulator.desk import OmnichannelDesk
from qbot.emulator.omnichannel import OMNICHANNEL_KEY
from qbot.errors import ConfigError
from qbot.omnichannel import OmnichannelClient

APP = "kovof-123"
SECRET = "omni-secret"
SEND = f"/whatsapp/v1/{APP}/2/messages"
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
NO_WAIT = RetryPolicy(max_attempts=3, base_delay=0, max_delay=0, jitter=False)


class FakeTime:
    """A clock whose sleeps take no real time: it jumps ahead by what was asked."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass
class Desk:
    emulator: Emulator
    desk: OmnichannelDesk
    url: str
    client: OmnichannelClient

    def sent_to(self) -> list[str]:
        return [s.to for s in self.desk.whatsapp.sent]


@pytest_asyncio.fixture
async def desk(tmp_path: Path, aiohttp_server: ServerFactory) -> AsyncIterator[Desk]:
    config = EmulatorConfig(app_id=APP, secret_key=SECRET, bot_email="bot@shop.local")
    emulator = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"))
    await emulator.start()
    app = create_emulator_app(emulator, manage=False)
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    client = OmnichannelClient(APP, SECRET, url, retry=RetryPolicy(max_attempts=1))
    yield Desk(emulator, app[OMNICHANNEL_KEY], url, client)
    await client.close()
    await emulator.close()


def write_csv(tmp_path: Path, text: str, name: str = "recipients.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


SHIPPED = """phone,name,order,eta
+62 812-1111-0001,Ana,A-1,besok
081211110002,Budi,A-2,lusa
6281211110003,Citra,A-3,Senin
"""


# --- the CSV -------------------------------------------------------------------------------------


def test_every_row_is_checked_and_refused_rows_say_why(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "phone,name,order\n"
        "+62 812-1111-0001,Ana,A-1\n"
        "0812 1111 0002,Budi,A-2\n"
        "12ab,Citra,A-3\n"  # not a phone
        "6281211110004,Dewi\n"  # a cell short
        "6281211110005,Eko,A-5,extra\n"  # a cell too many
        "6281211110006,,A-6\n"  # an empty variable
        '6281211110007,"Fajar\nline two",A-7\n'  # a new line WhatsApp refuses
        "6281211110008,Gita      Putri,A-8\n"  # five spaces in a row
        "+62 812 1111 0001,Ana again,A-9\n"  # the same phone as line 2
        "123,Hadi,A-10\n"  # too short
        "\n"
        "6281211110011,Indah,A-11\n",
    )
    listing = read_recipients(path)
    assert listing.phone_column == "phone"
    assert listing.variable_columns == ["name", "order"]
    refused = {r.row: r.refused for r in listing.refused}
    assert [r.phone for r in listing.accepted] == [
        "6281211110001",
        "6281211110002",
        "6281211110011",
    ]
    assert listing.accepted[2].row == 14  # the quoted new line spans two lines of the file
    assert refused[4] == "phone '12ab' is not a phone number"
    assert refused[5] == "the row has 1 variable(s), the CSV's header 2"
    assert refused[6] == "the row has 3 variable(s), the CSV's header 2"
    assert refused[7] == "variable 1 ('name') is empty"
    assert refused[8] is not None and "new line" in refused[8]
    assert refused[10] is not None and "more than 4 spaces" in refused[10]
    assert refused[11] == "phone 6281211110001 is already on line 2"
    assert refused[12] == "phone '123' has 3 digits (8 to 15 with the country code)"


def test_phones_are_normalised_as_people_write_them() -> None:
    assert normalize_phone("+62 (812) 3456-7890") == "6281234567890"
    assert normalize_phone("0812.3456.7890") == "6281234567890"
    assert normalize_phone("0044 20 7946 0958") == "442079460958"
    assert normalize_phone("020 7946 0958", country_code="44") == "442079460958"
    for bad in ("", "   ", "+62 812 abc", "٠٨١٢٣٤٥٦٧٨٩", "1" * 16):
        with pytest.raises(ValueError):
            normalize_phone(bad)


def test_a_csv_without_a_phone_column_or_a_header_is_refused_whole(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no phone column: name one of its header cells"):
        read_recipients(write_csv(tmp_path, "name,order\nAna,A-1\n"))
    with pytest.raises(ConfigError, match="is empty"):
        read_recipients(write_csv(tmp_path, ""))
    with pytest.raises(ConfigError, match="does not exist"):
        read_recipients(tmp_path / "missing.csv")
    (tmp_path / "latin1.csv").write_bytes("phone,name\n0812345678,Andr\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        read_recipients(tmp_path / "latin1.csv")


def test_blank_lines_before_the_header_are_skipped_not_read_as_an_empty_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "blank-first.csv"
    path.write_bytes("\ufeff\r\n \r\nphone,name\r\n0812111100 01,Ana\r\n".encode())
    listing = read_recipients(path)
    assert listing.phone_column == "phone"
    (only,) = listing.accepted
    assert (only.row, only.phone, only.variables) == (4, "6281211110001", ("Ana",))
    with pytest.raises(ConfigError, match="is empty"):
        read_recipients(write_csv(tmp_path, "\n\n  \n"))


def test_two_phone_columns_are_refused_whole_not_one_sent_as_a_variable(tmp_path: Path) -> None:
    # "phone,phone,name": the second phone became {{1}} and customers got a number as their name.
    for header in ("phone,Phone,name", "phone,wa_id,name", "phone,name,language,lang"):
        with pytest.raises(ConfigError, match=r"has two .* columns"):
            read_recipients(write_csv(tmp_path, f"{header}\n0812111100 01,0812111100 02,Ana,x\n"))


def test_semicolons_a_bom_and_language_and_header_columns_are_understood(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffNo_HP;Nama;Language;Header\n0812111100 01;Ana;en;INV-1\n".encode())
    listing = read_recipients(path)
    assert listing.phone_column == "No_HP"
    assert listing.variable_columns == ["Nama"]
    (only,) = listing.accepted
    assert (only.phone, only.variables, only.language, only.header) == (
        "6281211110001",
        ("Ana",),
        "en",
        "INV-1",
    )


# --- the rate ------------------------------------------------------------------------------------


def test_rates_parse_in_any_unit() -> None:
    assert parse_rate("20/s") == 20
    assert parse_rate("600/min") == 10
    assert parse_rate("5") == 5
    assert parse_rate(2.5) == 2.5
    for bad in ("0/s", "-1", "fast", "10/day"):
        with pytest.raises(ConfigError):
            parse_rate(bad)


async def test_the_token_bucket_spaces_sends_by_the_clock() -> None:
    clock = FakeTime()
    bucket = TokenBucket(4.0, clock)
    start = clock.time()
    for _ in range(9):
        await bucket.take()
    # The first token is there; eight more at 4 a second take two seconds of the clock.
    assert clock.time() - start == pytest.approx(2.0)


# --- sending -------------------------------------------------------------------------------------


def shipped(desk: Desk, csv: Path, **options: object) -> Broadcast:
    options.setdefault("retry", NO_WAIT)
    options.setdefault("clock", FakeTime())
    options.setdefault("rate", 50.0)
    return Broadcast(
        WhatsAppTemplate(desk.client, "order_shipped"),
        csv,
        **options,  # type: ignore[arg-type]
    )


async def test_a_broadcast_sends_each_recipient_once_and_reports_message_ids(
    desk: Desk, tmp_path: Path
) -> None:
    csv = write_csv(tmp_path, SHIPPED + "not-a-phone,Dewi,A-4,besok\n")
    result = await shipped(desk, csv).run()
    assert result.counts["sent"] == 3 and result.counts["refused"] == 1
    assert sorted(desk.sent_to()) == ["6281211110001", "6281211110002", "6281211110003"]
    by_phone = {e.phone: e for e in result.entries}
    sent_ids = {s.to: s.message_id for s in desk.desk.whatsapp.sent}
    for phone, message_id in sent_ids.items():
        assert by_phone[phone].status == "sent"
        assert by_phone[phone].message_id == message_id
    first = desk.desk.whatsapp.sent[0]
    assert (first.name, first.language, first.variables) == (
        "order_shipped",
        "id",
        ["Ana", "A-1", "besok"],
    )
    assert by_phone["not-a-phone"].reason == "phone 'not-a-phone' is not a phone number"
    # Running it again sends nobody anything: the journal says they were sent.
    again = await shipped(desk, csv).run()
    assert again.counts == result.counts
    assert len(desk.sent_to()) == 3
    report = write_report(again.entries, tmp_path / "report.json")
    assert '"status": "sent"' in report.read_text()
    csv_report = write_report(again.entries, tmp_path / "report.csv").read_text().splitlines()
    assert csv_report[0] == "row,phone,status,message_id,reason,attempts"
    assert csv_report[1].startswith(f"2,6281211110001,sent,{sent_ids['6281211110001']},,1")


async def test_the_template_is_checked_before_the_first_send(desk: Desk, tmp_path: Path) -> None:
    csv = write_csv(tmp_path, SHIPPED)
    unknown = Broadcast(WhatsAppTemplate(desk.client, "order_shiped"), csv, clock=FakeTime())
    with pytest.raises(
        ConfigError, match=r"no approved WhatsApp template 'order_shiped' \(approved: "
    ):
        await unknown.run()
    pending = Broadcast(WhatsAppTemplate(desk.client, "promo_weekend"), csv, clock=FakeTime())
    with pytest.raises(ConfigError, match="no approved WhatsApp template 'promo_weekend'"):
        await pending.run()
    french = Broadcast(
        WhatsAppTemplate(desk.client, "order_shipped", language="fr"), csv, clock=FakeTime()
    )
    with pytest.raises(ConfigError, match=r"not approved in language 'fr' \(approved: id, en\)"):
        await french.run()
    short = write_csv(tmp_path, "phone,name\n081211110001,Ana\n", "short.csv")
    with pytest.raises(
        ConfigError, match=r"takes 3 variable\(s\) but the CSV has 1 variable column\(s\) \(name\)"
    ):
        await shipped(desk, short).run()
    assert desk.sent_to() == []
    assert (
        not (tmp_path / "short.order_shipped.journal.db").exists()
        or Journal(tmp_path / "short.order_shipped.journal.db").counts()["sent"] == 0
    )


async def test_a_row_over_whatsapps_limits_once_filled_is_refused_the_rest_go(
    desk: Desk, tmp_path: Path
) -> None:
    long = "x" * 1000
    csv = write_csv(tmp_path, SHIPPED + f"6281211110004,{long},A-4,besok\n")
    result = await shipped(desk, csv).run()
    (refused,) = [e for e in result.entries if e.status == "refused"]
    assert refused.row == 5
    assert refused.reason is not None and "body length is" in refused.reason
    assert len(desk.sent_to()) == 3


async def test_a_dry_run_checks_everything_and_sends_nothing(desk: Desk, tmp_path: Path) -> None:
    csv = write_csv(tmp_path, SHIPPED + "bad,Dewi,A-4,besok\n")
    result = await shipped(desk, csv, dry_run=True).run()
    assert result.counts["pending"] == 3 and result.counts["refused"] == 1
    assert desk.sent_to() == []
    assert not (tmp_path / "recipients.order_shipped.journal.db").exists()


async def test_429_and_5xx_are_retried_honouring_retry_after_and_4xx_is_refused(
    desk: Desk, tmp_path: Path
) -> None:
    csv = write_csv(tmp_path, SHIPPED)
    clock = FakeTime()
    desk.emulator.fail_next(SEND, status=429, retry_after=30)
    desk.emulator.fail_next(SEND, status=503, times=1)
    result = await shipped(desk, csv, clock=clock).run()
    assert result.counts["sent"] == 3
    assert 30 in clock.slept  # the Retry-After, on the broadcast's clock
    first = result.entries[0]
    assert (first.status, first.attempts) == ("sent", 3)
    assert len(desk.sent_to()) == 3

    csv2 = write_csv(tmp_path, SHIPPED, "second.csv")
    desk.emulator.fail_next(
        SEND, status=400, body={"error": {"message": "(#131026) Message undeliverable"}}
    )
    result = await shipped(desk, csv2).run()
    refused = result.entries[0]
    assert refused.status == "refused"
    assert refused.reason is not None and refused.reason.startswith("400: ")
    assert "131026" in refused.reason
    assert [e.status for e in result.entries[1:]] == ["sent", "sent"]


async def test_a_recipient_that_keeps_failing_is_left_pending_for_the_next_run(
    desk: Desk, tmp_path: Path
) -> None:
    csv = write_csv(tmp_path, SHIPPED)
    desk.emulator.fail_next(SEND, status=500, times=3)  # NO_WAIT: three tries
    result = await shipped(desk, csv).run()
    assert [e.status for e in result.entries] == ["pending", "sent", "sent"]
    assert not result.complete
    again = await shipped(desk, csv).run()
    assert [e.status for e in again.entries] == ["sent", "sent", "sent"]
    assert sorted(desk.sent_to()) == sorted(set(desk.sent_to()))


async def test_no_answer_is_unknown_and_not_resent_unless_asked(desk: Desk, tmp_path: Path) -> None:
    csv = write_csv(tmp_path, SHIPPED)
    client = OmnichannelClient(
        APP, SECRET, desk.url, timeout=0.2, retry=RetryPolicy(max_attempts=1)
    )
    desk.emulator.hang(SEND)
    try:
        broadcast = Broadcast(
            WhatsAppTemplate(client, "order_shipped"), csv, clock=FakeTime(), retry=NO_WAIT
        )
        result = await broadcast.run()
    finally:
        desk.emulator.release()
        await client.close()
    first = result.entries[0]
    assert first.status == "unknown"
    assert first.reason is not None and first.reason.startswith("no answer")
    await asyncio.sleep(0.5)
    landed = len(desk.sent_to())  # 3 if the held send went on after the client gave up, else 2
    again = await shipped(desk, csv).run()
    assert again.entries[0].status == "unknown"
    assert len(desk.sent_to()) == landed  # not sent again
    retried = await shipped(desk, csv, retry_unknown=True).run()
    assert retried.entries[0].status == "sent"
    assert len(desk.sent_to()) == landed + 1  # asked for: the unknown one sent again


async def test_a_stopped_broadcast_resumes_where_it_stopped(desk: Desk, tmp_path: Path) -> None:
    lines = "".join(f"62812111{n:05d},N{n},A-{n},besok\n" for n in range(20))
    csv = write_csv(tmp_path, "phone,name,order,eta\n" + lines)
    broadcast = shipped(desk, csv)

    def stop_at_five(entry: object, counts: dict[str, int]) -> None:
        if counts["sent"] == 5:
            broadcast.stop()

    broadcast.on_progress = stop_at_five  # type: ignore[assignment]
    result = await broadcast.run()
    assert result.stopped
    assert (result.counts["sent"], result.counts["pending"]) == (5, 15)
    rest = await shipped(desk, csv).run()
    assert rest.counts["sent"] == 20 and rest.complete
    assert sorted(desk.sent_to()) == sorted({f"62812111{n:05d}" for n in range(20)})


async def test_at_waits_until_that_time_on_the_clock(desk: Desk, tmp_path: Path) -> None:
    clock = FakeTime()
    start = clock.time()
    result = await shipped(desk, write_csv(tmp_path, SHIPPED), clock=clock, at=start + 3600).run()
    assert result.counts["sent"] == 3
    assert all(e.updated_at is not None and e.updated_at >= start + 3600 for e in result.entries)
    assert clock.slept[0] == pytest.approx(3600)


class StoppedTime(FakeTime):
    """A clock whose sleeps never end: the broadcast waits for ``--at`` until stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeping.set()
        await asyncio.Event().wait()


async def test_at_a_stop_now_as_the_wait_ends_is_not_lost(desk: Desk, tmp_path: Path) -> None:
    # Ctrl-C ends the wait for --at; a second one (the run cancelled) comes 0, 1, 2... loop
    # ticks later. One landing as the wait's sleep ended was swallowed, and the run went on.
    csv = write_csv(tmp_path, SHIPPED)
    for ticks in range(12):
        clock = StoppedTime()
        broadcast = shipped(desk, csv, clock=clock, at=clock.time() + 3600)
        broadcast.journal_path = tmp_path / f"journal-{ticks}.db"
        run = asyncio.create_task(broadcast.run())
        async with asyncio.timeout(30):  # a hang guard, not a measure
            await clock.sleeping.wait()
        broadcast.stop()
        for _ in range(ticks):
            await asyncio.sleep(0)
        if not run.cancel():
            assert (await run).stopped and ticks > 0
            break
        await asyncio.wait([run])
        assert run.cancelled(), f"cancelled {ticks} ticks after the stop, the run returned"
    assert desk.sent_to() == []


async def test_a_changed_csv_is_another_broadcast_and_one_journal_serves_one_run(
    desk: Desk, tmp_path: Path
) -> None:
    csv = write_csv(tmp_path, SHIPPED)
    await shipped(desk, csv).run()
    write_csv(tmp_path, SHIPPED + "6281211110004,Dewi,A-4,besok\n")
    with pytest.raises(ConfigError, match="belongs to another broadcast"):
        await shipped(desk, csv).run()
    journal = tmp_path / "other.db"
    with Journal(journal), pytest.raises(ConfigError, match="in use by another broadcast run"):
        await shipped(desk, csv, journal=journal).run()
    not_a_journal = write_csv(tmp_path, "this is not sqlite" * 100, "junk.db")
    with pytest.raises(ConfigError, match="is not a broadcast journal"):
        await shipped(desk, csv, journal=not_a_journal).run()


async def test_a_row_in_a_language_the_template_lacks_is_refused_the_rest_go(
    desk: Desk, tmp_path: Path
) -> None:
    csv = write_csv(
        tmp_path,
        "phone,language,name,order,eta\n"
        "6281211110001,en,Ana,A-1,tomorrow\n"
        "6281211110002,fr,Budi,A-2,demain\n"
        "6281211110003,,Citra,A-3,besok\n",
    )
    result = await shipped(desk, csv).run()
    assert [e.status for e in result.entries] == ["sent", "refused", "sent"]
    assert result.entries[1].reason == (
        "template 'order_shipped' is not approved in language 'fr' (approved: id, en)"
    )
    languages = {s.to: s.language for s in desk.desk.whatsapp.sent}
    assert languages == {"6281211110001": "en", "6281211110003": "id"}


async def test_a_report_cell_a_spreadsheet_would_run_is_quoted(desk: Desk, tmp_path: Path) -> None:
    csv = write_csv(tmp_path, SHIPPED + '"=HYPERLINK(""http://x"")",Dewi,A-4,besok\n')
    result = await shipped(desk, csv).run()
    text = write_report(result.entries, tmp_path / "report.csv").read_text()
    assert "'=HYPERLINK" in text
    assert "\n5,=" not in text


def test_a_report_suffix_that_is_neither_csv_nor_json_is_refused(tmp_path: Path) -> None:
    # It was written as CSV, whatever the suffix: "r.txt", "report.xlsx" opened as garbage.
    assert report_format("r.CSV") == "csv" and report_format(tmp_path / "r.Json") == "json"
    for name in ("r.txt", "report.xlsx", "report"):
        with pytest.raises(ConfigError, match=r"name it \.csv or \.json"):
            write_report([], tmp_path / name)
        assert not (tmp_path / name).exists()
