"""Storage bench: messages/s through the core on SQLite and Redis relative to memory, in one run,
and the memory taken by 100,000 idle conversations.

Each message takes the whole durable path of ``qbot run``: ``Runtime.submit`` (inbox, deduped),
the claim loop and a room worker, a handler that reads and writes ``ctx.state`` and replies once
(the reply goes through the outbox to a delivery that posts nowhere), then the commit that saves
the state and acks the message. Idle conversations are states saved in ``MemoryStorage`` (one
per room and user, as a form in progress leaves them); the figure is the process's RSS growth.

    python -m bench.storage_bench                 # 5,000 messages, 100,000 conversations
    python -m bench.storage_bench -n 2000 --no-redis
    python -m bench.storage_bench --concurrency 32   # 32 webhooks in flight, as under load

``sqlite`` is the default ``synchronous=full`` (every commit fsynced), ``sqlite_normal`` the
``?synchronous=normal`` option (survives a killed process, not a power cut).

Prints one JSON object. Redis is ``redis://127.0.0.1:6379/0`` under a throw-away key prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from qbot import Bot, Context
from qbot.log import configure_logging
from qbot.messages import Outgoing
from qbot.models.webhook import Update
from qbot.runtime import Runtime
from qbot.storage import MemoryStorage, RedisStorage, StateWrite, Storage, open_storage, state_key


class NullDelivery:
    """Accepts every reply at once: the storage's cost without the network's."""

    def __init__(self) -> None:
        self.count = 0

    async def deliver(self, room_id: int | str, outgoing: Outgoing, unique_temp_id: str) -> Any:
        self.count += 1
        return None


def webhook(i: int, rooms: int) -> dict[str, Any]:
    room = 10_000 + i % rooms
    return {
        "type": "post_comment_mobile",
        "payload": {
            "from": {"id": 1, "email": f"user{room}@example.com", "name": "User"},
            "room": {"id": room, "name": "room", "type": "single", "options": "{}"},
            "message": {"id": 1_000_000 + i, "type": "text", "text": f"hello {i}", "payload": {}},
        },
    }


def make_bot(storage: Storage, url: str) -> tuple[Bot, NullDelivery]:
    bot = Bot("storage-bench", email="bot@bench.local")
    bot.delivery = out = NullDelivery()
    bot.use_storage(storage, url=url)

    @bot.message()
    async def count(ctx: Context) -> None:
        seen = await ctx.state.get("seen", 0)
        await ctx.state.set("seen", seen + 1)
        await ctx.reply(f"message {seen + 1}")

    return bot, out


async def throughput(
    storage: Storage, url: str, messages: int, rooms: int, concurrency: int = 1
) -> dict[str, Any]:
    bot, out = make_bot(storage, url)
    runtime = Runtime(bot)
    bodies = [webhook(i, rooms) for i in range(messages)]
    todo = iter(zip([Update.model_validate(b) for b in bodies], bodies, strict=True))
    await runtime.start()

    async def client() -> None:  # one webhook connection: posts the next once this one is stored
        for update, body in todo:
            await runtime.submit(update, body)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    while runtime.processed < messages:  # noqa: ASYNC110 - the bench polls its own counter
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    await runtime.drain(timeout=30)
    await bot.aclose()
    if out.count != messages:
        raise RuntimeError(f"{url}: {out.count} replies for {messages} messages")
    return {"messages": messages, "seconds": round(elapsed, 3), "per_second": messages / elapsed}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status: this bench needs Linux")


async def idle_memory(conversations: int) -> dict[str, Any]:
    storage = MemoryStorage()
    gc.collect()
    before = rss_mib()
    for start in range(0, conversations, 1000):
        writes = [
            StateWrite(
                state_key(str(20_000 + i), f"user{i}@example.com"),
                {"step": "form:complaint:issue", "data": {"form:complaint": {"order": str(i)}}},
                7 * 24 * 3600.0,
            )
            for i in range(start, min(start + 1000, conversations))
        ]
        await storage.commit(states=writes)
    gc.collect()
    after = rss_mib()
    return {
        "conversations": conversations,
        "rss_growth_mib": round(after - before, 1),
        "bytes_each": round((after - before) * 1024 * 1024 / conversations),
    }


async def run(
    messages: int, rooms: int, conversations: int, redis: bool, concurrency: int
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        backends = [
            ("memory", "memory://"),
            ("sqlite", f"sqlite:///{folder}/bench.db"),  # fsync per commit: survives power cuts
            ("sqlite_normal", f"sqlite:///{folder}/normal.db?synchronous=normal"),
        ]
        if redis:
            backends.append(
                ("redis", f"redis://127.0.0.1:6379/0?prefix=qbot-bench-{uuid.uuid4().hex}:")
            )
        for name, url in backends:
            storage = open_storage(url)
            try:
                results[name] = await throughput(storage, url, messages, rooms, concurrency)
            finally:
                if isinstance(storage, RedisStorage):
                    async with RedisStorage(url) as cleanup:
                        await cleanup.drop()
    base = results["memory"]["per_second"]
    for figures in results.values():
        figures["relative_to_memory"] = round(figures["per_second"] / base, 3)
        figures["per_second"] = round(figures["per_second"])
    results["idle_memory"] = await idle_memory(conversations)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="messages per backend")
    parser.add_argument("--rooms", type=int, default=50, help="rooms the messages are spread over")
    parser.add_argument("--conversations", type=int, default=100_000, help="idle conversations")
    parser.add_argument("--no-redis", action="store_true", help="skip Redis")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="webhooks in flight at once (1: each is stored before the next is submitted)",
    )
    args = parser.parse_args()
    configure_logging("warning", "json", stream=io.StringIO())
    if args.concurrency < 1:
        parser.error(f"--concurrency must be >= 1, got {args.concurrency}")
    report = asyncio.run(
        run(args.n, args.rooms, args.conversations, not args.no_redis, args.concurrency)
    )
    report["concurrency"] = args.concurrency
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
