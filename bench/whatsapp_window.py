"""What WhatsApp's window costs per message: ``python -m bench.whatsapp_window``.

The same bot handles the same messages, through ``bot.dispatcher.process`` (what a room worker
runs), with replies accepted at once (no network): as Omnichannel web-widget messages (the
baseline: the same Omnichannel path, no window), as Omnichannel WhatsApp messages from
customers' numbers, for which qbot also reads the room's WhatsApp record with the room's state,
moves the window, writes it in the message's commit and checks it before the reply, and as Chat
SDK messages (context). The handler writes state, so every message commits. The ratio of the
medians, measured in the same run (interleaved), is the window's overhead; absolute numbers are
context only (noisy machines). On ``memory://`` and on SQLite.
"""

from __future__ import annotations

import asyncio
import copy
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._inproc import offline, quiet_logging, time_each
from bench.scenario import webhook
from qbot import Bot, Context
from qbot.emulator.omnichannel_bodies import omnichannel_body
from qbot.models.webhook import Update
from qbot.storage import open_storage

ROOMS = 200
MESSAGES = 4_000
RUNS = 5


def make_bot() -> Bot:
    bot = Bot("window-bench")

    @bot.message()
    async def answer(ctx: Context) -> None:
        await ctx.state.set("seen", ctx.text)
        await ctx.reply("noted")

    return offline(bot)


def omnichannel(body: dict[str, Any], source: str) -> dict[str, Any]:
    """The same message through Omnichannel; a WhatsApp customer's user id is their number."""
    out = omnichannel_body(
        copy.deepcopy(body), app_code="bench", channel={"id": 2, "name": source}, source=source
    )
    if source == "wa":
        out["payload"]["from"]["email"] = f"62812{int(out['payload']['room']['id']):07d}"
    return out


def updates(kind: str, run: int) -> list[Update]:
    found = []
    for i in range(MESSAGES):
        body = webhook(i, ROOMS)
        # A fresh message identity per run: nothing is answered "already sent".
        body["payload"]["message"]["unique_temp_id"] = f"{kind}-{run}-{i}"
        body["payload"]["message"]["id"] = 5_000_000 * (run + 1) + i
        found.append(Update.model_validate(body if kind == "sdk" else omnichannel(body, kind)))
    return found


KINDS = ("qiscus", "wa", "sdk")  # the web widget, WhatsApp, the Chat SDK


async def measure(url: str) -> dict[str, float]:
    """Median seconds per message of each kind (the best of RUNS interleaved runs)."""
    bot = make_bot()
    bot.dispatcher.use_storage(open_storage(url), url=url)
    await bot.dispatcher.open()
    try:
        medians: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for run in range(RUNS):  # interleaved, so a slow moment hits every kind
            for kind in KINDS:
                batch = updates(kind, run)
                times = await time_each(batch, bot.dispatcher.process)
                medians[kind].append(statistics.median(times))
        return {kind: min(values) for kind, values in medians.items()}
    finally:
        await bot.dispatcher.aclose()


async def main() -> None:
    quiet_logging()
    with tempfile.TemporaryDirectory() as tmp:
        targets = {"memory://": "memory://", "sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        header = ("storage", "widget µs", "whatsapp µs", "wa/widget", "chat sdk µs")
        print(f"{header[0]:<10} {header[1]:>10} {header[2]:>12} {header[3]:>10} {header[4]:>12}")
        for name, url in targets.items():
            m = await measure(url)
            ratio = m["wa"] / m["qiscus"]
            print(
                f"{name:<10} {m['qiscus'] * 1e6:>10.0f} {m['wa'] * 1e6:>12.0f} {ratio:>10.2f} "
                f"{m['sdk'] * 1e6:>12.0f}"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
