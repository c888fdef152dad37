"""``qbot broadcast`` as a real process against the emulator: SIGKILLed halfway and restarted,
Ctrl-C'd and resumed; nobody is messaged twice (counted in the emulator's calls)."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, create_emulator_app
from qbot.emulator.desk import OmnichannelDesk
from qbot.emulator.omnichannel import OMNICHANNEL_KEY

pytestmark = pytest.mark.chaos

APP = "kovof-123"
SECRET = "omni-secret"
SEND = f"/whatsapp/v1/{APP}/2/messages"
JOURNAL = "recipients.order_shipped.journal.db"
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@dataclass
class Served:
    emulator: Emulator
    desk: OmnichannelDesk
    url: str

    def sends(self) -> Counter[str]:
        """How many template sends each phone got, from the emulator's call log."""
        return Counter(
            str(c.body["to"])
            for c in self.emulator.calls
            if c.path == SEND and isinstance(c.body, dict)
        )

    def delivered(self) -> dict[str, str]:
        """phone -> message id of the templates the emulator delivered."""
        return {s.to: s.message_id for s in self.desk.whatsapp.sent}


@pytest_asyncio.fixture
async def served(tmp_path: Path, aiohttp_server: ServerFactory) -> AsyncIterator[Served]:
    config = EmulatorConfig(app_id=APP, secret_key=SECRET, bot_email="bot@shop.local")
    emulator = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"))
    emulator.call_log.limit = None  # keep every call: they are what the test counts
    await emulator.start()
    app = create_emulator_app(emulator, manage=False)
    server = await aiohttp_server(app)
    yield Served(emulator, app[OMNICHANNEL_KEY], str(server.make_url("")).rstrip("/"))
    await emulator.close()


def setup_files(tmp_path: Path, url: str, count: int) -> tuple[Path, Path]:
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "qiscus": {"app_id": APP, "secret_key": SECRET, "base_url": url},
                "bot": {"email": "bot@shop.local"},
                "omnichannel": {"base_url": url},
            }
        )
    )
    csv = tmp_path / "recipients.csv"
    rows = "".join(f"0812{n:08d},Pelanggan {n},INV-{n},besok\n" for n in range(count))
    csv.write_text("phone,name,order,eta\n" + rows)
    return config, csv


async def start(tmp_path: Path, config: Path, csv: Path, *extra: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QBOT_")}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "qbot.cli", "broadcast", "--template", "order_shipped",
        "--csv", str(csv), "--config", str(config), "--rate", "400/s", *extra,
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def journal_rows(tmp_path: Path, status: str) -> int:
    path = tmp_path / "recipients.order_shipped.journal.db"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM recipient WHERE status = ?", (status,)
        ).fetchone()
    except sqlite3.OperationalError:  # the table is not created yet
        return 0
    finally:
        db.close()
    return int(count)


