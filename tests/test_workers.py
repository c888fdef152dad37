"""`qbot run --workers N`: real supervisor and worker processes, SIGKILLed and SIGTERMed.

The supervisor runs as a subprocess serving a small bot written to the test's folder; replies go
to the fake Qiscus in this process, so the assertions are on what Qiscus would have received.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_scale import free_port, texts, until
from webhooks import sdk_body

from qbot.emulator import Emulator
from qbot.storage import RedisStorage

pytestmark = pytest.mark.chaos

BOT = textwrap.dedent(
    """
    import asyncio, os
    from qbot import Bot, Context

    bot = Bot("workers")

    @bot.on_startup
    async def check() -> None:
        if os.environ.get("WORKBOT_FAIL"):
            raise RuntimeError("no database")

    @bot.message()
    async def answer(ctx: Context) -> None:
        if ctx.text.startswith("slow"):
            await asyncio.sleep(1.5)
        else:
            await asyncio.sleep(0.005)
        await ctx.reply(ctx.text)
    """
)

_ids = itertools.count(900_000)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    return [int(p) for p in found]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def events(log: str, name: str) -> list[dict[str, Any]]:
    found = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == name:
                found.append(entry)
    return found


class Served:
    """`qbot run workbot:bot --workers N` as a subprocess."""

    def __init__(self, folder: Path, fake: Emulator, storage_url: str, workers: str = "2") -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = folder / "workers.yaml"
        self.config.write_text(
            f"qiscus: {{app_id: {fake.config.app_id}, secret_key: {fake.config.secret_key}, "
            f"base_url: '{fake.base_url}'}}\n"
            "bot: {email: bot@example.com}\n"
            f"server: {{host: 127.0.0.1, port: {self.port}, shutdown_timeout: 10}}\n"
            f"storage: {{url: '{storage_url}', lease_ttl: 2}}\n"
            "log: {level: info, format: json}\n"
        )
        self.workers = workers
        self.log = folder / "supervisor.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Served:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "qbot.cli", "run", "workbot:bot",
                "--config", str(self.config), "--workers", self.workers,
                cwd=self.folder, stdout=log, stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        await until(lambda: bool(events(self.log_text(), "workers.ready")) or not self.running, 60)
        assert self.running, self.log_text()[-3000:]
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                for child in children(self.pid):
                    os.kill(child, signal.SIGKILL)
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    url = f"redis://127.0.0.1:6379/0?prefix=qbot-workers-{uuid.uuid4().hex}:"
    yield url
    async with RedisStorage(url) as storage:
        await storage.drop()


async def deliver(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> str:
    """Post ``body`` until it is taken (200), as Qiscus delivers again after a failure."""
    for _ in range(400):
        try:
            async with http.post(f"{url}/webhook", json=body) as resp:
                if resp.status == 200:
                    status: str = (await resp.json())["status"]
                    return status
                assert resp.status == 503, await resp.text()
        except aiohttp.ClientError:  # the worker holding the connection was killed
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"webhook never accepted: {body['payload']['message']['text']}")


async def converse_and_kill(
    tmp_path: Path, fake: Emulator, storage_url: str
) -> tuple[Served, list[int], int]:
    (tmp_path / "workbot.py").write_text(BOT)
    served = await Served(tmp_path, fake, storage_url).start()
    rooms, count = range(401, 425), 12
    total = len(rooms) * count
    posted = 0
    killed = asyncio.Event()
    first = children(served.pid)
    assert len(first) == 2
    victim = first[0]
    try:
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def converse(room: int) -> None:
                nonlocal posted
                for i in range(count):
                    body = sdk_body(f"{room}:{i}", room_id=room, message_id=next(_ids))
                    assert await deliver(http, served.url, body) in ("accepted", "duplicate")
                    posted += 1
                    if posted == total // 3 and not killed.is_set():
                        os.kill(victim, signal.SIGKILL)  # mid-run: webhooks in flight
                        killed.set()

            await asyncio.gather(*(converse(room) for room in rooms))
            assert killed.is_set()
            await fake.wait_for(lambda: len(fake.posted_comments()) >= total, 60)
            await asyncio.sleep(0.5)  # nothing more arrives: no reply is sent twice
        # The supervisor saw the death and started a worker in its place.
        await until(lambda: len(children(served.pid)) == 2, 30)
        now = children(served.pid)
    except BaseException:
        await served.stop()
        raise
    for room in rooms:
        assert texts(fake, room) == [f"{room}:{i}" for i in range(count)]
    ids = [c["unique_temp_id"] for c in fake.posted_comments()]
    assert len(ids) == len(set(ids)) == total
    return served, now, victim


def check_restarted(served: Served, now: list[int], victim: int) -> None:
    log = served.log_text()
    died = events(log, "worker.died")
    assert [d["pid"] for d in died] == [victim]
    assert died[0]["exit"] == "killed by SIGKILL"
    assert len(events(log, "worker.started")) == 3
    assert victim not in now and first_survivor(log, victim) in now


def first_survivor(log: str, victim: int) -> int:
    started = [e["pid"] for e in events(log, "worker.started")]
    return next(pid for pid in started[:2] if pid != victim)


async def test_workers_two_on_sqlite_answer_every_accepted_webhook_once_despite_a_kill(
    tmp_path: Path, fake_qiscus: Emulator
) -> None:
    served, now, victim = await converse_and_kill(
        tmp_path, fake_qiscus, f"sqlite:///{tmp_path / 'qbot.db'}"
    )
    try:
        check_restarted(served, now, victim)
    finally:
        assert await served.stop() == 0, served.log_text()[-3000:]
    for pid in now:
        assert not alive(pid)


@pytest.mark.redis
async def test_workers_two_on_redis_answer_every_accepted_webhook_once_despite_a_kill(
    tmp_path: Path, fake_qiscus: Emulator, redis_url: str
) -> None:
    served, now, victim = await converse_and_kill(tmp_path, fake_qiscus, redis_url)
    try:
        check_restarted(served, now, victim)
    finally:
        assert await served.stop() == 0, served.log_text()[-3000:]


@pytest.mark.redis
async def test_workers_sigterm_as_a_replacement_starts_drains_it_too_on_redis(
    tmp_path: Path, fake_qiscus: Emulator, redis_url: str
) -> None:
    # The stop request reaches the new worker as it starts serving, its first Redis calls in
    # flight: it drained at once instead of being killed after the drain timeout (exit 1).
    (tmp_path / "workbot.py").write_text(BOT)
    served = await Served(tmp_path, fake_qiscus, redis_url).start()
    try:
        os.kill(children(served.pid)[0], signal.SIGKILL)
        await until(lambda: len(events(served.log_text(), "worker.started")) == 3, 30)
        assert served.proc is not None
        served.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.proc.wait(), 60) == 0, served.log_text()[-3000:]
    finally:
        await served.stop()
    log = served.log_text()
    assert events(log, "worker.killed") == []
    assert events(log, "workers.stopped")[0]["failed"] is None


async def test_workers_sigterm_drains_every_worker_together_and_exits_0(
    tmp_path: Path, fake_qiscus: Emulator
) -> None:
    (tmp_path / "workbot.py").write_text(BOT)
    served = await Served(tmp_path, fake_qiscus, f"sqlite:///{tmp_path / 'qbot.db'}").start()
    workers = children(served.pid)
    rooms = range(501, 509)
    try:
        async with aiohttp.ClientSession() as http:
            # Slow messages in hand when the signal comes: the drain lets them finish.
            for room in rooms:
                body = sdk_body(f"slow {room}", room_id=room, message_id=next(_ids))
                assert await deliver(http, served.url, body) == "accepted"
            assert served.proc is not None
            served.proc.send_signal(signal.SIGTERM)
            await until(lambda: len(events(served.log_text(), "server.draining")) == 2, 20)
            # Draining, the shared socket stays open and every worker answers 503 + Retry-After.
            for _ in range(6):
                body = sdk_body("late", room_id=600, message_id=next(_ids))
                connector = aiohttp.TCPConnector(force_close=True)
                async with (
                    aiohttp.ClientSession(connector=connector) as fresh,
                    fresh.post(f"{served.url}/webhook", json=body) as resp,
                ):
                    assert resp.status == 503
                    assert resp.headers["Retry-After"] == "5"
            assert await asyncio.wait_for(served.proc.wait(), 60) == 0
    finally:
        await served.stop()
    log = served.log_text()
    assert len(events(log, "server.stopped")) == 2
    assert events(log, "workers.stopped")[0]["failed"] is None
    for room in rooms:
        assert texts(fake_qiscus, room) == [f"slow {room}"]
    assert texts(fake_qiscus, 600) == []
    for pid in workers:
        assert not alive(pid)


async def test_workers_drain_themselves_when_the_supervisor_is_killed(
    tmp_path: Path, fake_qiscus: Emulator
) -> None:
    (tmp_path / "workbot.py").write_text(BOT)
    served = await Served(tmp_path, fake_qiscus, f"sqlite:///{tmp_path / 'qbot.db'}").start()
    workers = children(served.pid)
    assert len(workers) == 2
    assert served.proc is not None
    served.proc.send_signal(signal.SIGKILL)
    await served.proc.wait()
    try:
        await until(lambda: not any(alive(pid) for pid in workers), 40)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert len(events(served.log_text(), "worker.orphaned")) == 2
    assert len(events(served.log_text(), "server.stopped")) == 2


def qbot_run(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    (folder / "workbot.py").write_text(BOT)
    return subprocess.run(
        [sys.executable, "-m", "qbot.cli", "run", "workbot:bot", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def cli_config(folder: Path, storage: str = "memory://", extra: str = "") -> str:
    path = folder / "cli.yaml"
    path.write_text(
        "qiscus: {app_id: app, secret_key: a-real-secret}\n"
        "bot: {email: bot@example.com}\n"
        f"server: {{host: 127.0.0.1, port: {free_port()}{extra}}}\n"
        f"storage: {{url: '{storage}'}}\n"
    )
    return str(path)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "", "257", "auto2"])
def test_workers_bad_value_is_one_error_line(tmp_path: Path, value: str) -> None:
    done = qbot_run(tmp_path, "--config", cli_config(tmp_path), "--workers", value)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: --workers must be 'auto' or a whole number from 1 to 256, got {value!r}"
    ]


def test_workers_config_value_is_checked_like_any_setting(tmp_path: Path) -> None:
    done = qbot_run(tmp_path, "--config", cli_config(tmp_path, extra=", workers: many"))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "server.workers" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--workers", "2"], {}), (["--workers", "auto"], {}), ([], {"QBOT_SERVER__WORKERS": "2"})],
)
def test_workers_refuse_memory_storage_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    if args[-1:] == ["auto"] and (os.cpu_count() or 1) < 2:
        pytest.skip("auto is one worker on a single core")
    done = qbot_run(tmp_path, "--config", cli_config(tmp_path), *args, env=env)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: storage.url memory:// "), done.stderr


def test_workers_that_cannot_start_stop_the_supervisor_with_one_line(tmp_path: Path) -> None:
    # A startup hook that fails in every worker: nothing serves, the supervisor exits 1.
    done = qbot_run(
        tmp_path,
        "--config",
        cli_config(tmp_path, f"sqlite:///{tmp_path / 'q.db'}"),
        "--workers",
        "2",
        env={"WORKBOT_FAIL": "1"},
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors[-1].startswith("error: cannot start: worker ")
    assert "before serving" in errors[-1]
    assert "Traceback" not in done.stderr


def test_workers_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = cli_config(tmp_path, f"sqlite:///{tmp_path / 'q.db'}")
        done = qbot_run(tmp_path, "--config", config, "--workers", "2", "--port", str(port))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


FLAKY_WORKER = textwrap.dedent(
    """
    import pathlib, socket, sys
    starts = pathlib.Path(sys.argv[3])
    with starts.open("a") as f:
        f.write("start\\n")
    control = socket.socket(fileno=int(sys.argv[2]))
    control.sendall(b"ready")
    if len(starts.read_text().splitlines()) < 8:
        sys.exit(3)  # dies right after serving, seven times in a row
    control.recv(16)  # the eighth stays until asked to drain
    """
)


class RecordingClock:
    """A clock whose time stands still (no worker ever counts as stable) and whose sleeps are
    recorded, so the backoff can be read without waiting for it."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def time(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)


