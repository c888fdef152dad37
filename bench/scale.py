"""Part 8, scale: Redis and aiogram end to end, paced ack latency, RSS, CPU with 1 and 2 workers.

Every bot runs as its own process(es) under the same closed-loop load (``bench.loadgen``, 64 in
flight, 1,000 rooms); rounds alternate the bots so drift hits them alike, and each ratio is the
median of same-round ratios:

- ``bare``: the hand-written aiohttp bot (``bench.bare_bot``), the baseline;
- ``qbot``: ``qbot run bench.qbot_bot:bot``, default config (SQLite, durable);
- ``qbot-memory``: the same with ``storage.url: memory://``;
- ``qbot-redis``: the same on the local Redis (a key prefix of its own, dropped after);
- ``aiogram``: ``bench.aiogram_bot``, the same handlers in aiogram 3 behind its aiohttp webhook
  handler, posting ``sendMessage`` to the sink (which answers like the Bot API), fed the same
  workload as Telegram updates;
- ``qbot-2w``: the default config with ``--workers 2`` (CPU summed over the supervisor and its
  workers).

Then, on qbot's default config alone: webhooks at a fixed rate for a fixed time
(``bench.paced``, open loop) for the ack latency, and a long closed-loop run for the resident
memory (sampled idle, halfway and at the end).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import cpu_seconds, free_port, rss_mib
from bench.e2e import ROOT, STARTUP_TIMEOUT, _config

BOTS = ("bare", "qbot", "qbot-memory", "qbot-redis", "aiogram", "qbot-2w")
REDIS = "127.0.0.1:6379"
WARMUP = 500


@dataclass
class Served:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    sink_port: int
    log: Path

    def pids(self) -> list[int]:
        """The bot's process and its descendants (a supervisor's workers)."""
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            with suppress(FileNotFoundError):
                todo += [
                    int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                ]
        return found

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def rss(self) -> float:
        return sum(rss_mib(pid) for pid in self.pids())


def redis_answers() -> bool:
    import socket

    host, _, port = REDIS.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _drop_redis(prefix: str) -> None:
    import asyncio

    from qbot.storage import RedisStorage

    async def drop() -> None:
        async with RedisStorage(f"redis://{REDIS}/0?prefix={prefix}") as storage:
            await storage.drop()

    asyncio.run(drop())


def _wait_ready(served: Served, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            tail = served.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{served.name} exited with {served.proc.returncode}:\n{tail}")
        try:
            url = f"http://127.0.0.1:{served.port}/healthz"
            with urllib.request.urlopen(url, timeout=1):
                # qbot says it serves once every worker does.
                if (
                    not served.name.startswith("qbot")
                    or b"qbot: serving" in served.log.read_bytes()
                ):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{served.name} on port {served.port} not ready within {timeout}s")


@contextmanager
def serve(name: str, tmp: Path, wrapper: list[str] | None = None) -> Iterator[Served]:
    """Run bot ``name`` (one of :data:`BOTS`) until the block ends; a fresh working folder.

    ``wrapper``: the Python arguments that stand for ``-m qbot.cli`` (a qbot bot run under
    :mod:`bench.rss_growth`, given longer to start).
    """
    port, sink_port = free_port(), free_port()
    folder = tmp / f"{name}-{port}"
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    prefix = f"qbot-bench-{uuid.uuid4().hex}:"
    if name == "bare":
        cmd = ["-m", "bench.bare_bot", "--port", str(port)]
        cmd += ["--base-url", f"http://127.0.0.1:{sink_port}"]
    elif name == "aiogram":
        cmd = ["-m", "bench.aiogram_bot", "--port", str(port)]
        cmd += ["--api", f"http://127.0.0.1:{sink_port}"]
    else:
        config = folder / "qbot.yaml"
        _config(config, port, sink_port)
        cmd = [
            *(wrapper or ["-m", "qbot.cli"]),
            "run",
            "bench.qbot_bot:bot",
            "--config",
            str(config),
        ]
        if name == "qbot-memory":
            env["QBOT_STORAGE__URL"] = "memory://"
        elif name == "qbot-redis":
            env["QBOT_STORAGE__URL"] = f"redis://{REDIS}/0?prefix={prefix}"
        elif name == "qbot-2w":
            cmd += ["--workers", "2"]
    log = folder / "bot.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *cmd], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    served = Served(name, proc, port, sink_port, log)
    try:
        _wait_ready(served, STARTUP_TIMEOUT * (6 if wrapper else 1))
        time.sleep(0.3)
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for pid in served.pids():
                os.kill(pid, signal.SIGKILL)
            proc.wait()
        if name == "qbot-redis":
            _drop_redis(prefix)


def _bench_tool(served: Served, module: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", module, "--target", f"127.0.0.1:{served.port}"]
    cmd += ["--sink-port", str(served.sink_port), *args]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{module} failed: {done.stderr.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def closed_loop(served: Served, n: int, offset: int = 0) -> dict[str, Any]:
    """``n`` webhooks (after the warm-up), 64 in flight; CPU per webhook of the bot's processes."""
    shape = "telegram" if served.name == "aiogram" else "qiscus"
    before = served.cpu()
    load = _bench_tool(
        served, "bench.loadgen", "-n", str(n), "--warmup", str(WARMUP), "--shape", shape,
        "--offset", str(offset),
    )  # fmt: skip
    if load["lost"] or load["status"]:
        tail = served.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{served.name}: replies missing or webhooks refused: {load}\n{tail}")
    load["cpu_us"] = (served.cpu() - before) / (n + WARMUP) * 1e6
    return load