async def until(condition: Callable[[], bool], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - a process and a file have no event
            await asyncio.sleep(0.02)


async def kill_halfway(process: asyncio.subprocess.Process, tmp_path: Path, served: Served) -> str:
    """SIGKILL the process frozen (SIGSTOP) at a moment whose outcome is known to the test:
    idle between sends (nothing in flight), or with the send in flight already delivered by
    the emulator but its answer not yet journaled (the dangerous moment: it must never be sent
    again). Frozen mid-journal-write, or before the send reached the emulator, it is thawed
    and frozen again a little later. Returns which moment it was: ``idle`` or ``delivered``."""
    seen: Counter[str] = Counter()
    for _ in range(500):
        os.kill(process.pid, signal.SIGSTOP)
        await until(lambda: stopped(process.pid), 5)  # the signal lands asynchronously
        in_flight = journal_phones(tmp_path, "sending")
        moment = None
        if idle(process.pid):  # in the event loop's wait: no journal write half done
            if not in_flight:
                moment = "idle"
            elif in_flight[0] in served.delivered():
                moment = "delivered"
        seen[moment or f"busy {len(in_flight)}"] += 1
        if moment is not None:
            os.kill(process.pid, signal.SIGKILL)
            os.kill(process.pid, signal.SIGCONT)
            await process.wait()
            return moment
        os.kill(process.pid, signal.SIGCONT)
        await asyncio.sleep(0.002)
    raise AssertionError(f"never frozen at a known moment: {dict(seen)}")


def journal_phones(tmp_path: Path, status: str) -> list[str]:
    db = sqlite3.connect(f"file:{tmp_path / JOURNAL}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT phone FROM recipient WHERE status = ?", (status,)).fetchall()
    finally:
        db.close()
    return [phone for (phone,) in rows]


def stopped(pid: int) -> bool:
    """Whether the process is stopped (state ``T`` in /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


#: epoll_wait, epoll_pwait, epoll_pwait2 by machine: where an idle asyncio loop waits.
EPOLL = {"x86_64": {"232", "281", "441"}, "aarch64": {"22", "441"}}


def idle(pid: int) -> bool:
    """Whether the process's main thread is stopped inside the event loop's epoll wait."""
    syscall = Path(f"/proc/{pid}/syscall").read_text().split()
    return bool(syscall) and syscall[0] in EPOLL.get(platform.machine(), set())


def report(tmp_path: Path) -> list[dict[str, str]]:
    import csv

    with (tmp_path / "recipients.order_shipped.report.csv").open() as file:
        return list(csv.DictReader(file))


async def test_a_broadcast_killed_halfway_and_restarted_messages_each_recipient_once(
    served: Served, tmp_path: Path
) -> None:
    config, csv = setup_files(tmp_path, served.url, 1000)
    first = await start(tmp_path, config, csv)
    try:
        await until(lambda: len(served.desk.whatsapp.sent) >= 500, 120)
        moment = await kill_halfway(first, tmp_path, served)
        print("killed at", moment)
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert first.returncode == -signal.SIGKILL
    halfway = len(served.desk.whatsapp.sent)
    assert 500 <= halfway < 1000

    second = await start(tmp_path, config, csv)
    out, err = await asyncio.wait_for(second.communicate(), 180)
    sends = served.sends()
    assert len(sends) == 1000
    assert set(sends.values()) == {1}  # each recipient messaged exactly once
    delivered = served.delivered()
    rows = report(tmp_path)
    assert len(rows) == 1000
    sent = [r for r in rows if r["status"] == "sent"]
    for row in sent:
        assert delivered[row["phone"]] == row["message_id"]
    if moment == "idle":
        assert second.returncode == 0, err.decode()
        assert len(sent) == 1000
        assert "1000 sent; report: " in out.decode()
    else:  # delivered, not journaled: reported unknown, and not sent again
        assert second.returncode == 1
        (unknown,) = [r for r in rows if r["status"] == "unknown"]
        assert unknown["phone"] in delivered
        assert "999 sent, 1 unknown; report: " in out.decode()


async def test_a_send_in_flight_at_the_kill_is_reported_unknown_and_never_resent(
    served: Served, tmp_path: Path
) -> None:
    config, csv = setup_files(tmp_path, served.url, 40)
    first = await start(tmp_path, config, csv)
    try:
        await until(lambda: len(served.desk.whatsapp.sent) >= 20, 60)
        served.emulator.hang(SEND)  # the next send is held: in flight when the process dies
        await until(
            lambda: (
                journal_rows(tmp_path, "sending") == 1
                and sum(served.sends().values()) > len(served.desk.whatsapp.sent)
            ),
            20,
        )
        await asyncio.sleep(0.5)  # a send in flight that long is the held one, not a slow one
        assert sum(served.sends().values()) > len(served.desk.whatsapp.sent)
        first.kill()
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
        served.emulator.release()
    in_flight = [p for p, n in served.sends().items() if p not in served.delivered()]
    assert len(in_flight) == 1

    second = await start(tmp_path, config, csv)
    out, err = await asyncio.wait_for(second.communicate(), 60)
    assert second.returncode == 1  # someone's outcome is unknown
    text = out.decode()
    assert "39 sent, 1 unknown" in text
    assert "1 send(s) were in flight when an earlier run stopped" in text
    (unknown,) = [r for r in report(tmp_path) if r["status"] == "unknown"]
    assert unknown["phone"] == in_flight[0]
    assert "in flight" in unknown["reason"]
    assert served.sends()[in_flight[0]] == 1  # not sent again

    # The operator checked: it never arrived. --retry-unknown sends it, once.
    third = await start(tmp_path, config, csv, "--retry-unknown")
    out, err = await asyncio.wait_for(third.communicate(), 60)
    assert third.returncode == 0, err.decode()
    assert served.sends()[in_flight[0]] == 2
    assert set(served.delivered()) == set(served.sends())
    assert all(n == 1 for p, n in served.sends().items() if p != in_flight[0])


async def test_ctrl_c_stops_after_the_send_in_flight_and_says_how_to_resume(
    served: Served, tmp_path: Path
) -> None:
    config, csv = setup_files(tmp_path, served.url, 300)
    first = await start(tmp_path, config, csv, "--rate", "100/s")
    await until(lambda: len(served.desk.whatsapp.sent) >= 30, 60)
    first.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(first.communicate(), 30)
    assert first.returncode == 130
    assert " pending; report: " in out.decode()  # the report is written on a stop too
    assert "Traceback" not in err.decode()
    assert "Run the same command again to resume" in err.decode()
    assert journal_rows(tmp_path, "sending") == 0  # the send in flight finished
    assert journal_rows(tmp_path, "unknown") == 0
    stopped_at = len(served.desk.whatsapp.sent)
    assert stopped_at < 300

    second = await start(tmp_path, config, csv)
    _, err = await asyncio.wait_for(second.communicate(), 60)
    assert second.returncode == 0, err.decode()
    assert set(served.sends().values()) == {1}
    assert len(served.sends()) == 300


async def test_ctrl_c_twice_stops_at_once_and_the_send_in_flight_is_unknown(
    served: Served, tmp_path: Path
) -> None:
    config, csv = setup_files(tmp_path, served.url, 50)
    first = await start(tmp_path, config, csv, "--rate", "100/s")
    try:
        await until(lambda: len(served.desk.whatsapp.sent) >= 10, 60)
        served.emulator.hang(SEND)  # the next send never answers
        held = lambda: sum(served.sends().values()) > len(served.desk.whatsapp.sent)  # noqa: E731
        await until(held, 20)
        await asyncio.sleep(0.5)  # a send in flight that long is the held one, not a slow one
        assert held()
        first.send_signal(signal.SIGINT)
        await asyncio.sleep(0.3)
        assert first.returncode is None  # still waiting for the send in flight
        first.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(first.communicate(), 30)
    finally:
        served.emulator.release()
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert first.returncode == 130, err.decode()
    assert "Traceback" not in err.decode()
    assert "stopped at once: a send in flight is reported unknown" in err.decode()
    assert journal_rows(tmp_path, "unknown") == 1
    assert journal_rows(tmp_path, "sending") == 0
