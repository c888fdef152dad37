"""Part 2, dispatch scaling: cost per message with 1, 100, 1,000 and 10,000 handlers.

The handlers are a mix: for N > 1, 90 % exact text, 5 % regex and 5 % intents, interleaved in
a fixed pseudo-random registration order. The measured messages are exact texts of handlers
spread over the whole registration order (so on average half the regex and intent handlers are
registered before the one that wins and must be tried first, as the documented order requires).
Updates are parsed beforehand: this times routing, the context and the handler call, not JSON,
through ``bot.dispatcher.process`` (what a room worker runs for each update), not the inbox in
front of it: ``feed_update`` would drop these updates, which repeat, as duplicates.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from bench._common import percentile
from bench._inproc import offline, quiet_logging, time_each
from bench.scenario import webhook
from qbot import Bot, Context
from qbot.intents import IntentSet
from qbot.models.webhook import Update

SIZES = (1, 100, 1_000, 10_000)
INTENTS = 20


def _intents() -> IntentSet:
    spec = {
        f"topic{i}": {"examples": [f"tell me about topic{i} please", f"topic{i} question help"]}
        for i in range(INTENTS)
    }
    return IntentSet(spec)


def build(n: int, seed: int = 7) -> tuple[Bot, list[str]]:
    """A bot with ``n`` mixed handlers, and the exact texts that hit its text handlers."""
    bot = Bot("dispatch", intents=_intents())
    kinds = (
        ["text"] * n if n == 1 else ["text"] * (n - 2 * (n // 20)) + ["regex", "intent"] * (n // 20)
    )
    random.Random(seed).shuffle(kinds)

    async def handler(ctx: Context) -> None:
        return None

    texts: list[str] = []
    for i, kind in enumerate(kinds):
        if kind == "text":
            texts.append(f"command {i}")
            bot.message(text=f"command {i}")(handler)
        elif kind == "regex":
            bot.message(regex=rf"^ticket {i}-(\d+)$")(handler)
        else:
            bot.intent(f"topic{i % INTENTS}")(handler)
    return offline(bot), texts


def _updates(texts: list[str], count: int) -> list[Update]:
    """``count`` updates (their own rooms and ids) hitting texts spread over ``texts``: the same
    number of distinct updates whatever the handler count, so only the handlers differ."""
    step = max(1, len(texts) // count)
    chosen = [texts[i * step % len(texts)] for i in range(count)]
    updates = []
    for i, text in enumerate(chosen):
        body: dict[str, Any] = webhook(i, 50)
        body["payload"]["message"]["text"] = text
        body["payload"]["message"]["type"] = "text"
        updates.append(Update.model_validate(body))
    return updates


async def _measure(messages: int, slices: int = 10) -> list[dict[str, float]]:
    """Time every size in interleaved slices (1, 100, 1,000, 10,000, 1, 100, ...), so that a
    slower spell of a shared machine hits every size alike instead of the last ones measured."""
    setups = []
    for n in SIZES:
        bot, texts = build(n)
        updates = _updates(texts, 200)
        await bot.open()
        await time_each(updates, bot.dispatcher.process)  # warm-up
        setups.append((n, bot, updates))
    times: dict[int, list[float]] = {n: [] for n in SIZES}
    for _ in range(slices):
        for n, bot, updates in setups:
            rounds = max(1, messages // len(updates) // slices)
            times[n] += await time_each(updates, bot.dispatcher.process, rounds)
    for _, bot, _ in setups:
        if bot.delivery is None:
            raise RuntimeError("the bench bot lost its delivery")
    return [
        {
            "handlers": n,
            "mean_us": sum(times[n]) / len(times[n]) * 1e6,
            "p50_us": percentile(times[n], 50) * 1e6,
            "p99_us": percentile(times[n], 99) * 1e6,
        }
        for n in SIZES
    ]


def run(messages: int = 5_000) -> list[dict[str, float]]:
    quiet_logging()
    return asyncio.run(_measure(messages))


if __name__ == "__main__":
    for row in run():
        print(row)
