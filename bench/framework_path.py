"""The framework's own path per webhook, with no I/O: instruction counts that repeat exactly.

python -m bench.framework_path -n 1000

The end-to-end bot (``bench.qbot_bot``) behind a served runtime (``Runtime`` as ``qbot run``
builds it: room workers that linger, the claim loop) on ``memory://``, its replies through a
no-network delivery, logging at info into memory. 16 submitters (as the served benches' 16
connections) each ``Runtime.submit`` the end-to-end workload's updates (1,000 rooms, parsed
beforehand) and yield; returns once every update was processed. This is everything between the
webhook handler and the reply's HTTP call: the runtime, the dispatcher, routing, ``Context``,
the sender and the outbox.

Nothing suspends on I/O and no timer is due during the run (the linger and the lease are set
long), so the event loop takes the same steps in every run: under ``valgrind --tool=callgrind``
the difference between two ``-n`` gives the instructions per webhook, the same to a few
instructions in two runs whatever the machine's load (``bench/ingest_served.py``'s count, over
real sockets, moves by up to 5 % between runs as the loop batches differently)::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.framework_path -n 200
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.framework_path -n 1000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time

from bench._inproc import offline
from bench.scenario import webhook_bytes
from qbot.config import load_settings
from qbot.log import configure_logging
from qbot.models.webhook import Update
from qbot.runtime import Runtime

SUBMITTERS = 16


async def serve(n: int) -> float:
    """Submit and process ``n`` updates; the process's CPU seconds for them."""
    from bench.qbot_bot import bot

    settings = load_settings(
        None,
        qiscus={"app_id": "bench", "secret_key": "bench-secret", "base_url": "http://127.0.0.1:9"},
        bot={"email": "bot@bench.local"},
        storage={"url": "memory://"},
    )
    bot.configure(settings)  # as ingest_served: the served bot's settings
    offline(bot)
    updates = [Update.model_validate_json(webhook_bytes(i, 1000)) for i in range(n)]
    runtime = Runtime(bot, lease_ttl=3600.0, linger=1000.0)
    await runtime.start()

    async def submitter(mine: list[Update]) -> None:
        for update in mine:
            if await runtime.submit(update) != "accepted":
                raise SystemExit(f"update {update.message.identity} not accepted")
            await asyncio.sleep(0)

    start = time.process_time()
    await asyncio.gather(*(submitter(updates[i::SUBMITTERS]) for i in range(SUBMITTERS)))
    while runtime.processed < n:  # noqa: ASYNC110 - the runtime signals no "processed" event
        await asyncio.sleep(0)
    took = time.process_time() - start
    await runtime.drain(timeout=10.0)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000)
    args = parser.parse_args()
    configure_logging("info", "json", stream=io.StringIO())  # qbot run's default: info, JSON
    cpu = asyncio.run(serve(args.n))
    print(f"{args.n} webhooks, {cpu:.3f} s CPU, {1e6 * cpu / args.n:.1f} us per webhook")


if __name__ == "__main__":
    main()
