"""@bot.on_startup / @bot.on_shutdown: in the test kit, in `qbot run`, checked at registration."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from qbot import Bot, Context, HandlerRegistrationError, Router, StartupError
from qbot.testing import Chat, Harness

EVENTS: list[str] = []


def hooked_bot() -> Bot:
    bot = Bot("hooked")
    shop = Router("shop")
    resources: dict[str, str] = {}

    @bot.on_startup
    async def open_db() -> None:
        EVENTS.append("start db")
        resources["db"] = "open"

    @bot.on_startup
    async def warm_cache(started: Bot) -> None:
        EVENTS.append(f"start cache for {started.name}")

    @shop.on_startup
    async def open_shop() -> None:
        EVENTS.append("start shop")

    @bot.on_shutdown
    async def close_db() -> None:
        EVENTS.append("stop db")

    @shop.on_shutdown
    async def close_shop() -> None:
        EVENTS.append("stop shop")

    @bot.message(text="db?")
    async def db(ctx: Context) -> None:
        await ctx.reply(f"db is {resources.get('db', 'missing')}")

    bot.include_router(shop)
    return bot


@pytest.fixture(autouse=True)
def _events() -> None:
    EVENTS.clear()


@pytest.fixture
def qbot_bot() -> Bot:
    return hooked_bot()


async def test_hooks_startup_runs_before_the_first_message_in_the_test_kit(qbot_chat: Chat) -> None:
    assert EVENTS == ["start db", "start cache for hooked", "start shop"]
    (await qbot_chat.say("db?")).assert_texts("db is open")


async def test_hooks_shutdown_runs_in_reverse_order_and_a_new_start_runs_them_again() -> None:
    bot = hooked_bot()
    async with Harness(bot) as harness:
        (await (await harness.chat()).say("db?")).assert_texts("db is open")
    assert EVENTS[3:] == ["stop shop", "stop db"]
    EVENTS.clear()
    async with Harness(bot):
        pass
    assert EVENTS == ["start db", "start cache for hooked", "start shop", "stop shop", "stop db"]


async def test_hooks_failing_startup_stops_the_start_with_the_hook_named() -> None:
    bot = hooked_bot()

    @bot.on_startup
    async def connect_crm() -> None:
        raise ConnectionRefusedError("crm.internal:443 refused")

    with pytest.raises(StartupError) as caught:
        async with Harness(bot):
            pytest.fail("the harness must not start")
    assert str(caught.value) == (
        "startup hook 'test_hooks_failing_startup_stops_the_start_with_the_hook_named.<locals>."
        "connect_crm' failed: ConnectionRefusedError: crm.internal:443 refused"
    )
    # The bot's hooks ran, then the failing one; the included router's never; no shutdown.
    assert EVENTS == ["start db", "start cache for hooked"]


def gated_bot(gate: asyncio.Event, began: asyncio.Event) -> Bot:
    bot = Bot("gated")

    @bot.on_startup
    async def open_pool() -> None:
        EVENTS.append("start pool")
        began.set()
        try:
            await gate.wait()
        except asyncio.CancelledError:
            EVENTS.append("pool start cancelled")
            raise
        EVENTS.append("pool open")

    return bot


async def test_hooks_a_cancelled_caller_leaves_the_start_to_the_others_waiting() -> None:
    # Two updates fed at once share one start; the first one's caller gives up (a timeout).
    # It used to cancel the start itself, and the second caller got a CancelledError too.
    gate, began = asyncio.Event(), asyncio.Event()
    bot = gated_bot(gate, began)
    first, second = asyncio.create_task(bot.start()), asyncio.create_task(bot.start())
    await began.wait()
    first.cancel()
    await asyncio.wait([first])
    gate.set()
    async with asyncio.timeout(30):  # a hang guard, not a measure
        await second
    assert first.cancelled() and EVENTS == ["start pool", "pool open"]
    await bot.start()  # started: the hooks do not run again
    assert EVENTS == ["start pool", "pool open"]
    await bot.aclose()


async def test_hooks_the_only_caller_cancelled_cancels_the_start_and_a_new_one_runs_it() -> None:
    gate, began = asyncio.Event(), asyncio.Event()
    bot = gated_bot(gate, began)
    only = asyncio.create_task(bot.start())
    await began.wait()
    only.cancel()
    await asyncio.wait([only])
    # Ended with the caller, not left running with nobody waiting for it.
    assert only.cancelled() and EVENTS == ["start pool", "pool start cancelled"]
    gate.set()
    await bot.start()
    assert EVENTS[2:] == ["start pool", "pool open"]
    await bot.aclose()


async def test_hooks_a_start_asked_while_a_cancelled_one_winds_down_runs_after_it() -> None:
    # The only caller is cancelled and the hook takes a moment to close what it opened; an
    # update fed then joined the dying start and got a CancelledError nobody sent it.
    began, unwinding, closed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    bot = Bot("slow to cancel")

    @bot.on_startup
    async def open_pool() -> None:
        EVENTS.append("start pool")
        began.set()
        if len(EVENTS) > 1:
            return
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            unwinding.set()
            await asyncio.shield(closed.wait())
            EVENTS.append("pool closed")
            raise

    only = asyncio.create_task(bot.start())
    await began.wait()
    only.cancel()
    await unwinding.wait()
    late = asyncio.create_task(bot.start())
    await asyncio.sleep(0)
    closed.set()
    async with asyncio.timeout(30):  # a hang guard, not a measure
        await asyncio.wait([only])
        await late
    assert only.cancelled() and EVENTS == ["start pool", "pool closed", "start pool"]
    await bot.aclose()


async def test_hooks_failing_shutdown_is_logged_and_the_others_still_run() -> None:
    bot = hooked_bot()

    @bot.on_shutdown
    async def flush_metrics() -> None:
        raise RuntimeError("collector gone")

    with capture_logs() as logs:
        async with Harness(bot):
            pass
    assert EVENTS[3:] == ["stop shop", "stop db"]
    [failed] = [e for e in logs if e["event"] == "bot.shutdown_hook_failed"]
    assert failed["hook"].endswith("flush_metrics")
    assert failed["error"] == "RuntimeError: collector gone"


def test_hooks_are_checked_at_registration() -> None:
    bot = Bot("strict")

    def not_async() -> None: ...

    async def two_args(a: int, b: int) -> None: ...

    with pytest.raises(HandlerRegistrationError, match=r"startup hook .*not_async.* 'async def'"):
        bot.on_startup(not_async)  # type: ignore[type-var]
    with pytest.raises(HandlerRegistrationError, match=r"no argument or the bot"):
        bot.on_shutdown(two_args)
    assert list(bot.iter_hooks("startup")) == list(bot.iter_hooks("shutdown")) == []


# --- a real `qbot run` --------------------------------------------------------------------------

BOT_MODULE = """\
from pathlib import Path

