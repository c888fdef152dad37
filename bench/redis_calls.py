"""Redis storage calls one at a time on a private redis-server, for instruction counts.

python -m bench.redis_calls -n 2000

Each round: ``get_state`` (one command of its own, in the caller's task) then ``lease_renew``
(one ``EVALSHA`` through the batcher's pipeline), awaited one after the other, so every round
sends the same commands and reads the same answers whatever the machine's load: unlike a
concurrent workload, whose pipelines group as many calls as timing allows, the instructions per
round repeat. Under ``valgrind --tool=callgrind`` the difference between two ``-n``, divided by
their difference, is the client's instructions per round (start-up excluded); the redis-server
is a child process valgrind does not follow::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.redis_calls -n 500
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.redis_calls -n 2500
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.redis_trips import private_redis
from qbot.storage import RedisStorage


async def rounds(port: int, n: int) -> float:
    """CPU seconds of ``n`` rounds (connecting and warming excluded)."""
    async with RedisStorage(f"redis://127.0.0.1:{port}/0?prefix=calls:") as storage:
        await storage.set_state("k", {"v": 1})
        assert await storage.lease_acquire("l", "w", 60)
        start = time.process_time()
        for _ in range(n):
            await storage.get_state("k")
            await storage.lease_renew("l", "w", 60)
        return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="rounds (get_state + lease_renew)")
    args = parser.parse_args()
    with private_redis() as port:
        cpu = asyncio.run(rounds(port, args.n))
    print(f"{args.n} rounds, {cpu:.3f} s CPU, {1e6 * cpu / args.n:.1f} us per round")


if __name__ == "__main__":
    main()
