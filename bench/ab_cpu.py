"""A/B of two checkouts: the served bot's CPU per webhook, rounds interleaved.

python -m bench.ab_cpu /path/to/base-checkout [-n 4000] [--rounds 5] [--bot qbot]

Each round serves the end-to-end bot (``bench.e2e.run_bot``: ``qbot run``, the load generator,
the sink) from the base checkout, then from this one, back to back, so a slow spell of the shared
machine hits both alike. Printed: each round's CPU per webhook (the bot process only, warm-up
included) and throughput, and the median of the same-round ratios new ÷ base.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench._common import run_in_tree

ROOT = Path(__file__).resolve().parent.parent
_ONE = (
    "import json, pathlib, sys, tempfile\n"
    "from bench import e2e\n"
    "r = e2e.run_bot(sys.argv[1], int(sys.argv[2]), 64, pathlib.Path(tempfile.mkdtemp()))\n"
    "print(json.dumps({'cpu': r.cpu, 'per_second': r.load['per_second'],"
    " 'sent': r.load.get('sent', int(sys.argv[2]))}))\n"
)
WARMUP = 500  # bench.loadgen's warm-up webhooks, counted in the bot's CPU


def one(root: Path, bot: str, n: int) -> dict[str, float]:
    """One served run from the checkout at ``root``: CPU seconds and webhooks/s."""
    return run_in_tree(root, _ONE, bot, str(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("-n", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bot", default="qbot", help="qbot or qbot-memory")
    args = parser.parse_args()
    ratios: list[float] = []
    for round_ in range(1, args.rounds + 1):
        per: dict[str, float] = {}
        for label, root in (("base", args.base.resolve()), ("new", ROOT)):
            result = one(root, args.bot, args.n)
            per[label] = 1e6 * result["cpu"] / (args.n + WARMUP)
            print(
                f"round {round_} {label}: {per[label]:7.1f} us CPU/webhook,"
                f" {result['per_second']:7.0f} webhooks/s",
                flush=True,
            )
        ratios.append(per["new"] / per["base"])
        print(f"round {round_} ratio new/base: {ratios[-1]:.3f}", flush=True)
    print(f"median ratio new/base CPU per webhook: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
