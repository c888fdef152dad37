"""Part 1, end to end: ``qbot run`` and the bare aiohttp bot under the same load, same run.

Each round starts the bot as its own process (replies pointed at the load generator's sink),
records its resident memory idle, runs ``bench.loadgen`` in another process, records the memory
after the load, and stops the bot. Rounds alternate bare / qbot so drift hits both alike.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import cpu_seconds, free_port, rss_mib
from bench.scenario import APP_ID, BOT_EMAIL, SECRET_KEY

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 20.0
BARE_LADDER = {
    "bare": [],
    "bare+models": ["--models"],
    "bare+models+log": ["--models", "--log"],
    "bare+contract": ["--models", "--log", "--storage", "sqlite:///bare.db"],
}
"""The bare bot, then the bare bot paying each per-message cost of qbot's contract in turn (typed
models, a log line, the durable path on the default SQLite storage): where a framework that keeps
the contract tops out (``bench/bare_bot.py``)."""


@dataclass
class Run:
    """One bot under one load."""

    name: str
    load: dict[str, Any]
    rss_idle: float
    rss_after: float
    cpu: float
    """CPU seconds the bot used during the load, warm-up included (the load generator reports its
    own in ``load["cpu"]``): the busier of the two is what limits the throughput."""


def _config(path: Path, port: int, sink_port: int) -> None:
    # Defaults everywhere else: logging on at info (JSON, since stderr is a file).
    path.write_text(
        f"qiscus:\n  app_id: {APP_ID}\n  secret_key: {SECRET_KEY}\n"
        f"  base_url: http://127.0.0.1:{sink_port}\n"
        f"bot:\n  email: {BOT_EMAIL}\n"
        f"server:\n  host: 127.0.0.1\n  port: {port}\n"
    )


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"bot exited with {proc.returncode} before serving:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"bot on port {port} not ready within {STARTUP_TIMEOUT}s")


def run_bot(name: str, n: int, workers: int, tmp: Path, profile: Path | None = None) -> Run:
    """Serve one bot (``bare`` or ``qbot``), load it with ``n`` webhooks, stop it.

    With ``profile``, the bot runs under ``py-spy record`` writing collapsed stacks there.
    """
    port, sink_port = free_port(), free_port()
    log = tmp / f"{name}.log"
    bot_dir = tmp / f"{name}-{port}"
    bot_dir.mkdir()
    extra_env: dict[str, str] = {}
    if name == "qbot-memory":
        # The same bot with the in-memory storage: the framework's cost without durability.
        extra_env["QBOT_STORAGE__URL"] = "memory://"
    if name.startswith("qbot"):
        config = tmp / "qbot.yaml"
        _config(config, port, sink_port)
        cmd = [
            sys.executable,
            "-m",
            "qbot.cli",
            "run",
            "bench.qbot_bot:bot",
            "--config",
            str(config),
        ]
    else:
        url = f"http://127.0.0.1:{sink_port}"
        cmd = [sys.executable, "-m", "bench.bare_bot", "--port", str(port), "--base-url", url]
        cmd += BARE_LADDER[name]
    if profile is not None:
        spy = Path(sys.executable).with_name("py-spy")
        cmd = [
            str(spy),
            "record",
            "--nonblocking",
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            str(profile),
            "--",
            *cmd,
        ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra_env}
    with log.open("wb") as out:
        # A fresh working directory per run: a served bot keeps durable state (dedupe records)
        # under its cwd by default, and the workload reuses message ids from run to run.
        proc = subprocess.Popen(cmd, cwd=bot_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, port, log)
        time.sleep(0.3)
        pid = proc.pid if profile is None else _child(proc.pid)
        idle = rss_mib(pid)
        cpu_before = cpu_seconds(pid)
        loadgen = [
            sys.executable, "-m", "bench.loadgen", "--target", f"127.0.0.1:{port}",
            "--sink-port", str(sink_port), "-n", str(n), "--workers", str(workers),
        ]  # fmt: skip
        done = subprocess.run(loadgen, cwd=ROOT, env=env, capture_output=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"loadgen failed: {done.stderr.decode(errors='replace')[-2000:]}")
        load = json.loads(done.stdout)
        if load["lost"] or load["status"]:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name}: replies missing or webhooks refused: {load}\n{tail}")
        after = rss_mib(pid)
        return Run(name, load, idle, after, cpu_seconds(pid) - cpu_before)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _child(pid: int) -> int:
    """The python process py-spy started (its only child)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else pid


def run(n: int, rounds: int, workers: int) -> dict[str, list[Run]]:
    """``rounds`` alternating rounds of the bare bot and its ladder (:data:`BARE_LADDER`), qbot as
    configured by default (SQLite), and qbot with ``storage.url: memory://``."""
    runs: dict[str, list[Run]] = {name: [] for name in [*BARE_LADDER, "qbot", "qbot-memory"]}
    with tempfile.TemporaryDirectory(prefix="qbot-bench-") as tmp:
        for _ in range(rounds):
            for name in runs:
                runs[name].append(run_bot(name, n, workers, Path(tmp)))
    return runs
