"""CPU per reply of the path from a handler's reply to Qiscus's answer, in process.

One process runs the reply path as the runtime does for a Chat SDK room: a fresh `Sender` per
message, the durable `OutboxDelivery` (memory storage: the storage is not what is measured),
`RoomDelivery`, `DirectDelivery` and `QiscusClient.post_comment` over a pooled session to
``bench/sink.py`` running in a second process (so the sink's CPU is not counted). ``--tasks``
conversations run at once, like room workers. The figure is the client process's CPU time per
reply (``time.process_time``), which a loaded machine disturbs far less than wall time, though
still by 10-20 % between rounds on a shared 2-core VM. ``--count`` measures instructions instead
(valgrind's callgrind, repeatable under load): each side runs twice, with ``--replies`` and with
twice as many, and the difference divided by ``--replies`` is the instructions per reply.

``--ab DIR`` compares two trees of qbot: it runs this measurement in child processes, the code
of ``DIR`` (e.g. a worktree at the base commit) and this tree alternately, ``--rounds`` times,
and prints each side's median and the median of the same-round ratios::

    git worktree add /tmp/base main
    python -m bench.reply_path --ab /tmp/base --rounds 7
    python -m bench.reply_path --ab /tmp/base --count --replies 320 --tasks 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


async def _measure(port: int, replies: int, tasks: int, kind: str) -> float:
    from bench._inproc import BOT_EMAIL, quiet_logging
    from qbot.client import QiscusClient, RetryPolicy
    from qbot.messages import Buttons, Text
    from qbot.omnichannel.delivery import RoomDelivery, RoomMemory
    from qbot.outbox import Outbox
    from qbot.sending import DirectDelivery, Sender, unique_temp_id
    from qbot.storage import MemoryStorage
    from qbot.storage.records import OutboxItem

    quiet_logging()
    storage = MemoryStorage()
    client = QiscusClient(
        "bench", "secret", f"http://127.0.0.1:{port}", retry=RetryPolicy(max_attempts=1)
    )
    rooms = RoomMemory(storage)
    delivery = RoomDelivery(DirectDelivery(client, BOT_EMAIL), None, rooms, [])
    outbox = Outbox(storage, lambda: delivery)

    def message(n: int) -> Text | Buttons:
        if kind == "buttons":
            menu = Buttons(f"menu {n}").postback("Order", action="order", data={"n": n})
            return menu.link("Web", "https://example.com")
        return Text(f"hello {n}")

    async def conversation(worker: int, count: int) -> None:
        room = str(1000 + worker)
        rooms.preload(room, None)  # load_room read it with the message's state
        for n in range(count):
            origin = f"{room}:{worker}-{n}"
            known: dict[str, OutboxItem | None] = {unique_temp_id(origin, room, 1): None}
            sender = Sender(outbox.delivery(known), origin, None)
            await sender.send(room, message(n))

    per_task = max(1, replies // tasks)
    await asyncio.gather(*(conversation(w, 20) for w in range(tasks)))  # warm up
    start = time.process_time()
    await asyncio.gather(*(conversation(w, per_task) for w in range(tasks)))
    cpu = time.process_time() - start
    await client.close()
    return cpu / (per_task * tasks) * 1e6


def _run_sink() -> None:
    from bench.sink import Sink

    async def serve() -> None:
        sink = Sink(lambda body: None)
        await sink.start()
        print(sink.port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


def _child(code: Path, port: int, args: argparse.Namespace, replies: int | None = None) -> float:
    env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{HERE}"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--port", str(port)]
    cmd += ["--replies", str(replies or args.replies), "--tasks", str(args.tasks)]
    cmd += ["--kind", args.kind]
    if not args.count:
        out = subprocess.run(cmd, env=env, cwd=HERE, check=True, capture_output=True, text=True)
        return float(out.stdout.split()[-1])
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--count needs valgrind")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # compiling every module would dwarf the replies
    env["PYTHONHASHSEED"] = "0"  # the same set and dict orders, so the same work, every run
    cmd = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd]
    out = subprocess.run(cmd, env=env, cwd=HERE, check=True, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind: {out.stderr[-500:]}")
    return float(found.group(1))


def _per_reply(code: Path, port: int, args: argparse.Namespace) -> float:
    """CPU µs per reply, or (``--count``) instructions per reply."""
    if not args.count:
        return _child(code, port, args)
    _child(code, port, args, replies=args.tasks)  # writes the bytecode caches
    once = _child(code, port, args)
    twice = _child(code, port, args, replies=2 * args.replies)
    tasks, replies = int(args.tasks), int(args.replies)
    return (twice - once) / ((2 * replies // tasks - replies // tasks) * tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=6000)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--kind", choices=("text", "buttons"), default="text")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ab", type=Path, help="the other tree of qbot to compare with")
    parser.add_argument("--count", action="store_true", help="instructions (callgrind), not CPU")
    parser.add_argument("--code", type=Path, default=HERE, help="the tree of qbot to measure")
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        _run_sink()
        return
    if args.port is not None:
        print(f"{asyncio.run(_measure(args.port, args.replies, args.tasks, args.kind)):.2f}")
        return
    sink = subprocess.Popen(
        [sys.executable, "-m", "bench.reply_path", "--sink"],
        cwd=HERE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        unit = "instructions" if args.count else "us CPU"
        if args.ab is None:
            rounds = []
            for _ in range(args.rounds):
                rounds.append(_per_reply(args.code.resolve(), port, args))
                print(f"  {rounds[-1]:10.1f} {unit}", flush=True)
            print(f"{args.kind}: {statistics.median(rounds):.1f} {unit} per reply (median)")
            return
        base: list[float] = []
        new: list[float] = []
        for _ in range(args.rounds):
            base.append(_per_reply(args.ab.resolve(), port, args))
            new.append(_per_reply(args.code.resolve(), port, args))
            print(f"  base {base[-1]:10.1f}  this {new[-1]:10.1f} {unit}", flush=True)
        ratio = statistics.median(n / b for b, n in zip(base, new, strict=True))
        print(
            f"{args.kind}: base {statistics.median(base):.1f} -> this "
            f"{statistics.median(new):.1f} {unit} per reply (medians of {args.rounds}); "
            f"this / base {ratio:.3f} (median of same-round ratios)"
        )
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