def rounds(n: int, count: int, tmp: Path) -> dict[str, list[dict[str, Any]]]:
    names = [b for b in BOTS if b != "qbot-redis" or redis_answers()]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(count):
        for name in names:
            with serve(name, tmp) as served:
                runs[name].append(closed_loop(served, n))
    return runs


def paced(rate: float, seconds: float, tmp: Path) -> dict[str, Any]:
    with serve("qbot", tmp) as served:
        before = served.cpu()
        result = _bench_tool(served, "bench.paced", "--rate", str(rate), "--seconds", str(seconds))
        result["cpu_us"] = (served.cpu() - before) / result["sent"] * 1e6
        return result


def memory(n: int, tmp: Path) -> dict[str, Any]:
    """RSS of ``qbot run`` (default config) idle, after ``n / 2`` and after ``n`` webhooks."""
    with serve("qbot", tmp) as served:
        idle = served.rss()
        half = n // 2
        closed_loop(served, half - WARMUP)
        middle = served.rss()
        closed_loop(served, half - WARMUP, offset=half)
        return {"n": n, "idle": idle, "half": middle, "after": served.rss()}


def median_ratio(runs: dict[str, list[dict[str, Any]]], name: str, ref: str, key: str) -> float:
    pairs = zip(runs[name], runs[ref], strict=True)
    return statistics.median(float(a[key]) / float(b[key]) for a, b in pairs)


def median(runs: dict[str, list[dict[str, Any]]], name: str, key: str) -> float:
    return statistics.median(float(r[key]) for r in runs[name])


def run(quick: bool) -> dict[str, Any]:
    """Everything this part measures, as one JSON-able dict (see :func:`bench.__main__._scale`)."""
    with tempfile.TemporaryDirectory(prefix="qbot-bench-scale-") as folder:
        tmp = Path(folder)
        runs = rounds(1_000 if quick else 10_000, 1 if quick else 3, tmp)
        ack = paced(500.0, 5.0 if quick else 60.0, tmp)
        rss = memory(5_000 if quick else 100_000, tmp)
    return {"runs": runs, "ack": ack, "rss": rss, "quick": quick}


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=1))
