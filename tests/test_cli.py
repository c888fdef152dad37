"""The qbot command: one clear line and exit 2 on bad input; `qbot run` serves for real."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import structlog
from click.testing import CliRunner
from webhooks import sdk_body

from qbot.cli import main
from qbot.emulator import serve_emulator
from tests.emulated import FAKE, fake_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # `qbot run` configures structlog process-wide; other tests capture logs.
    yield
    structlog.reset_defaults()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("qiscus:\n  app_id: shop\n  secret_key: s3cret\nbot:\n  email: bot@shop.id\n")
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_cli_help_lists_commands() -> None:
    code, out = invoke("--help")
    assert code == 0
    assert "run" in out and "check-config" in out


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["intents", "test", "x.yaml"], "Missing option '--data'. See 'qbot intents test --help'."),
        (["brodcast"], "No such command 'brodcast'. Did you mean 'broadcast'? See 'qbot --help'."),
        (["--bogus"], "No such option '--bogus'. See 'qbot --help'."),
        (["run"], "Missing argument 'TARGET'. See 'qbot run --help'."),
        (["run", "a:b", "--port", "x"], "'x' is not a valid integer. See 'qbot run --help'."),
        (["scheduled", "list", "--rom", "1"], "No such option '--rom'"),
    ],
)
def test_usage_mistakes_are_one_error_line(args: list[str], line: str) -> None:
    # click printed three lines (usage, a hint, "Error: ..."): every other failure is one line.
    result = CliRunner().invoke(main, args, prog_name="qbot")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert line in lines[0]


def test_a_group_alone_still_shows_its_help() -> None:
    result = CliRunner().invoke(main, ["intents"])
    assert "Measure and check an intents file." in result.output
    assert "error:" not in result.output


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("bots.demo", "must look like MODULE:ATTR"),
        ("nosuchmodule:bot", "cannot import module 'nosuchmodule'"),
        ("bots.demo:nope", "has no attribute 'nope'"),
        ("bots.demo:ORDERS", "is a dict, not a qbot.Bot"),
    ],
)
def test_cli_run_bad_target_one_line_exit_2(config: Path, target: str, fragment: str) -> None:
    code, out = invoke("run", target, "--config", str(config))
    assert code == 2
    assert out.startswith("error: ")
    assert fragment in out
    assert len(out.strip().splitlines()) == 1
    assert "Traceback" not in out


def test_cli_run_missing_config_exit_2(tmp_path: Path) -> None:
    code, out = invoke("run", "bots.demo:bot", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert out.strip() == f"error: config file {str(tmp_path / 'missing.yaml')!r} does not exist"


def test_cli_run_invalid_config_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("qiscus:\n  app_id: a\n")
    code, out = invoke("run", "bots.demo:bot", "--config", str(path))
    assert code == 2
    assert "qiscus.secret_key is required" in out
    assert "bot.email is required" in out
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [("run", "nosuchmodule:bot"), ("check-config", "--target", "nosuchmodule:bot")],
)
def test_cli_bad_target_is_reported_before_a_missing_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    # A fresh clone: no config.yaml, no QBOT_* settings; the typo in the target is the news.
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("QBOT_")]:
        monkeypatch.delenv(name)
    code, out = invoke(*args)
    assert code == 2
    assert out.strip() == "error: cannot import module 'nosuchmodule' (from 'nosuchmodule:bot')"


@pytest.mark.parametrize("command", [("run", "bots.demo:bot"), ("check-config",)])
def test_cli_config_that_is_a_directory_is_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    code, out = invoke(*command, "--config", str(tmp_path))
    assert code == 2
    assert out.strip() == f"error: config file {str(tmp_path)!r} is a directory, not a file"


def test_cli_config_with_bad_yaml_is_one_line_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("qiscus:\n  app_id: [shop\nbot: {}\n")
    code, out = invoke("run", "bots.demo:bot", "--config", str(path))
    assert code == 2
    assert len(out.strip().splitlines()) == 1
    assert out.startswith(
        f"error: config file {str(path)!r} is not valid YAML at line 3, column 4: "
    )
    assert "<unicode string>" not in out


def test_cli_check_config_ok(config: Path) -> None:
    code, out = invoke("check-config", "--config", str(config), "--target", "bots.demo:bot")
    assert code == 0, out
    assert "ok: app 'shop' at https://shop.qiscus.com" in out


def test_cli_check_config_bad_intent_target(config: Path, tmp_path: Path) -> None:
    module = tmp_path / "badbot.py"
    module.write_text(
        "from qbot import Bot\nbot = Bot()\n@bot.intent('nope')\nasync def h(ctx):\n    pass\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        code, out = invoke("check-config", "--config", str(config), "--target", "badbot:bot")
    finally:
        sys.path.remove(str(tmp_path))
    assert code == 2
    assert "waits for intent 'nope'" in out


def test_cli_broken_bot_module_is_one_line(config: Path, tmp_path: Path) -> None:
    (tmp_path / "brokenbot.py").write_text("import nosuchdependency\n")
    (tmp_path / "syncbot.py").write_text(
        "from qbot import Bot\nbot = Bot()\n@bot.message(text='x')\ndef h(ctx):\n    pass\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        code, out = invoke("run", "brokenbot:bot", "--config", str(config))
        assert code == 2
        assert "importing 'brokenbot' failed: No module named 'nosuchdependency'" in out
        code, out = invoke("run", "syncbot:bot", "--config", str(config))
        assert code == 2
        assert "must be 'async def'" in out
    finally:
        sys.path.remove(str(tmp_path))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_cli_run_serves_the_demo_bot_and_stops_on_sigterm(tmp_path: Path) -> None:
    async with serve_emulator(FAKE, fake_store()) as fake:
        port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(
            f"qiscus:\n  app_id: {fake.config.app_id}\n  secret_key: {fake.config.secret_key}\n"
            f"  base_url: {fake.base_url}\nbot:\n  email: bot@shop.id\n"
            f"storage:\n  url: sqlite:///{tmp_path / 'qbot.db'}\n"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "qbot.cli",
            "run",
            "bots.demo:bot",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            cwd=ROOT,
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(100):
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.1)
                async with http.post(
                    f"http://127.0.0.1:{port}/webhook", json=sdk_body("hi", room_id=3)
                ) as resp:
                    assert resp.status == 200
            await fake.wait_for(lambda: len(fake.posted_comments()) == 1, timeout=10)
            assert fake.posted_comments()[0]["message"].startswith("Hello User One!")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), timeout=20)
        assert proc.returncode == 0
        events = [json.loads(line)["event"] for line in stderr.decode().splitlines() if line]
        assert "server.started" in events
        assert "update.handled" in events
        assert events[-1] == "server.stopped"
