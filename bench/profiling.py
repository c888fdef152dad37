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
        print(components(raw), "\n")
        print(summarise(raw, args.top))


if __name__ == "__main__":
    main()
