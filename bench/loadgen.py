"""The load generator process: posts webhooks to a bot and times each reply at the sink.

``W`` workers each hold one keep-alive connection; a worker posts a webhook, reads the bot's
answer, then waits for that webhook's reply to reach the sink before posting the next one (a
closed loop, so latency is not just queueing). Prints one JSON object on stdout.

    python -m bench.loadgen --target 127.0.0.1:8001 --sink-port 8002 -n 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from bench._common import percentile
from bench.scenario import message_id_of, telegram_update_bytes, webhook_bytes
from bench.sink import Sink

REPLY_TIMEOUT = 10.0
MAX_LOST = 20
"""Stop early once this many replies never came: the bot is broken, not slow."""


def _request(host: str, port: int, body: bytes) -> bytes:
    head = (
        f"POST /webhook HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def run(
    host: str,
    port: int,
    sink_port: int,
    n: int,
    warmup: int,
    workers: int,
    rooms: int,
    shape: str = "qiscus",
    offset: int = 0,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[float]] = {}

    def on_reply(body: dict[str, object]) -> None:
        future = waiting.pop(message_id_of(str(body.get("message", ""))), None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    sink = Sink(on_reply)
    await sink.start(sink_port)
    total = warmup + n
    body_of = telegram_update_bytes if shape == "telegram" else webhook_bytes
    # ``offset``: a later run against the same bot sends new messages, not redeliveries.
    requests = [_request(host, port, body_of(offset + i, rooms)) for i in range(total)]
    latencies: list[float] = []
    errors = {"status": 0, "lost": 0}
    next_index = 0

    async def worker(stop: int) -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < stop and errors["lost"] + errors["status"] < MAX_LOST:
                i = next_index
                next_index += 1
                future: asyncio.Future[float] = loop.create_future()
                waiting[1_000_000 + offset + i] = future
                sent = time.perf_counter()
                writer.write(requests[i])
                status = await _read_response(reader)
                if status != 200:
                    errors["status"] += 1
                    waiting.pop(1_000_000 + offset + i, None)
                    continue
                try:
                    arrived = await asyncio.wait_for(future, REPLY_TIMEOUT)
                except TimeoutError:
                    errors["lost"] += 1
                    continue
                if i >= warmup:
                    latencies.append(arrived - sent)
        finally:
            writer.close()

    # Warm up (connections, caches), then measure from the first measured webhook to the last reply.
    await asyncio.gather(*(worker(warmup) for _ in range(workers)))
    started = time.perf_counter()
    replies_before = sink.count
    await asyncio.gather(*(worker(total) for _ in range(workers)))
    elapsed = time.perf_counter() - started
    await sink.close()
    return {
        "n": n,
        "cpu": time.process_time(),
        "replies": sink.count - replies_before,
        "seconds": elapsed,
        "per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        **errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Post webhooks to a bot; time replies at a sink.")
    parser.add_argument("--target", required=True, help="HOST:PORT of the bot's webhook server")
    parser.add_argument("--sink-port", type=int, required=True)
    parser.add_argument("-n", type=int, default=10_000, help="measured webhooks")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--workers", type=int, default=64, help="webhooks in flight")
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--offset", type=int, default=0, help="index of the first webhook")
    parser.add_argument(
        "--shape",
        choices=("qiscus", "telegram"),
        default="qiscus",
        help="telegram: the aiogram peer",
    )
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    where = (host, int(port), args.sink_port)
    load = (args.n, args.warmup, args.workers, args.rooms, args.shape, args.offset)
    result = asyncio.run(run(*where, *load))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