async def test_workers_dying_in_a_row_are_restarted_with_a_doubling_backoff(
    tmp_path: Path,
) -> None:
    from qbot.workers import BACKOFF_MAX, Supervisor, listen_socket

    script = tmp_path / "flaky.py"
    script.write_text(FLAKY_WORKER)
    starts = tmp_path / "starts"

    def command(listen_fd: int, control_fd: int) -> list[str]:
        return [sys.executable, str(script), str(listen_fd), str(control_fd), str(starts)]

    clock = RecordingClock()
    with listen_socket("127.0.0.1", 0) as sock:
        supervisor = Supervisor(command, 1, sock, shutdown_timeout=5, clock=clock)
        running = asyncio.create_task(supervisor.run())
        try:
            await until(lambda: supervisor.restarts == 7, 60)
            await until(lambda: supervisor.workers[0].ready.is_set(), 30)
        finally:
            supervisor.stop()
            code = await asyncio.wait_for(running, 30)
    assert code == 0
    assert clock.slept == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, BACKOFF_MAX]
    assert len(starts.read_text().splitlines()) == 8


def _open_at_once(path: str, barrier: Any, results: Any) -> None:
    from qbot.errors import StorageError
    from qbot.storage import open_storage

    async def main() -> None:
        storage = open_storage(f"sqlite:///{path}")
        barrier.wait()
        try:
            await storage.open()
            await storage.close()
            results.put("ok")
        except StorageError as e:
            results.put(str(e))

    asyncio.run(main())


def test_workers_opening_a_new_sqlite_file_at_once_all_start(tmp_path: Path) -> None:
    # N workers start together on a file that does not exist yet: one creates the tables, the
    # others wait for its lock (they failed with "database is locked" before).
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    outcomes: list[str] = []
    for attempt in range(3):
        barrier, results = context.Barrier(4), context.Queue()
        path = str(tmp_path / f"new-{attempt}.db")
        procs = [
            context.Process(target=_open_at_once, args=(path, barrier, results)) for _ in range(4)
        ]
        for proc in procs:
            proc.start()
        outcomes += [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(30)
    assert outcomes == ["ok"] * 12
