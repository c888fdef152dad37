"""Redis round trips per message, and Redis ÷ memory through the core, on a private redis-server.

The storage bench's workload (``bench.storage_bench.throughput``: ``Runtime.submit``, the claim
loop, a room worker reading and writing ``ctx.state`` and replying once through the outbox, the
commit) run alternately on ``memory://`` and on a ``redis-server`` of this script's own (a free
port, no persistence, stopped at the end), so the shared one's other users neither slow it nor
show in its counts. For each Redis round: the commands Redis served per message (``INFO
commandstats``; a pipeline's commands count one each, ``round_trips`` counts a pipeline once,
from redis-py's side) and this process's CPU per message; the ratio is the median of same-round
ratios of messages/s.

    python -m bench.redis_trips                   # 3 rounds of 3,000 messages, 32 in flight
    python -m bench.redis_trips -n 2000 --rounds 5 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.asyncio.client import Pipeline, Redis

from bench._common import free_port
from bench.storage_bench import throughput
from qbot.log import configure_logging
from qbot.storage import open_storage


@contextmanager
def private_redis() -> Iterator[int]:
    """A ``redis-server`` on a free port, without persistence; stopped on exit."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis_trips: redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"redis_trips: redis-server on port {port} did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def counted_round_trips() -> Iterator[Counter[str]]:
    """Counts what redis-py sends: a command, or a pipeline as one ``pipeline`` round trip."""
    counts: Counter[str] = Counter()
    command: Any = Redis.execute_command
    pipeline: Any = Pipeline.execute

    async def one(self: Any, *args: Any, **options: Any) -> Any:
        counts[str(args[0]).lower()] += 1
        return await command(self, *args, **options)

    async def many(self: Any, raise_on_error: bool = True) -> Any:
        counts["pipeline"] += 1
        return await pipeline(self, raise_on_error)

    Redis.execute_command = one  # type: ignore[method-assign]
    Pipeline.execute = many  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        Redis.execute_command = command  # type: ignore[method-assign]
        Pipeline.execute = pipeline  # type: ignore[method-assign]


def server_cpu(port: int) -> float:
    """CPU seconds the redis-server has used (user + system)."""
    info = redis.Redis(port=port).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def commandstats(port: int) -> dict[str, int]:
    stats = redis.Redis(port=port).info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


async def one_round(url: str, messages: int, rooms: int, concurrency: int) -> dict[str, Any]:
    storage = open_storage(url)
    cpu = time.process_time()
    figures = await throughput(storage, url, messages, rooms, concurrency)
    figures["cpu_us_per_message"] = round((time.process_time() - cpu) / messages * 1e6)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="messages per round and backend")
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    configure_logging("warning", "json", stream=io.StringIO())
    ratios: list[float] = []
    rounds: list[dict[str, Any]] = []
    with private_redis() as port:
        for index in range(args.rounds):
            url = f"redis://127.0.0.1:{port}/0?prefix=trips{index}:"
            memory = asyncio.run(one_round("memory://", args.n, args.rooms, args.concurrency))
            before, cpu = commandstats(port), server_cpu(port)
            with counted_round_trips() as trips:
                on_redis = asyncio.run(one_round(url, args.n, args.rooms, args.concurrency))
            after, cpu = commandstats(port), server_cpu(port) - cpu
            served = {
                name: round((calls - before.get(name, 0)) / args.n, 2)
                for name, calls in sorted(after.items())
                if calls - before.get(name, 0) >= args.n / 100 and name != "info"
            }
            ratios.append(on_redis["per_second"] / memory["per_second"])
            rounds.append(
                {
                    "memory_per_second": round(memory["per_second"]),
                    "memory_cpu_us": memory["cpu_us_per_message"],
                    "redis_per_second": round(on_redis["per_second"]),
                    "redis_cpu_us": on_redis["cpu_us_per_message"],
                    "redis_server_cpu_us": round(cpu / args.n * 1e6),
                    "ratio": round(ratios[-1], 3),
                    "round_trips_per_message": round(sum(trips.values()) / args.n, 2),
                    "round_trips": {k: round(v / args.n, 2) for k, v in sorted(trips.items())},
                    "served_per_message": served,
                }
            )
    report = {
        "messages": args.n,
        "concurrency": args.concurrency,
        "redis_over_memory_median": round(statistics.median(ratios), 3),
        "rounds": rounds,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
