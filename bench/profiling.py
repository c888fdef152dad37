"""Summaries of py-spy's collapsed stacks (``-f raw``): where a bot process spends its time.

python -m bench.profiling qbot            # profile ``qbot run`` under load, print the summary
python -m bench.profiling bare+contract   # the same for a rung of the bare bot's ladder
"""

from __future__ import annotations

import argparse
import re
import tempfile
from collections import Counter
from pathlib import Path

from bench import e2e

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m['func']} ({path})"


COMPONENTS = (
    # (component, any of these in the stack), first match wins, leaf-side concerns first.
    ("storage (qbot's calls, SQL included)", ("SqliteStorage", "MemoryStorage", "RedisStorage")),
    ("logging (structlog)", ("structlog/",)),
    ("typed models (pydantic)", ("pydantic/", "pydantic_core")),
    ("HTTP client (aiohttp + qbot's transport)", ("aiohttp/client", "Transport.request")),
    ("webhook server (aiohttp)", ("aiohttp/web", "aiohttp/http_")),
    ("framework (runtime, routing, context, sending)", ("qbot/", "bench/")),
)


def components(path: Path) -> str:
    """Busy samples by component (see :data:`COMPONENTS`), the rest being the event loop."""
    shares: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or any("select (selectors.py" in f for f in stack.split(";")[-2:]):
            continue
        if "_find_and_load" in stack:  # start-up imports
            continue
        count = int(count_text)
        total += count
        name = next(
            (c for c, marks in COMPONENTS if any(m in stack for m in marks)),
            "event loop and asyncio",
        )
        shares[name] += count
    lines = ["component                                        % of busy samples"]
    lines += [f"{c:48s} {100 * n / max(total, 1):5.1f}" for c, n in shares.most_common()]
    return "\n".join(lines)


def loop_thread_only(path: Path, out: Path) -> str:
    """Write to ``out`` the samples of the event-loop thread; say what share the others had.

    Only the event loop's time limits a bot's throughput: SQLite's commit thread (the fsync) and
    the executor run beside it on the other core, and py-spy samples them too. Their stacks
    start at ``threading``'s bootstrap; the loop's do not.
    """
    loop = others = 0
    kept = []
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or any("select (selectors.py" in f for f in stack.split(";")[-2:]):
            continue
        if "_bootstrap (threading.py" in stack:
            others += int(count_text)
            continue
        loop += int(count_text)
        kept.append(line)
    out.write_text("\n".join(kept) + "\n")
    share = 100 * others / max(loop + others, 1)
    return (
        f"busy samples: event-loop thread {loop}, other threads {others} ({share:.1f} %: "
        "SQLite's commit thread, the executor); the tables below are the event loop's"
    )


def summarise(path: Path, top: int = 25) -> str:
    """Top functions by inclusive and by own share of the samples, as a text block."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        # The event loop's idle wait is not work: leave it out of the shares.
        if any("select (selectors.py)" in f for f in frames[-2:]):
            continue
        if "_find_and_load" in stack:  # start-up imports, as in components()
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"busy samples: {total}", "", "inclusive %  function"]
    lines += [f"{100 * c / total:10.1f}  {f}" for f, c in inclusive.most_common(top)]
    lines += ["", "own %       function"]
    lines += [f"{100 * c / total:10.1f}  {f}" for f, c in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bot", choices=["qbot", "qbot-memory", *e2e.BARE_LADDER])
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", type=Path, help="also keep the raw collapsed stacks here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qbot-profile-") as tmp:
        raw = args.keep or Path(tmp) / "stacks.txt"
        result = e2e.run_bot(args.bot, args.n, 64, Path(tmp), profile=raw)
        print(f"{args.bot}: {result.load['per_second']:.0f} webhooks/s under py-spy\n")
        loop = Path(tmp) / "loop.txt"
        print(loop_thread_only(raw, loop), "\n")
        print(components(loop), "\n")
        print(summarise(loop, args.top))


if __name__ == "__main__":
    main()
