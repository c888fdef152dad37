"""Part 5, memory: resident memory of a bot process idle, then after 100,000 conversations.

Run as its own process (``python -m bench.memory``) so nothing else inflates the figure. Each
conversation is one webhook in its own room, accepted by the real ``Runtime`` into the bot's
``memory://`` storage (its dedupe record kept, as it must be for 10 minutes) and handled by a
handler that keeps the conversation's state in ``ctx.state`` and replies through a no-network
delivery. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from typing import Any

from bench._common import rss_mib
from bench._inproc import offline, quiet_logging
from bench.scenario import webhook
from qbot import Bot, Context
from qbot.models.webhook import Update
from qbot.runtime import Runtime
from qbot.storage import MemoryStorage, state_key


async def measure(conversations: int) -> dict[str, Any]:
    storage = MemoryStorage()
    bot = Bot("memory")
    bot.use_storage(storage, url="memory://")

    @bot.message(text=["hi", "hello"])
    async def greet(ctx: Context) -> None:
        turns = await ctx.state.get("turns", 0)
        await ctx.state.update(turns=turns + 1, name=ctx.sender.name)
        await ctx.state.goto("greeted")
        await ctx.reply(f"Hello {ctx.sender.name}!")

    offline(bot)
    runtime = Runtime(bot)
    await runtime.start()
    template = webhook(0, 1)
    gc.collect()
    idle = rss_mib()
    for start in range(0, conversations, 1000):
        for i in range(start, min(start + 1000, conversations)):
            body = json.loads(json.dumps(template))
            body["payload"]["room"]["id"] = 1_000_000 + i
            body["payload"]["from"]["email"] = f"user{i}@example.com"
            body["payload"]["message"]["id"] = 5_000_000 + i
            await runtime.submit(Update.model_validate(body), body)
        # Polling is fine here: the loop has nothing else to do but run the room workers.
        while runtime.processed < i + 1:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
    gc.collect()
    after = rss_mib()
    await runtime.drain()
    last = state_key(str(1_000_000 + conversations - 1), f"user{conversations - 1}@example.com")
    return {
        "conversations": conversations,
        "processed": runtime.processed,
        "last_state": await storage.get_state(last),
        "inbox_left": await storage.inbox_size(),
        "rss_idle_mib": idle,
        "rss_after_mib": after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="conversations")
    args = parser.parse_args()
    quiet_logging()
    json.dump(asyncio.run(measure(args.n)), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
