"""Part 3, intents: 200 intents x 20 example phrases; time to classify one message, p50 and p99.

The phrases are generated (fixed seed) from a shared vocabulary of filler words plus a few topic
words per intent, so intents overlap the way real ones do. Messages are example variants (words
dropped, one replaced), messages with only filler words, and a few long ones.
"""

from __future__ import annotations

import random
import time
from typing import Any

from bench._common import percentile
from qbot.intents import IntentSet

FILLER = (
    "i",
    "want",
    "to",
    "please",
    "can",
    "you",
    "my",
    "the",
    "a",
    "for",
    "with",
    "about",
    "how",
    "do",
    "get",
    "need",
    "help",
    "me",
    "is",
    "it",
    "this",
    "that",
    "what",
    "when",
    "where",
    "why",
    "order",
    "account",
    "today",
    "now",
    "again",
    "still",
    "not",
    "yet",
)


def build(intents: int = 200, examples: int = 20, seed: int = 11) -> tuple[IntentSet, list[str]]:
    """An intent set of ``intents`` x ``examples`` phrases and messages to classify."""
    rnd = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)]
    spec: dict[str, Any] = {}
    phrases: list[list[str]] = []
    for i in range(intents):
        topic = rnd.sample(vocab, 6)
        rows = []
        for _ in range(examples):
            words = rnd.sample(topic, 3) + rnd.sample(FILLER, 4)
            rnd.shuffle(words)
            rows.append(" ".join(words))
            phrases.append(words)
        spec[f"intent{i}"] = {"examples": rows, "keywords": [f"{topic[0]} {topic[1]}"]}
    messages = []
    for _ in range(2000):
        kind = rnd.random()
        if kind < 0.7:
            words = list(rnd.choice(phrases))
            words[rnd.randrange(len(words))] = rnd.choice(vocab)
            words = words[: rnd.randint(3, len(words))]
        elif kind < 0.9:
            words = rnd.sample(FILLER, rnd.randint(2, 8))
        else:
            words = [rnd.choice(vocab + list(FILLER)) for _ in range(60)]
        messages.append(" ".join(words))
    return IntentSet(spec), messages


def run(rounds: int = 3) -> dict[str, float]:
    """Percentiles of the median round (by p99): other work on a shared machine and garbage
    collection pauses can spoil one round's tail."""
    intents, messages = build()
    for text in messages:  # warm-up
        intents.match(text)
    results = []
    clock = time.perf_counter
    for _ in range(rounds):
        times: list[float] = []
        cpu_times: list[float] = []  # the thread's CPU: the wall tail is mostly the scheduler
        matched = 0
        for text in messages:
            start, start_cpu = clock(), time.thread_time()
            found = intents.match(text)
            cpu_times.append(time.thread_time() - start_cpu)
            times.append(clock() - start)
            matched += found is not None
        results.append(
            {
                "messages": len(times),
                "matched": matched / len(times),
                "p50_ms": percentile(times, 50) * 1000,
                "p99_ms": percentile(times, 99) * 1000,
                "max_ms": max(times) * 1000,
                "cpu_p50_ms": percentile(cpu_times, 50) * 1000,
                "cpu_p99_ms": percentile(cpu_times, 99) * 1000,
            }
        )
    results.sort(key=lambda r: r["p99_ms"])
    return results[len(results) // 2]


if __name__ == "__main__":
    print(run())
