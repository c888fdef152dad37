"""The open-loop load generator: webhooks at a fixed rate whatever the bot does, timed to the ack.

Webhook ``k`` is due at ``start + k / rate``; it is sent then on an idle keep-alive connection
(a new one is opened when none is idle, up to ``--connections``), and its ack latency is the time
from when it was *due* to its 200, so a bot that falls behind is charged for the queue it causes
(no coordinated omission). The sink counts the replies; the run waits for them all. Prints one
JSON object on stdout.

    python -m bench.paced --target 127.0.0.1:8001 --sink-port 8002 --rate 500 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from bench._common import percentile
from bench.loadgen import _read_response, _request
from bench.scenario import message_id_of, webhook_bytes
from bench.sink import Sink

REPLY_WAIT = 30.0
"""Seconds the run waits, after the last webhook, for the replies still missing."""
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def run(
    host: str, port: int, sink_port: int, rate: float, seconds: float, rooms: int, connections: int
) -> dict[str, Any]:
    replies: set[int] = set()
    sink = Sink(lambda body: replies.add(message_id_of(str(body.get("message", "")))))
    await sink.start(sink_port)
    total = int(rate * seconds)
    # Message ids of a run of their own (the closed-loop runs use 1,000,000 + i).
    requests = [_request(host, port, webhook_bytes(2_000_000 + i, rooms)) for i in range(total)]
    idle: list[Connection] = []
    opened = 0
    latencies: list[float] = []
    lag: list[float] = []
    errors = {"status": 0, "failed": 0, "no_connection": 0}

    async def send(k: int, due: float) -> None:
        nonlocal opened
        if idle:
            conn = idle.pop()
        elif opened < connections:
            opened += 1
            conn = await asyncio.open_connection(host, port)
        else:
            errors["no_connection"] += 1
            return
        reader, writer = conn
        try:
            writer.write(requests[k])
            status = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError):
            errors["failed"] += 1
            writer.close()
            opened -= 1
            return
        latencies.append(time.perf_counter() - due)
        if status != 200:
            errors["status"] += 1
        idle.append(conn)

    tasks: set[asyncio.Task[None]] = set()
    cpu_before = time.process_time()
    start = time.perf_counter() + 0.2
    for k in range(total):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lag.append(time.perf_counter() - due)
        task = asyncio.create_task(send(k, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sent_for = time.perf_counter() - start
    await asyncio.gather(*tasks)
    deadline = time.perf_counter() + REPLY_WAIT
    accepted = total - errors["status"] - errors["failed"] - errors["no_connection"]
    while len(replies) < accepted and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    for _, writer in idle:
        writer.close()
    await sink.close()
    return {
        "rate": rate,
        "seconds": seconds,
        "sent": total,
        "sent_per_second": total / sent_for,
        "connections": opened,
        "replies": len(replies),
        "ack_p50_ms": percentile(latencies, 50) * 1000,
        "ack_p99_ms": percentile(latencies, 99) * 1000,
        "ack_max_ms": max(latencies, default=float("nan")) * 1000,
        "send_lag_p99_ms": percentile(lag, 99) * 1000,
        "cpu": time.process_time() - cpu_before,
        **errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT of the bot's webhook server")
    parser.add_argument("--sink-port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=500.0, help="webhooks a second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=256, help="open at most")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    where = (host, int(port), args.sink_port)
    load = (args.rate, args.seconds, args.rooms, args.connections)
    result = asyncio.run(run(*where, *load))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
