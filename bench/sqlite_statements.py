"""The SQL statements a served message costs on SQLite, counted, not estimated.

python -m bench.sqlite_statements -n 2000 [--json]

Serves ``n`` webhooks through the in-process served bench (``bench.ingest_served``: the
end-to-end bot, 16 keep-alive connections, replies to a no-network delivery) on a fresh SQLite
file, with :meth:`sqlite3.Connection.set_trace_callback` on the storage's connection: every
statement SQLite runs (each row of an ``executemany`` included) is counted under its text with
the values taken out. Printed: each statement's count per webhook, most frequent first, and
the total. Start-up (the schema, the pragmas: run before the callback is set) is not counted;
the shutdown (each room's lease released) is.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path

from bench import ingest_served
from qbot.log import configure_logging
from qbot.storage import sqlite_engine

_VALUE = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\b")
_LIST = re.compile(r"\?(?:\s*,\s*\?)+")
_SPACE = re.compile(r"\s+")


def shape(sql: str) -> str:
    """``sql`` with its literal values (and lists of them) as ``?``: one key per statement."""
    return _LIST.sub("?, ...", _VALUE.sub("?", _SPACE.sub(" ", sql).strip()))


def count(n: int) -> Counter[str]:
    """Serve ``n`` webhooks on SQLite; the statements SQLite ran for them, by shape."""
    seen: Counter[str] = Counter()
    connect = sqlite_engine.Engine._connect

    def traced(self: sqlite_engine.Engine) -> sqlite3.Connection:
        db = connect(self)
        db.set_trace_callback(lambda sql: seen.update((shape(sql),)))
        return db

    sqlite_engine.Engine._connect = traced  # type: ignore[method-assign]
    try:
        configure_logging("info", "json", stream=io.StringIO())
        with tempfile.TemporaryDirectory(prefix="qbot-statements-") as tmp:
            asyncio.run(ingest_served.serve(n, "sqlite:///{tmp}/bench.db", Path(tmp)))
    finally:
        sqlite_engine.Engine._connect = connect  # type: ignore[method-assign]
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="one JSON object: shape -> count")
    args = parser.parse_args()
    seen = count(args.n)
    if args.json:
        print(json.dumps(dict(seen)))
        return
    rows: list[tuple[float, str]] = sorted(
        ((c / args.n, s) for s, c in seen.items()), key=lambda r: -r[0]
    )
    total = sum(c for c, _ in rows)
    for per, sql in rows:
        print(f"{per:8.3f}  {sql[:150]}")
    print(f"{total:8.3f}  statements per webhook ({args.n} webhooks)")


if __name__ == "__main__":
    main()