from qbot import Bot

bot = Bot("hooked")
LOG = Path("hooks.log")


@bot.on_startup
async def connect() -> None:
    if Path("fail").exists():
        raise ConnectionRefusedError("db down")
    LOG.write_text(LOG.read_text() + "started\\n" if LOG.exists() else "started\\n")


@bot.on_shutdown
async def disconnect() -> None:
    LOG.write_text(LOG.read_text() + "stopped\\n")
"""


async def _run(project: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QBOT_")}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "qbot.cli", "run", "hooked:bot", "--host", "127.0.0.1", "--port", "0"),
        cwd=project,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "hooked.py").write_text(BOT_MODULE)
    (tmp_path / "config.yaml").write_text(
        textwrap.dedent(
            """\
            qiscus: {app_id: shop, secret_key: s3cret-and-long}
            bot: {email: bot@shop.id}
            storage: {url: "memory://"}
            """
        )
    )
    return tmp_path


async def test_hooks_run_around_a_real_qbot_run(project: Path) -> None:
    proc = await _run(project)
    assert proc.stdout is not None
    serving = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    assert serving.startswith(b"qbot: serving hooked on")
    # The startup hook ran before the server said it serves.
    assert (project / "hooks.log").read_text() == "started\n"
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    assert (project / "hooks.log").read_text() == "started\nstopped\n"


async def test_hooks_failing_startup_fails_qbot_run_with_one_line(project: Path) -> None:
    (project / "fail").touch()
    proc = await _run(project)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 1
    assert out == b""
    lines = err.decode().splitlines()
    assert lines[-1] == ("error: startup hook 'connect' failed: ConnectionRefusedError: db down"), (
        err.decode()
    )
    assert "Traceback" not in err.decode()
    assert not (project / "hooks.log").exists()


async def test_hooks_shutdown_runs_when_the_storage_fails_after_the_startup_hooks(
    project: Path,
) -> None:
    config = (project / "config.yaml").read_text()
    blocker = project / "not-a-dir"
    blocker.write_text("a file where the database's folder should be")
    bad = config.replace('"memory://"', f'"sqlite:///{blocker}/qbot.db"')
    (project / "config.yaml").write_text(bad)
    proc = await _run(project)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 1
    assert out == b""
    assert err.decode().splitlines()[-1].startswith("error: "), err.decode()
    assert "Traceback" not in err.decode()
    assert (project / "hooks.log").read_text() == "started\nstopped\n"
