"""The served ingest path in one process, for instruction counts (valgrind) or CPU time.

python -m bench.ingest_served -n 1000 [--storage sqlite:///x.db]

``create_app`` of the end-to-end bot (``bench.qbot_bot``) on a local port, its replies through a
no-network delivery, fed the end-to-end workload's webhooks by a raw asyncio client over 16
keep-alive connections; returns once every webhook was answered 200 and processed. Printed:
webhooks, CPU seconds of the whole process (client included) and CPU per webhook. Under
``valgrind --tool=callgrind`` the difference between two ``-n`` gives instructions per webhook
without the start-up, which repeats within a fraction of a percent on a loaded machine, unlike
time::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.ingest_served -n 200
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.ingest_served -n 1200
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from pathlib import Path

from bench._inproc import offline
from bench.scenario import webhook_bytes
from qbot.config import load_settings
from qbot.log import configure_logging
from qbot.server import RUNTIME_KEY, create_app, start_server

CONNECTIONS = 16


def _request(body: bytes) -> bytes:
    head = (
        "POST /webhook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _post_all(port: int, requests: list[bytes]) -> None:
    async def connection(mine: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for request in mine:
            writer.write(request)
            status = await reader.readline()
            if b" 200 " not in status:
                raise SystemExit(f"webhook answered {status!r}")
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
        writer.close()

    await asyncio.gather(*(connection(requests[i::CONNECTIONS]) for i in range(CONNECTIONS)))


async def serve(n: int, storage: str, folder: Path) -> float:
    """Serve ``n`` webhooks; the process's CPU seconds for them (start-up excluded)."""
    from bench.qbot_bot import bot

    settings = load_settings(
        None,
        qiscus={"app_id": "bench", "secret_key": "bench-secret", "base_url": "http://127.0.0.1:9"},
        bot={"email": "bot@bench.local"},
        storage={"url": storage.replace("{tmp}", str(folder))},
        server={"host": "127.0.0.1", "port": 0},
    )
    bot.configure(settings)  # before create_app, which would configure it after offline()
    offline(bot)
    app = create_app(bot, settings)
    runner = await start_server(app, settings, port=0)
    port = runner.addresses[0][1]
    requests = [_request(webhook_bytes(i, 1000)) for i in range(n)]
    runtime = app[RUNTIME_KEY]
    start = time.process_time()
    await _post_all(port, requests)
    while runtime.processed < n:  # noqa: ASYNC110 - the runtime signals no "processed" event
        await asyncio.sleep(0.005)
    took = time.process_time() - start
    await runner.cleanup()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--storage", default="sqlite:///{tmp}/bench.db")
    args = parser.parse_args()
    configure_logging("info", "json", stream=io.StringIO())  # qbot run's default: info, JSON
    with tempfile.TemporaryDirectory(prefix="qbot-ingest-") as tmp:
        cpu = asyncio.run(serve(args.n, args.storage, Path(tmp)))
    print(f"{args.n} webhooks, {cpu:.3f} s CPU, {1e6 * cpu / args.n:.1f} us per webhook")


if __name__ == "__main__":
    main()
