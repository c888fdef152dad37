"""A/B of two checkouts on pieces of the ingest path, in-process, rounds interleaved.

python -m bench.ab_parts /path/to/base-checkout [--rounds 5]

Each round runs every piece below once in a fresh process of the base checkout, then of this
one, back to back; a piece's figure is its best CPU time (``time.process_time``) per call over
7 repeats in that process. Printed: each round's figures and the median of the same-round
ratios new ÷ base. The pieces only use public names both checkouts have:

- ``parse``: ``Update.model_validate_json`` of the end-to-end workload's webhook bodies.
- ``parse_dict``: ``Update.model_validate`` of the same bodies as dicts (``feed_update``).
- ``read_body``: ``qbot._bodies.read_body`` of a webhook body that came whole with its
  headers (aiohttp's mocked request over a fed stream), in a running event loop.
- ``log_line``: one ``update.handled`` info line with ``room_id`` and ``message_id`` bound,
  qbot's default logging (JSON) into a file.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench._common import run_in_tree

ROOT = Path(__file__).resolve().parent.parent

_PIECES = r"""
import asyncio, json, os, sys, tempfile, time
import structlog
from aiohttp import streams
from aiohttp.test_utils import make_mocked_request
from qbot._bodies import read_body
from bench.scenario import webhook_bytes
from qbot.log import configure_logging
from qbot.models.webhook import Update

bodies = [webhook_bytes(i, 1000) for i in range(2000)]
dicts = [json.loads(b) for b in bodies]
out = open(os.path.join(tempfile.mkdtemp(), "log.jsonl"), "w")
configure_logging("info", "json", stream=out)
log = structlog.get_logger("qbot.bot")

def log_lines():
    for i in range(2000):
        tokens = structlog.contextvars.bind_contextvars(room_id="10003", message_id=f"id:{i}")
        log.info("update.handled", handler="greet", replies=1)
        structlog.contextvars.reset_contextvars(**tokens)

class _Protocol:
    _reading_paused = False

    def pause_reading(self, **kw): pass

    def resume_reading(self, **kw): pass

def requests():
    made = []
    for body in bodies[:READS]:
        stream = streams.StreamReader(_Protocol(), 2**16, loop=loop)
        stream.feed_data(body)
        stream.feed_eof()
        headers = {"Content-Length": str(len(body)), "Content-Type": "application/json"}
        made.append(make_mocked_request("POST", "/webhook", headers=headers, payload=stream))
    return made

async def read_all(made):
    for request in made:
        await read_body(request, 1 << 20, 10.0)

READS = 200  # aiohttp's mocked requests are slow to make
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)

def read_bodies():
    made = requests()  # not timed: made again each repeat (a stream is read once)
    start = time.process_time()
    loop.run_until_complete(read_all(made))
    return (time.process_time() - start) * len(bodies) / READS

pieces = {
    "parse": lambda: [Update.model_validate_json(b) for b in bodies],
    "parse_dict": lambda: [Update.model_validate(d) for d in dicts],
    "log_line": log_lines,
    "read_body": read_bodies,
}
best = {}
for _ in range(7):
    for name, piece in pieces.items():
        start = time.process_time()
        inner = piece()
        took = (inner if isinstance(inner, float) else time.process_time() - start) / 2000 * 1e6
        best[name] = min(best.get(name, took), took)
print(json.dumps(best))
"""


def one(root: Path) -> dict[str, float]:
    return run_in_tree(root, _PIECES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ratios: dict[str, list[float]] = {}
    for round_ in range(1, args.rounds + 1):
        base, new = one(args.base.resolve()), one(ROOT)
        for name in base:
            ratios.setdefault(name, []).append(new[name] / base[name])
            print(
                f"round {round_} {name:10s}: base {base[name]:6.2f} us, new {new[name]:6.2f} us,"
                f" ratio {new[name] / base[name]:.3f}",
                flush=True,
            )
    for name, values in ratios.items():
        print(f"median ratio new/base {name}: {statistics.median(values):.3f}")


if __name__ == "__main__":
    main()
